"""The database backends the registry, counter, audit, activation and key-ledger tests run on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.postgres import Cluster

BACKENDS = ("sqlite", "postgresql")


def new_database(request: pytest.FixtureRequest, backend: str, directory: Path) -> str:
    """The URL of a new, empty database on ``backend`` (a SQLite file in ``directory``)."""
    if backend == "sqlite":
        return f"sqlite:///{directory / 'signer.db'}"
    cluster: Cluster = request.getfixturevalue("postgres")
    return cluster.create_database()
