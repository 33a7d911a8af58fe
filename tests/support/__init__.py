"""Helpers the tests share: no fixtures (those live in conftest.py), no tests."""
