"""The trust generation (migration 0008): one read tells a cache whether what signing trusts
changed since it last looked, in any process."""

from __future__ import annotations

from sqlalchemy import Connection, text

from signer.errors import ConfigurationError
from signer.registry.db import Database

_READ = text("SELECT value FROM trust_generation WHERE id = 1")
#: the tables whose changes move the generation (the triggers of migration 0008)
WATCHED = ("cpl_entries", "manufacturer_certificates", "signing_keys", "firmware_images")


def generation(conn: Connection) -> int:
    value = conn.execute(_READ).scalar()
    if value is None:
        raise ConfigurationError("database: the trust_generation row is missing (migration 0008)")
    return int(value)


def current(db: Database) -> int:
    """The generation now: the one read every call makes, at driver speed."""
    with db.cursor() as cur:
        row = cur.execute("SELECT value FROM trust_generation WHERE id = 1").fetchone()
    if row is None:
        raise ConfigurationError("database: the trust_generation row is missing (migration 0008)")
    return int(row[0])


def check_triggers(db: Database) -> None:
    """Refuse a database whose trust triggers are gone (an SQLite table rebuilt by a later
    migration, a restore without triggers): its caches would never see a change."""
    with db.read() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE t.tgname LIKE 'trust_generation_%' AND NOT t.tgisinternal"
                )
            )
        else:
            rows = conn.execute(
                text(
                    "SELECT tbl_name FROM sqlite_master "
                    "WHERE type = 'trigger' AND name LIKE 'trust_generation_%'"
                )
            )
        present = {str(r[0]) for r in rows}
    missing = [t for t in WATCHED if t not in present]
    if missing:
        raise ConfigurationError(
            f"database: the trust_generation triggers of {', '.join(missing)} are missing, so "
            "changes to them would not reach the caches; re-create them (migration 0008)"
        )
