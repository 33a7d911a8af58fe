"""Fixtures of the in-process use-case tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.campaigns import World, open_world
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer


@pytest.fixture
def world(
    request: pytest.FixtureRequest,
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    tmp_path: Path,
) -> Iterator[World]:
    """A fresh campaign world per test (SQLite); parametrized indirectly, the parameter is
    its [campaigns] section's body (default: no direct limit)."""
    section = getattr(request, "param", "direct_limit = 0")
    w = open_world(hsm, vectors, manufacturer, tmp_path, campaigns=section)
    yield w
    w.svc.db.dispose()
