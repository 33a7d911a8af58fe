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


#: the triggers migration 0008 made: per table on PostgreSQL, per table and event on SQLite
PG_TRIGGERS = {f"trust_generation_{t}" for t in WATCHED}
SQLITE_TRIGGERS = {
    "trust_generation_cpl_entries_insert",
    "trust_generation_cpl_entries_update",
    "trust_generation_cpl_entries_delete",
    "trust_generation_manufacturer_certificates_insert",
    "trust_generation_manufacturer_certificates_update",
    "trust_generation_manufacturer_certificates_delete",
    "trust_generation_signing_keys_insert",
    "trust_generation_signing_keys_update",
    "trust_generation_signing_keys_delete",
    "trust_generation_firmware_images_update",
    "trust_generation_firmware_images_delete",
}


#: the registry generation's triggers (migration 0009): devices, their cells and inventory
REGISTRY_WATCHED = ("devices", "trust_anchor_cells")
PG_TRIGGERS |= {f"registry_generation_{t}" for t in REGISTRY_WATCHED}
SQLITE_TRIGGERS |= {
    f"registry_generation_{t}_{e}" for t in REGISTRY_WATCHED for e in ("insert", "update", "delete")
}
#: and any update of a library image (a re-delivery rewrites its Force Replace byte)
PG_TRIGGERS.add("registry_generation_firmware_images")
SQLITE_TRIGGERS.add("registry_generation_firmware_images_update")
_READ_REGISTRY = "SELECT value FROM registry_generation WHERE id = 1"


def registry_generation(db: Database) -> int:
    """The registry generation now (migration 0009): moves with every change to a device."""
    with db.cursor() as cur:
        row = cur.execute(_READ_REGISTRY).fetchone()
    if row is None:
        raise ConfigurationError(
            "database: the registry_generation row is missing (migration 0009)"
        )
    return int(row[0])


def check_triggers(db: Database) -> None:
    """Refuse a database whose trust triggers are gone or disabled (an SQLite table rebuilt
    by a later migration, a restore without triggers, ``ALTER TABLE ... DISABLE TRIGGER``):
    its caches would never see a change."""
    with db.read() as conn:
        if conn.dialect.name == "postgresql":
            expected = PG_TRIGGERS
            rows = conn.execute(
                text(
                    "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE (t.tgname LIKE 'trust_generation_%' "
                    "OR t.tgname LIKE 'registry_generation_%') AND NOT t.tgisinternal "
                    "AND t.tgenabled <> 'D' AND c.relnamespace = to_regnamespace("
                    "current_schema())"
                )
            )
        else:
            expected = SQLITE_TRIGGERS
            rows = conn.execute(
                text(
                    "SELECT name FROM sqlite_master "
                    "WHERE type = 'trigger' AND (name LIKE 'trust_generation_%' "
                    "OR name LIKE 'registry_generation_%')"
                )
            )
        present = {str(r[0]) for r in rows}
    missing = sorted(expected - present)
    if missing:
        raise ConfigurationError(
            f"database: trust triggers missing or disabled ({', '.join(missing)}), so changes "
            "to what signing trusts (or to the device registry a campaign plan depends on) "
            "would not be seen; restore them as migrations 0008 and 0009 create them"
        )
