"""Schema migrations as an operation: what a migration Job or an operator runs before serving."""

from __future__ import annotations

from dataclasses import dataclass

from signer.registry.db import Database


@dataclass(frozen=True)
class SchemaUpgrade:
    before: str | None  # None: the database was empty
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


def upgrade(url: str) -> SchemaUpgrade:
    """Migrate to the newest revision; safe while replicas start (they take turns)."""
    db = Database(url)
    try:
        before = db.migrate()
        return SchemaUpgrade(before, db.revision())
    finally:
        db.dispose()
