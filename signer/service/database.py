"""The registry database alone, for commands that need no token (an auditor has no PIN)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from signer.config import Config
from signer.registry.db import Database, open_database


@contextmanager
def registry_database(config: Config) -> Iterator[Database]:
    """The configured database, migrated to the newest schema, disposed afterwards."""
    db = open_database(config.database_url)
    try:
        yield db
    finally:
        db.dispose()
