"""Locate the shared public test vectors, which are read in place and never copied here."""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping
from pathlib import Path

import pytest

VECTORS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def require_dir(directory: Path = VECTORS_DIR, env: Mapping[str, str] = os.environ) -> Path:
    """Skip on a fresh clone without the vectors, but fail in CI, where they must be present."""
    if directory.is_dir():
        return directory
    reason = f"public test vectors not found at {directory} (../shared/vectors from the project)"
    if env.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so missing vectors are an error, not a skip")
    pytest.skip(reason)


def vector_path(*parts: str) -> Path:
    return require_dir().joinpath(*parts)


def vector_bytes(*parts: str) -> bytes:
    return vector_path(*parts).read_bytes()


def vector_text(*parts: str) -> str:
    return vector_path(*parts).read_text(encoding="utf-8")


def vector_b64(*parts: str) -> bytes:
    return base64.b64decode(vector_text(*parts))
