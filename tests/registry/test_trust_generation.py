"""The trust generation moves with every change to what signing trusts, whoever makes it
(here: plain SQL on another connection), and a database without its triggers is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from signer.errors import ConfigurationError, Unavailable
from signer.registry import trust
from signer.registry.db import Database, open_database
from tests.support.audit_rows import execute
from tests.support.postgres import Cluster

CPL_ROW = (
    "INSERT INTO cpl_entries (entry_id, manufacturer_code, device_type, model, image_type, "
    "hardware_version, firmware_version, image_hash, upgrade_from, zigbee_chipset_vendor, "
    "zigbee_stack_version, band_join_option, imported_at) VALUES ('E-1', 4637, 'ESME', 'M', "
    "1, 1, '00000001', '{h}', 'N/A', '', '', '', '2024-01-01 00:00:00')"
)


def generation(db: Database) -> int:
    with db.read() as conn:
        return trust.generation(conn)


@pytest.mark.parametrize(
    "change",
    [
        CPL_ROW.format(h="ab" * 32),
        "INSERT INTO signing_keys (token_label, key_id, label, purpose, state, created_at) "
        "VALUES ('t', '01', 'k', 'supplier-ds', 'pending', '2024-01-01 00:00:00')",
    ],
)
def test_an_insert_by_anyone_moves_the_generation(db_url: str, change: str) -> None:
    db = open_database(db_url)
    before = generation(db)
    execute(db_url, change)  # another connection, not the project's code
    assert generation(db) > before
    db.dispose()


CERT_ROW = (
    "INSERT INTO manufacturer_certificates (manufacturer_code, fingerprint, subject, serial, "
    "not_before, not_after, certificate_der, added_at) VALUES (4637, ?, 'CN=m', '1', "
    "'2024-01-01 00:00:00', '2030-01-01 00:00:00', ?, '2024-01-01 00:00:00')"
)
IMAGE_ROW = (
    "INSERT INTO firmware_images (image_id, manufacturer_code, image_type, file_version, "
    "header_bytes, with_tail, delivery_shape, verified, verdict_json, verified_at) VALUES "
    "(?, 4637, 1, 1, ?, ?, 'separate', ?, '{}', '2024-01-01 00:00:00')"
)


def test_manufacturer_certificates_and_image_verdicts_move_it(db_url: str) -> None:
    db = open_database(db_url)
    g0 = generation(db)
    execute(db_url, CERT_ROW, "ab" * 32, b"\x30\x00")
    g1 = generation(db)
    execute(db_url, IMAGE_ROW, "cd" * 32, b"\x00", True, True)
    assert generation(db) == g1 > g0  # a new image is new to every cache: no move
    execute(db_url, "UPDATE firmware_images SET manufacturer_fingerprint = 'x'")
    g2 = generation(db)
    execute(db_url, "UPDATE firmware_images SET verdict_json = '{\"n\": 1}'")
    assert generation(db) == g2 > g1  # only the verdict and its certificate count
    execute(db_url, "DELETE FROM firmware_images")
    assert generation(db) > g2
    db.dispose()


def test_updates_and_deletes_move_it_and_unwatched_writes_do_not(db_url: str) -> None:
    db = open_database(db_url)
    execute(db_url, CPL_ROW.format(h="cd" * 32))
    g1 = generation(db)
    execute(db_url, "UPDATE cpl_entries SET model = 'M2' WHERE entry_id = 'E-1'")
    g2 = generation(db)
    execute(db_url, "DELETE FROM cpl_entries WHERE entry_id = 'E-1'")
    g3 = generation(db)
    assert g1 < g2 < g3
    execute(db_url, "UPDATE request_counters SET last_counter = last_counter WHERE 1 = 0")
    assert generation(db) == g3
    db.dispose()


def test_postgresql_moves_it_once_per_transaction_and_on_truncate(postgres: Cluster) -> None:
    url = postgres.create_database("bumps")
    db = open_database(url)
    before = generation(db)
    with db.engine.begin() as conn:  # a thousand statements, one transaction
        for i in range(1000):
            conn.execute(text(CPL_ROW.replace("'E-1'", f"'E-{i}'").format(h=f"{i:064x}")))
    assert generation(db) == before + 1
    execute(url, "TRUNCATE cpl_entries")
    assert generation(db) == before + 2
    db.dispose()


def test_a_disabled_trigger_is_refused_like_a_missing_one(postgres: Cluster) -> None:
    url = postgres.create_database("disabled")
    open_database(url).dispose()
    execute(url, "ALTER TABLE cpl_entries DISABLE TRIGGER trust_generation_cpl_entries")
    with pytest.raises(ConfigurationError, match="trust_generation_cpl_entries"):
        open_database(url)


def test_a_database_without_its_trust_triggers_is_refused(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER trust_generation_signing_keys ON signing_keys"))
        else:
            for event in ("insert", "update", "delete"):
                conn.execute(text(f"DROP TRIGGER trust_generation_signing_keys_{event}"))
    db.dispose()
    with pytest.raises(
        ConfigurationError, match=r"trust triggers missing or disabled .*signing_keys"
    ):
        open_database(db_url)


def test_a_failover_costs_one_failed_read_not_one_per_pooled_connection(
    postgres: Cluster, tmp_path: Path
) -> None:
    """Every pooled connection killed (as by a PostgreSQL failover): the first read that
    meets a dead one fails UNAVAILABLE and renews the pool; the next ones succeed."""
    url = postgres.create_database("failover")
    db = open_database(url)
    held = [db.engine.raw_connection() for _ in range(5)]
    for conn in held:  # five idle connections in the pool
        conn.close()
    execute(
        url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    failures = 0
    for _ in range(6):
        try:
            trust.current(db)
        except Unavailable:
            failures += 1
    assert failures <= 1
    assert trust.current(db) >= 0
    db.dispose()
