"""Bulk device imports at driver speed write what the ORM would, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    RoleCredentials,
    TrustAnchorCell,
)
from signer.registry import devices
from signer.registry.db import Database, open_database
from tests.support.constants import PINNED, SUPPLIER_EUI
from tests.support.devices import credentials

NETWORK_OPERATOR = "90-B3-D5-1F-30-02-00-00"


def rich(eui: str, n: int) -> DeviceCredentials:
    """Two remote parties, three and two cells (as the published CS02a response has)."""

    def cell(role: RemotePartyRole, usage: KeyUsage, subject: str, cu: CellUsage) -> Any:
        return TrustAnchorCell(
            role=int(role),
            key_usage=usage,
            cell_usage=cu,
            subject_eui=Eui64.parse(subject),
            ski=bytes([n, int(role), len(usage.value), int(cu)]) * 2,
        )

    supplier, operator = RemotePartyRole.SUPPLIER, RemotePartyRole.NETWORK_OPERATOR
    ds, ka, mgmt, top_up = (
        KeyUsage.DIGITAL_SIGNATURE,
        KeyUsage.KEY_AGREEMENT,
        CellUsage.MANAGEMENT,
        CellUsage.PREPAYMENT_TOP_UP,
    )
    roles = (
        RoleCredentials(
            role=int(supplier),
            status=0,
            sequence_number=0,
            cells=(
                cell(supplier, ds, SUPPLIER_EUI, mgmt),
                cell(supplier, ka, SUPPLIER_EUI, mgmt),
                cell(supplier, ka, SUPPLIER_EUI, top_up),
            ),
        ),
        RoleCredentials(
            role=int(operator),
            status=0,
            sequence_number=1,
            cells=(
                cell(operator, ds, NETWORK_OPERATOR, mgmt),
                cell(operator, ka, NETWORK_OPERATOR, mgmt),
            ),
        ),
    )
    return DeviceCredentials(device=Eui64.parse(eui), roles=roles)


def eui(n: int) -> str:
    return f"00-DB-00-00-00-00-{n >> 8:02X}-{n & 0xFF:02X}"


def rows(db: Database) -> tuple[list[Any], list[Any]]:
    """Every device and cell row as stored (cell IDs left out: only their order counts)."""
    with db.read() as conn:
        found = list(conn.execute(text("SELECT * FROM devices ORDER BY eui")))
        cells = list(
            conn.execute(
                text(
                    "SELECT device_eui, role, key_usage, cell_usage, subject_eui, ski "
                    "FROM trust_anchor_cells ORDER BY device_eui, id"
                )
            )
        )
    return [tuple(r) for r in found], [tuple(r) for r in cells]


def raw_times(db: Database) -> list[Any]:
    """``updated_at`` as the driver returns it, unconverted: byte-identical or not."""
    with db.cursor() as cur:
        return [r[0] for r in cur.execute("SELECT updated_at FROM devices ORDER BY eui")]


def test_bulk_writes_the_rows_the_orm_writes(db_url: str) -> None:
    orm = open_database(db_url)
    first = [rich(eui(n), n) for n in range(40)]
    later = [rich(eui(n), n + 100) for n in range(20, 60)]  # 20 known, 20 new
    with orm.session() as s:
        for creds in first:
            devices.write_credentials(s, creds, PINNED)
    with orm.session() as s:
        orm_new = {c.device.hex for c in later if devices.write_credentials(s, c, PINNED)}
    expected, expected_times = rows(orm), raw_times(orm)
    with orm.session() as s:
        s.execute(text("DELETE FROM trust_anchor_cells"))
        s.execute(text("DELETE FROM devices"))
    with orm.session() as s:
        assert devices.write_many_credentials(s, first, PINNED) == {c.device.hex for c in first}
    steps: list[int] = []
    with orm.session() as s:
        bulk_new = devices.write_many_credentials(s, later, PINNED, progress=steps.append)
    assert bulk_new == orm_new and len(bulk_new) == 20
    assert sum(steps) == len(later)
    assert rows(orm) == expected and len(expected[1]) == 60 * 5
    assert raw_times(orm) == expected_times
    # what the service reads back is the same as well
    record = devices.get_device(orm, Eui64.parse(eui(30)))
    assert record is not None and record.cells == rich(eui(30), 130).cells
    orm.dispose()


def test_a_device_given_twice_keeps_its_last_cells(db_url: str) -> None:
    db = open_database(db_url)
    one = eui(7)
    with db.session() as s:
        new = devices.write_many_credentials(
            s, [credentials(one, ski=b"\x01" * 8), rich(eui(8), 8), credentials(one)], PINNED
        )
    assert new == {Eui64.parse(one).hex, Eui64.parse(eui(8)).hex}
    record = devices.get_device(db, Eui64.parse(one))
    assert record is not None and record.cells == credentials(one).cells
    db.dispose()


def test_a_failed_transaction_writes_nothing(db_url: str) -> None:
    db = open_database(db_url)
    with db.session() as s:
        devices.write_many_credentials(s, [rich(eui(1), 1)], PINNED)
    before = rows(db)

    class Stop(Exception):
        pass

    with pytest.raises(Stop), db.session() as s:
        devices.write_many_credentials(s, [rich(eui(n), n + 50) for n in range(10)], PINNED)
        raise Stop
    assert rows(db) == before
    db.dispose()
