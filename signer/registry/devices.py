"""Device EUI-64 -> the trust anchor cells it reported (GBCS SR 6.24.1)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

from sqlalchemy import Table, and_, func, select
from sqlalchemy.orm import Session

from signer.cpl.inventory import InventoryRow
from signer.cpl.parse import RowError
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    TrustAnchorCell,
)
from signer.registry.batches import read_batches
from signer.registry.db import Database, RawCursor
from signer.registry.models import Device, TrustAnchorCellRow

_BATCH = 5000


@dataclass(frozen=True)
class DeviceRecord:
    eui: Eui64
    cells: tuple[TrustAnchorCell, ...]
    updated_at: dt.datetime
    device_type: str | None = None
    hardware_version: int | None = None
    current_entry_id: str | None = None


def store_credentials(db: Database, creds: DeviceCredentials, now: dt.datetime) -> bool:
    """Replace a device's cells with those of a 6.24.1 response; True if the device is new."""
    with db.session() as s:
        return write_credentials(s, creds, now)


def write_credentials(s: Session, creds: DeviceCredentials, now: dt.datetime) -> bool:
    """``store_credentials`` inside the caller's transaction (e.g. with its audit record)."""
    key = creds.device.hex
    device = s.get(Device, key)
    created = device is None
    if device is None:
        device = Device(eui=key, updated_at=now)
        s.add(device)
    device.updated_at = now
    device.cells = [
        TrustAnchorCellRow(
            role=c.role,
            key_usage=c.key_usage.value,
            cell_usage=int(c.cell_usage),
            subject_eui=c.subject_eui.hex,
            ski=c.ski.hex(),
        )
        for c in creds.cells
    ]
    return created


def write_many_credentials(
    s: Session,
    many: Sequence[DeviceCredentials],
    now: dt.datetime,
    progress: Callable[[int], None] | None = None,
) -> set[str]:
    """``write_credentials`` for many devices at driver speed, in the caller's transaction:
    the devices known are read in batches, then the inserts and the new cells' inserts are
    one ``executemany`` each, the updates and the old cells' deletion one statement per batch
    of devices. A device given twice ends with its last cells. Returns the EUIs (hex) that
    were new; ``progress`` is told of every device written."""
    last: dict[str, DeviceCredentials] = {}
    for creds in many:
        key = creds.device.hex
        last.pop(key, None)  # a later response of the same device wins
        last[key] = creds
    keys = list(last)
    cur = RawCursor.of(s)
    known: set[str] = set()
    for i in range(0, len(keys), _BATCH):
        batch = keys[i : i + _BATCH]
        sql = f"SELECT eui FROM devices WHERE eui IN ({_markers(len(batch))})"  # noqa: S608
        known.update(row[0] for row in cur.execute(sql, batch).fetchall())
    stamp = _time_in(s)(now)
    new = [k for k in keys if k not in known]
    if new:
        cur.executemany(
            "INSERT INTO devices (eui, updated_at) VALUES (?, ?)", [(k, stamp) for k in new]
        )
    old = [k for k in keys if k in known]
    for i in range(0, len(old), _BATCH):  # one statement per batch, not one per device
        batch = old[i : i + _BATCH]
        markers = _markers(len(batch))
        sql = f"UPDATE devices SET updated_at = ? WHERE eui IN ({markers})"  # noqa: S608
        cur.execute(sql, [stamp, *batch])
        sql = f"DELETE FROM trust_anchor_cells WHERE device_eui IN ({markers})"  # noqa: S608
        cur.execute(sql, batch)
    rows: list[tuple[str, int, str, int, str, str]] = []
    written = 0
    subjects: dict[bytes, str] = {}  # a fleet's cells name a handful of subjects
    for n, (key, creds) in enumerate(last.items(), 1):
        for role in creds.roles:
            for c in role.cells:
                subject = subjects.get(c.subject_eui.value)
                if subject is None:
                    subject = subjects[c.subject_eui.value] = c.subject_eui.hex
                # (_value_: the member's value without Enum.value's Python-level property)
                rows.append(
                    (key, c.role, c.key_usage._value_, int(c.cell_usage), subject, c.ski.hex())
                )
        if len(rows) >= _CELL_BATCH or n == len(last):
            if rows:
                cur.executemany(_INSERT_CELL, rows)
            rows.clear()
            if progress is not None:
                progress(n - written)
            written = n
    return set(new)


