"""Fixtures for the published test vectors in ../shared/vectors (never copied into the project)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"


def require_vectors() -> Path:
    """Skip on a fresh clone without the vectors; in CI their absence is a failure."""
    if not VECTORS.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"test vectors missing at {VECTORS} (CI=true must not skip them)")
        pytest.skip(f"test vectors not found at {VECTORS}")
    return VECTORS


@pytest.fixture(scope="session")
def vectors() -> Path:
    return require_vectors()
