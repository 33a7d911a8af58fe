"""The Alembic migrations build exactly the schema the models describe, on both backends,
and replicas starting at once take turns applying them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from signer.errors import ConfigurationError
from signer.registry import manufacturers
from signer.registry.db import MIGRATIONS, Database, open_database
from signer.registry.models import Base
from tests.support.manufacturer import new_manufacturer


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert db.revision() == Database.head_revision()
    db.dispose()


def test_migrating_twice_is_harmless(db_url: str) -> None:
    db = Database(db_url)
    assert db.migrate() is None  # a new database
    assert db.migrate() == Database.head_revision()
    db.dispose()


STARTER = """
import sys, time
from signer.registry.db import Database
db = Database(sys.argv[1])
while time.time() < float(sys.argv[2]):  # all start at the same moment
    time.sleep(0.001)
print(db.migrate())
"""


def test_replicas_starting_at_once_apply_the_migrations_once(db_url: str) -> None:
    """One migrates a fresh database, the others wait for it and find it at head."""
    import time

    at = str(time.time() + 2.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STARTER, db_url, at],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    befores = sorted(out.strip() for out, _ in results)
    assert befores == sorted(["None"] + [str(Database.head_revision())] * 3)
    db = Database(db_url)
    assert db.revision() == Database.head_revision()
    db.dispose()


def test_a_database_migrated_by_a_newer_signer_is_refused_by_name(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConfigurationError, match=r"database schema: .*9999.*older than"):
        db.migrate()
    db.dispose()


def test_0007_gives_registered_manufacturer_certificates_their_serial_and_start(
    db_url: str, tmp_path: Path
) -> None:
    """Certificates registered before manufacturer trust had a lifecycle keep working."""
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from cryptography.hazmat.primitives import serialization

    cert = new_manufacturer(tmp_path).certificate
    db = Database(db_url)
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
        conn.execute(
            text(
                "INSERT INTO manufacturer_certificates (manufacturer_code, fingerprint, "
                "subject, not_after, certificate_der, added_at) VALUES "
                "(4637, :fp, 'CN=old', :na, :der, :na)"
            ),
            {
                "fp": "ab" * 32,
                "na": cert.not_valid_after_utc,
                "der": cert.public_bytes(serialization.Encoding.DER),
            },
        )
    assert db.migrate() == "0006"
    (registered,) = manufacturers.certificates(db, 0x121D)
    assert (registered.serial, registered.not_before, registered.revoked_at) == (
        str(cert.serial_number),
        cert.not_valid_before_utc,
        None,
    )
    db.dispose()
