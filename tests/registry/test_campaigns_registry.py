"""The campaign registry (migration 0009) on SQLite and PostgreSQL: the registry generation
moves with every change to a device, its cells or its inventory, whoever makes it, and a
database without its triggers is refused; a plan's devices go in and are updated in bulk;
a withheld SR 11.3 request can never be claimed for a pre-command."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text

from signer.errors import ConfigurationError
from signer.gbcs.eui import Eui64
from signer.registry import activations, trust
from signer.registry import campaigns as store
from signer.registry.campaigns import DeviceRow, PlanRow
from signer.registry.db import open_database
from tests.support.audit_rows import execute
from tests.support.postgres import Cluster

NOW = dt.datetime(2026, 12, 3, 14, 30, tzinfo=dt.UTC)
SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
DEVICE = "INSERT INTO devices (eui, updated_at) VALUES ('00DB000000000001', '2024-01-01 00:00:00')"
CELL = (
    "INSERT INTO trust_anchor_cells (device_eui, role, key_usage, cell_usage, subject_eui, ski) "
    "VALUES ('00DB000000000001', 3, 'digital-signature', 0, '90B3D51F30010000', "
    "'0102030405060708')"
)


def test_every_change_to_a_device_moves_the_registry_generation(db_url: str) -> None:
    db = open_database(db_url)
    seen = [trust.registry_generation(db)]

    def moved() -> bool:
        seen.append(trust.registry_generation(db))
        return seen[-1] > seen[-2]

    execute(db_url, DEVICE)  # another connection, not the project's code
    assert moved()
    execute(db_url, CELL)
    assert moved()
    execute(db_url, "UPDATE trust_anchor_cells SET ski = 'ffffffffffffffff'")
    assert moved()
    execute(db_url, "UPDATE devices SET hardware_version = 2, current_entry_id = 'T-2'")
    assert moved()  # the inventory
    execute(db_url, "DELETE FROM trust_anchor_cells")
    assert moved()
    trust_before = trust.current(db)
    execute(db_url, "DELETE FROM devices")
    assert moved()
    assert trust.current(db) == trust_before  # devices are not what signing trusts
    execute(db_url, "INSERT INTO request_counters (originator, last_counter) VALUES ('AB', 1)")
    assert not moved()
    db.dispose()


def test_postgresql_moves_it_once_per_transaction(postgres: Cluster) -> None:
    url = postgres.create_database("registry_bumps")
    db = open_database(url)
    before = trust.registry_generation(db)
    with db.engine.begin() as conn:
        for i in range(300):
            conn.execute(text(DEVICE.replace("0001'", f"{i + 1:04X}'")))
    assert trust.registry_generation(db) == before + 1
    execute(url, "TRUNCATE devices CASCADE")
    assert trust.registry_generation(db) == before + 2
    db.dispose()


def test_a_database_without_its_registry_triggers_is_refused(db_url: str) -> None:
    db = open_database(db_url)
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("DROP TRIGGER registry_generation_devices ON devices"))
        else:
            conn.execute(text("DROP TRIGGER registry_generation_devices_update"))
    db.dispose()
    with pytest.raises(ConfigurationError, match=r"missing or disabled .*registry_generation_dev"):
        open_database(db_url)


def _plan(plan_id: str) -> PlanRow:
    return PlanRow(
        plan_id=plan_id,
        requester="CN=planner",
        planned_at=NOW,
        spec_json="{}",
        state="planned",
        counts_json="{}",
        trust_generation=1,
        registry_generation=2,
        device_count=0,
        eligible=0,
        refused=0,
        approvals_required=1,
    )


def test_a_plans_devices_in_bulk_then_their_outcomes(db_url: str) -> None:
    db = open_database(db_url)
    provisional, final = "planning-x", "ab" * 32
    with db.session() as s:
        store.insert_plan(s, _plan(provisional))
    n = 12_000
    rows = [
        DeviceRow(
            seq=i,
            device_id=str(Eui64(i.to_bytes(8, "big"))),
            key_ski="0102030405060708",
            key_label="k",
            certificate_serial="12345",
            current_entry_id="T-2",
            model="121D/M1",
            pathway="eligible",
            refusal_json=None,
            outcome=store.PENDING,
        )
        for i in range(1, n + 1)
    ]
    for i in range(0, n, 5000):  # as a plan streams its batches
        with db.session() as s:
            store.insert_devices(s, provisional, rows[i : i + 5000])
    with db.session() as s:
        store.insert_plan(s, _plan(final))
        store.adopt_devices(s, provisional, final)
    assert store.get_plan(db, provisional) is None
    plan = store.get_plan(db, final)
    assert plan is not None and plan.planned_at == NOW
    read = [r for after in range(0, n, 4000) for r in store.devices(db, final, after, 4000)]
    assert read == rows
    with db.session() as s:
        store.record_outcomes(
            s,
            final,
            [(r.seq, store.ISSUED if r.seq % 3 else store.WITHHELD, None, None, "a b")
             for r in rows],
        )  # fmt: skip
    counts = store.outcome_counts(db, final)
    assert counts == {store.ISSUED: n - n // 3, store.WITHHELD: n // 3}
    assert store.devices(db, final, 0, 1)[0].request_ids == "a b"
    db.dispose()


def test_a_withheld_request_can_never_be_claimed(db_url: str) -> None:
    db = open_database(db_url)
    devices = [Eui64(bytes((0, 0xDA, 0, 0, 0, 0, 0, i))) for i in range(1, 4)]
    with db.session() as s:
        activations.insert_campaign_batch(
            s,
            originator=SUPPLIER,
            first_counter=100,
            devices=devices,
            image_id="ab" * 32,
            execution_time=None,
            cancel=False,
            issued_at=NOW,
        )
        activations.mark_withheld(s, SUPPLIER, [101], NOW)
    issued = activations.get_many(db, SUPPLIER, [100, 101, 102])
    assert issued[101].withheld_at == NOW and issued[100].withheld_at is None
    assert activations.get(db, SUPPLIER, 101) == issued[101]
    assert activations.claim_pre_commands(db, SUPPLIER, [100, 101, 102], NOW) == {100, 102}
    assert activations.latest_counters(db, SUPPLIER, [*devices, Eui64(bytes(8))]) == {
        devices[0]: 100,
        devices[1]: 101,
        devices[2]: 102,
    }
    db.dispose()