_CELL_BATCH = 20_000
_INSERT_CELL = (
    "INSERT INTO trust_anchor_cells (device_eui, role, key_usage, cell_usage, subject_eui, ski) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_DEVICES: Table = Device.__table__  # type: ignore[assignment]


def _markers(n: int) -> str:
    return ",".join("?" * n)


def _time_in(s: Session) -> Callable[[Any], Any]:
    """The ``updated_at`` column's own bind processor for this dialect: rows written here
    are byte-identical to the ORM's."""
    dialect = s.get_bind().dialect
    processor = _DEVICES.c.updated_at.type.dialect_impl(dialect).bind_processor(dialect)
    return processor or _same


def _same(value: Any) -> Any:
    return value


def get_device(db: Database, eui: Eui64) -> DeviceRecord | None:
    with db.session() as s:
        device = s.get(Device, eui.hex)
        if device is None:
            return None
        return DeviceRecord(
            eui=eui,
            cells=tuple(_cell(r) for r in device.cells),
            updated_at=device.updated_at,
            device_type=device.device_type,
            hardware_version=device.hardware_version,
            current_entry_id=device.current_entry_id,
        )


class DeviceFacts(NamedTuple):
    """What selection and pathway checks need of a device, read in one query (a tuple:
    50,000 of them are made per BuildDUIS)."""

    # the Supplier digital-signing (management) cell's SKI; None: no such cell, or several
    # naming different keys (``ambiguous_skis``)
    supplier_ski: bytes | None
    device_type: str | None
    hardware_version: int | None
    current_entry_id: str | None
    # a device whose Supplier digital-signing management cells name two or more different
    # SKIs (not a state a 6.24.1 import writes): those SKIs, sorted; () otherwise. Which key
    # it trusts is unknown, so selection refuses it (``ambiguous_supplier_cells``); cells
    # naming the same SKI count as one cell
    ambiguous_skis: tuple[bytes, ...] = ()


class DeviceKinds(NamedTuple):
    """The devices of a request by kind: ``kinds`` the distinct facts among them (a fleet is
    a handful of kinds), ``kind_of`` for each device as given, in that order, the position of
    its facts in ``kinds``, or None for a device that is not registered."""

    kinds: tuple[DeviceFacts, ...]
    kind_of: list[int | None]

    def facts(self, euis: Sequence[Eui64]) -> dict[Eui64, DeviceFacts]:
        """The facts of each known device of ``euis`` (the devices these kinds were read for)."""
        kinds = self.kinds
        return {e: kinds[i] for e, i in zip(euis, self.kind_of, strict=True) if i is not None}


def device_facts(db: Database, euis: Sequence[Eui64]) -> dict[Eui64, DeviceFacts]:
    """Facts of each known device, in batches; an unknown device is missing from the result."""
    return device_kinds(db, euis).facts(euis)


def device_kinds(db: Database, euis: Sequence[Eui64]) -> DeviceKinds:
    """Each device's facts, read grouped by kind: the database returns one row per kind of
    device with its members' EUIs aggregated into one string, so no Python object is made
    per device row (50,000 rows of five columns cost more than the look-ups themselves).

    A device with several Supplier digital-signing management cells (not a state a 6.24.1
    import writes) appears in several rows, or twice in one; then the row-by-row read
    decides (``device_facts_by_row``): its facts name every SKI its cells give
    (``ambiguous_skis``), never one of them picked by the order rows come in."""
    hexes = hex_keys(euis)
    # in key order, each batch's look-ups walk the indexes' pages in order: 50,000 devices
    # given in random order cost 200 ms of SQLite, sorted 123 ms (sorting them 15 ms; from a
    # dict, which keeps the given order, a list already in order sorts in 2 ms, from a set
    # in 15-20)
    unique = sorted(dict.fromkeys(hexes))
    sql = _KINDS_SQL_POSTGRES if db.engine.dialect.name == "postgresql" else _KINDS_SQL_SQLITE

    def kinds_of(cur: RawCursor, batch: list[str]) -> list[Any]:
        query = sql.format(markers=",".join("?" * len(batch)))  # markers only
        rows: list[Any] = cur.execute(query, (*_SUPPLIER_MANAGEMENT_DS, *batch)).fetchall()
        return rows

    # 50,000 devices are ten statements: a second connection takes half (93 -> 50-70 ms)
    batches = [unique[i : i + _BATCH] for i in range(0, len(unique), _BATCH)]
    kinds: dict[DeviceFacts, int] = {}
    by_hex: dict[str, int] = {}
    members = 0
    for rows in read_batches(db, batches, kinds_of):
        for ski, dtype, hw, entry, euis_text in rows:
            facts = DeviceFacts(bytes.fromhex(ski) if ski is not None else None, dtype, hw, entry)
            k = kinds.setdefault(facts, len(kinds))
            of_kind = euis_text.split(",")
            members += len(of_kind)
            by_hex.update(dict.fromkeys(of_kind, k))
    if members != len(by_hex):  # some device in two rows: see above
        by_row = _facts_by_hex(db, unique)
        kinds = {}
        by_hex = {h: kinds.setdefault(f, len(kinds)) for h, f in by_row.items()}
    return DeviceKinds(tuple(kinds), list(map(by_hex.get, hexes)))


def hex_keys(euis: Sequence[Eui64]) -> list[str]:
    """Each EUI's ``hex`` (the devices table's key), for many at C speed."""
    text = b"".join(map(_VALUE, euis)).hex().upper()
    return [text[i : i + 16] for i in range(0, len(text), 16)]


_VALUE = attrgetter("value")


def device_facts_by_row(db: Database, euis: Sequence[Eui64]) -> dict[Eui64, DeviceFacts]:
    """``device_facts`` one row per device (the general read; ``device_kinds`` falls back to
    it, and tests compare the two)."""
    by_hex = {e.hex: e for e in euis}
    return {by_hex[h]: f for h, f in _facts_by_hex(db, list(by_hex)).items()}


def _facts_by_hex(db: Database, keys: Sequence[str]) -> dict[str, DeviceFacts]:
    """Each known device's facts (``keys``: distinct). A device has one row per Supplier
    digital-signing management cell: with cells naming different SKIs it is ambiguous
    (``DeviceFacts.ambiguous_skis``), whatever order the rows come in."""
    out: dict[str, DeviceFacts] = {}
    # one (shared, immutable) DeviceFacts per kind
    kinds: dict[tuple[str | None, str | None, int | None, str | None], DeviceFacts] = {}
    several: dict[str, set[bytes]] = {}  # devices whose cells name different SKIs
    with db.cursor() as cur:
        for i in range(0, len(keys), _BATCH):
            batch = keys[i : i + _BATCH]
            sql = _FACTS_SQL.format(markers=",".join("?" * len(batch)))  # markers only
            for row in cur.execute(sql, (*_SUPPLIER_MANAGEMENT_DS, *batch)).fetchall():
                kind = row[1:]
                facts = kinds.get(kind)
                if facts is None:
                    ski, dtype, hw, entry = kind
                    facts = kinds[kind] = DeviceFacts(
                        bytes.fromhex(ski) if ski is not None else None, dtype, hw, entry
                    )
                eui = row[0]
                before = out.setdefault(eui, facts)
                if before is not facts and before.supplier_ski != facts.supplier_ski:
                    skis = several.setdefault(eui, set())
                    skis.update(s for s in (before.supplier_ski, facts.supplier_ski) if s)
    for eui, skis in several.items():
        f = out[eui]
        out[eui] = f._replace(supplier_ski=None, ambiguous_skis=tuple(sorted(skis)))
    return out


# Devices with their Supplier digital-signing (management) cell, if any: one statement, run
# at driver speed (the hot path of every Resign and BuildDUIS; SQLAlchemy's expanding IN
# cost more than the query)
_FROM_DEVICES_AND_CELL = (
    "FROM devices "
    "LEFT OUTER JOIN trust_anchor_cells ON trust_anchor_cells.device_eui = devices.eui "
    "AND trust_anchor_cells.role = ? AND trust_anchor_cells.key_usage = ? "
    "AND trust_anchor_cells.cell_usage = ? WHERE devices.eui IN ({markers})"
)
_FACTS_SQL = (
    "SELECT devices.eui, trust_anchor_cells.ski, devices.device_type, "
    "devices.hardware_version, devices.current_entry_id " + _FROM_DEVICES_AND_CELL
)
# the same, one row per kind with its members' EUIs comma-separated (EUIs are hex digits)
_KINDS_SQL = (
    "SELECT trust_anchor_cells.ski, devices.device_type, devices.hardware_version, "
    "devices.current_entry_id, group_concat(devices.eui, ',') "
    + _FROM_DEVICES_AND_CELL
    + " GROUP BY trust_anchor_cells.ski, devices.device_type, devices.hardware_version, "
    "devices.current_entry_id"
)
_KINDS_SQL_POSTGRES = _KINDS_SQL.replace("group_concat(", "string_agg(")
# SQLite: for one device (``IN (?)`` is ``= ?``) its planner read the cells in SKI order
# through (role, key usage, SKI), to group without sorting, scanning every Supplier cell:
# 16 ms a call among 50,000 devices, against 0.1 ms by the device's index. Named here, the
# plan cannot change with the list's length (tests/registry/test_query_plans.py).
_KINDS_SQL_SQLITE = _KINDS_SQL.replace(
    "JOIN trust_anchor_cells ON", "JOIN trust_anchor_cells INDEXED BY ix_cells_device_role_usage ON"
)
_SUPPLIER_MANAGEMENT_DS = (
    int(RemotePartyRole.SUPPLIER),
    KeyUsage.DIGITAL_SIGNATURE.value,
    int(CellUsage.MANAGEMENT),
)


def supplier_signing_skis(db: Database, euis: Sequence[Eui64]) -> dict[Eui64, bytes | None]:
    """Each known device's Supplier digital-signing cell SKI (None: no such cell)."""
    return {eui: f.supplier_ski for eui, f in device_facts(db, euis).items()}


def set_inventory(
    db: Database,
    eui: Eui64,
    *,
    device_type: str | None,
    hardware_version: int | None,
    current_entry_id: str | None,
    now: dt.datetime,
) -> bool:
    """Record what a device is and runs; True if the device was new to the registry."""
    with db.session() as s:
        device = s.get(Device, eui.hex)
        created = device is None
        if device is None:
            device = Device(eui=eui.hex, updated_at=now)
            s.add(device)
        if device_type is not None:
            device.device_type = device_type
        if hardware_version is not None:
            device.hardware_version = hardware_version
        if current_entry_id is not None:
            device.current_entry_id = current_entry_id
        device.updated_at = now
    return created


def _cell(r: TrustAnchorCellRow) -> TrustAnchorCell:
    return TrustAnchorCell(
        role=r.role,
        key_usage=KeyUsage(r.key_usage),
        cell_usage=CellUsage(r.cell_usage),
        subject_eui=Eui64(bytes.fromhex(r.subject_eui)),
        ski=bytes.fromhex(r.ski),
    )


def import_inventory(
    db: Database, rows: Iterable[InventoryRow | RowError], now: dt.datetime
) -> tuple[int, list[RowError]]:
    """Record every row in one transaction; with any bad row, nothing is recorded."""
    errors: list[RowError] = []
    count = 0
    try:
        count = _record_inventory(db, rows, errors, now)
    except _Refused:
        return 0, errors
    return count, errors


class _Refused(Exception):
    """Rolls the inventory transaction back."""


def _record_inventory(
    db: Database, rows: Iterable[InventoryRow | RowError], errors: list[RowError], now: dt.datetime
) -> int:
    count = 0
    with db.session() as s:
        for row in rows:
            if isinstance(row, RowError):
                errors.append(row)
                continue
            device = s.get(Device, row.device.hex)
            if device is None:
                device = Device(eui=row.device.hex, updated_at=now)
                s.add(device)
            device.device_type = row.device_type.name
            device.hardware_version = row.hardware_version
            device.current_entry_id = row.current_entry_id
            device.updated_at = now
            count += 1
        if errors:
            raise _Refused
    return count


def devices_per_entry(db: Database) -> dict[str, int]:
    """How many registered devices run each CPL entry: for drawing the upgrade graph."""
    with db.session() as s:
        rows = s.execute(
            select(Device.current_entry_id, func.count())
            .where(Device.current_entry_id.is_not(None))
            .group_by(Device.current_entry_id)
        )
        return {entry: int(n) for entry, n in rows if entry is not None}


_SUPPLIER_DS_CELLS = and_(
    TrustAnchorCellRow.role == int(RemotePartyRole.SUPPLIER),
    TrustAnchorCellRow.key_usage == KeyUsage.DIGITAL_SIGNATURE.value,
)


def devices_trusting(db: Database, ski: bytes) -> list[Eui64]:
    """Devices whose Supplier digital-signing cell (either cell usage) names this SKI."""
    query = (
        select(TrustAnchorCellRow.device_eui)
        .distinct()
        .where(_SUPPLIER_DS_CELLS, TrustAnchorCellRow.ski == ski.hex())
        .order_by(TrustAnchorCellRow.device_eui)
    )
    with db.read() as conn:
        return [Eui64(bytes.fromhex(e)) for (e,) in conn.execute(query)]


def trusting_counts(db: Database) -> dict[bytes, int]:
    """How many devices name each SKI in their Supplier digital-signing cells."""
    query = (
        select(TrustAnchorCellRow.ski, func.count(func.distinct(TrustAnchorCellRow.device_eui)))
        .where(_SUPPLIER_DS_CELLS)
        .group_by(TrustAnchorCellRow.ski)
    )
    with db.read() as conn:
        return {bytes.fromhex(ski): n for ski, n in conn.execute(query)}
