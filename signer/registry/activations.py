"""SR 11.3 requests the service issued: a CS06 pre-command is signed only if it matches one.

A campaign's statements (each batch's insert, look-up, claim and mark) run at driver speed
through ``RawCursor``: SQLAlchemy's statement machinery cost more than the statements
(measured per request: 12 against 6 us for the insert, 17 against 7 us for the look-up).
Their values pass through the column types' own processors for the dialect, so what they
store and read back is exactly what SQLAlchemy's statements store and read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Dialect, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from signer.gbcs.eui import Eui64
from signer.registry.db import Database, RawCursor
from signer.registry.models import Activation

# Core, not the ORM's bulk path: one executemany per batch of a campaign
_TABLE: Table = Activation.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class IssuedActivation:
    originator: Eui64
    counter: int
    device: Eui64
    image_id: str
    execution_time: dt.datetime | None
    cancel: bool
    issued_at: dt.datetime
    pre_command_signed_at: dt.datetime | None = None
    # a campaign's pre-flight failed: never returned, no pre-command is ever signed for it
    withheld_at: dt.datetime | None = None


def record(db: Database, issued: Sequence[IssuedActivation]) -> None:
    """Store a batch in a transaction of its own."""
    with db.session() as s:
        insert_issued(s, issued)


def insert_issued(s: Session, issued: Sequence[IssuedActivation]) -> None:
    """Store a batch in one statement, inside the caller's transaction: the signing door's,
    so the requests are issued exactly when their signatures' audit records commit."""
    if not issued:
        return
    s.execute(
        insert(_TABLE),
        [
            {
                "originator": a.originator.hex,
                "counter": a.counter,
                "device_eui": a.device.hex,
                "image_id": a.image_id,
                "execution_time": a.execution_time,
                "cancel": a.cancel,
                "issued_at": a.issued_at,
            }
            for a in issued
        ],
    )


def insert_campaign_batch(
    s: Session,
    *,
    originator: Eui64,
    first_counter: int,
    devices: Sequence[Eui64],
    image_id: str,
    execution_time: dt.datetime | None,
    cancel: bool,
    issued_at: dt.datetime,
) -> None:
    """``insert_issued`` for one batch of a campaign: the requests of ``devices``, in order,
    have the counters ``first_counter``, ``first_counter + 1``, ... and share everything
    else, so no ``IssuedActivation`` is made per request only to be read back into the
    statement's parameters (5 us each, a third of what the row itself costs)."""
    if not devices:
        return
    types = _types(s.get_bind().dialect)
    shared = (
        image_id,
        types.time_in(execution_time),
        types.bool_in(cancel),
        types.time_in(issued_at),
    )
    origin = originator.hex
    RawCursor.of(s).executemany(
        _INSERT, [(origin, first_counter + i, d.hex, *shared) for i, d in enumerate(devices)]
    )


# The model's own table and column names, and markers: nothing from outside.
_INSERT = (
    "INSERT INTO activations (originator, counter, device_eui, image_id, execution_time, "
    "cancel, issued_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_MANY_SQL = (
    "SELECT counter, device_eui, image_id, execution_time, cancel, issued_at, "
    "pre_command_signed_at, withheld_at FROM activations "
    "WHERE originator = ? AND counter IN ({markers})"
)
_CLAIM_SQL = (
    "UPDATE activations SET pre_command_claimed_at = ? WHERE originator = ? "
    "AND counter IN ({markers}) AND pre_command_signed_at IS NULL AND withheld_at IS NULL "
    "AND (pre_command_claimed_at IS NULL OR pre_command_claimed_at <= ?) RETURNING counter"
)
_MARK_SQL = (
    "UPDATE activations SET pre_command_signed_at = ?, pre_command_claimed_at = NULL "
    "WHERE originator = ? AND counter IN ({markers})"
)
#: counters per statement: far below every driver's limit of parameters
_CHUNK = 1000


def _chunks(counters: Sequence[int]) -> list[list[int]]:
    values = list(counters)
    return [values[i : i + _CHUNK] for i in range(0, len(values), _CHUNK)]


def _markers(n: int) -> str:
    return ",".join("?" * n)


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Types:
    """The value processors of the table's DateTime and Boolean columns for one dialect."""

    time_in: Callable[[Any], Any]
    time_out: Callable[[Any], Any]
    bool_in: Callable[[Any], Any]
    bool_out: Callable[[Any], Any]


_TYPES: dict[tuple[str, str], _Types] = {}


def _types(dialect: Dialect) -> _Types:
    key = (dialect.name, dialect.driver)
    found = _TYPES.get(key)
    if found is None:
        time = _TABLE.c.issued_at.type.dialect_impl(dialect)
        flag = _TABLE.c.cancel.type.dialect_impl(dialect)
        found = _TYPES[key] = _Types(
            time_in=time.bind_processor(dialect) or _same,
            time_out=time.result_processor(dialect, None) or _same,
            bool_in=flag.bind_processor(dialect) or _same,
            bool_out=flag.result_processor(dialect, None) or _same,
        )
    return found


_MANY = select(
    Activation.counter,
    Activation.device_eui,
    Activation.image_id,
    Activation.execution_time,
    Activation.cancel,
    Activation.issued_at,
    Activation.pre_command_signed_at,
).where(
    Activation.originator == bindparam("originator"),
    Activation.counter.in_(bindparam("counters", expanding=True)),
)
_GET = select(
    Activation.device_eui,
    Activation.image_id,
    Activation.execution_time,
    Activation.cancel,
    Activation.issued_at,
    Activation.pre_command_signed_at,
    Activation.withheld_at,
).where(
    Activation.originator == bindparam("originator"), Activation.counter == bindparam("counter")
)


def get(db: Database, originator: Eui64, counter: int) -> IssuedActivation | None:
    with db.read() as conn:  # a plain read: one per pre-command, no ORM identity map needed
        row = conn.execute(_GET, {"originator": originator.hex, "counter": counter}).first()
    if row is None:
        return None
    return IssuedActivation(
        originator=originator,
        counter=counter,
        device=Eui64(bytes.fromhex(row.device_eui)),
        image_id=row.image_id,
        execution_time=_aware(row.execution_time),
        cancel=row.cancel,
        issued_at=_aware(row.issued_at) or row.issued_at,
        pre_command_signed_at=_aware(row.pre_command_signed_at),
        withheld_at=_aware(row.withheld_at),
    )


def get_many(
    db: Database, originator: Eui64, counters: Sequence[int]
) -> dict[int, IssuedActivation]:
    """The activations with these counters, in one query per thousand."""
    out: dict[int, IssuedActivation] = {}
    types = _types(db.engine.dialect)
    times: dict[Any, dt.datetime | None] = {}  # a batch shares its issue time: read once

    def time(value: Any) -> dt.datetime | None:
        if value is None:
            return None
        found = times.get(value)
        if found is None:
            found = times[value] = _aware(types.time_out(value))
        return found

    origin = originator.hex
    with db.cursor() as cur:
        for chunk in _chunks(sorted(set(counters))):
            sql = _MANY_SQL.format(markers=_markers(len(chunk)))
            for row in cur.execute(sql, (origin, *chunk)).fetchall():
                counter, device, image_id, execution_time, cancel, issued_at, signed_at, held = row
                out[counter] = IssuedActivation(
                    originator=originator,
                    counter=counter,
                    device=Eui64(bytes.fromhex(device)),
                    image_id=image_id,
                    execution_time=time(execution_time),
                    cancel=types.bool_out(cancel),
                    issued_at=time(issued_at) or issued_at,  # NOT NULL: never the latter
                    pre_command_signed_at=time(signed_at),
                    withheld_at=time(held),
                )
    return out


#: how long a claim holds a pre-command for its signer; far longer than a batch takes
CLAIM_LEASE = dt.timedelta(minutes=5)


def claim_pre_commands(
    db: Database, originator: Eui64, counters: Sequence[int], now: dt.datetime
) -> set[int]:
    """Claim these activations' pre-commands for signing; returns the counters claimed.

    One atomic UPDATE ... RETURNING per thousand counters, all in one transaction: of two
    concurrent claims, one wins each row, so a pre-command is signed once. A claim is a
    lease: one whose signer died, or could not release it, can be claimed again after
    `CLAIM_LEASE`. Only `mark_signed`, in the
    signatures' audit transaction, makes a pre-command signed for good.
    """
    if not counters:
        return set()
    types = _types(db.engine.dialect)
    at, expired = types.time_in(now), types.time_in(now - CLAIM_LEASE)
    claimed: set[int] = set()
    with db.cursor() as cur:  # one transaction: every chunk's claims, or none
        for chunk in _chunks(counters):
            sql = _CLAIM_SQL.format(markers=_markers(len(chunk)))
            claimed.update(
                int(r[0]) for r in cur.execute(sql, (at, originator.hex, *chunk, expired))
            )
        cur.commit()
    return claimed


def mark_signed(s: Session, originator: Eui64, counters: Sequence[int], now: dt.datetime) -> None:
    """Inside the audit records' transaction: signed exactly when the records commit."""
    if not counters:
        return
    cur, at = RawCursor.of(s), _types(s.get_bind().dialect).time_in(now)
    for chunk in _chunks(counters):
        cur.execute(_MARK_SQL.format(markers=_markers(len(chunk))), (at, originator.hex, *chunk))


def release_pre_commands(db: Database, originator: Eui64, counters: Sequence[int]) -> None:
    """Give back claims whose signing failed, so those pre-commands can be tried at once
    (if this fails too, the lease runs out)."""
    with db.session() as s:
        s.execute(
            update(Activation)
            .where(
                Activation.originator == originator.hex,
                Activation.counter.in_(list(counters)),
                Activation.pre_command_signed_at.is_(None),
            )
            .values(pre_command_claimed_at=None)
        )


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes: everything stored here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value


_WITHHOLD_SQL = (
    "UPDATE activations SET withheld_at = ? WHERE originator = ? AND counter IN ({markers})"
)
_LATEST_SQL = (
    "SELECT device_eui, MAX(counter) FROM activations WHERE originator = ? "
    "AND device_eui IN ({markers}) GROUP BY device_eui"
)


def mark_withheld(s: Session, originator: Eui64, counters: Sequence[int], now: dt.datetime) -> None:
    """SR 11.3 requests a campaign's pre-flight withheld, in the transaction that issued
    them: no pre-command can ever be signed for them."""
    if not counters:
        return
    cur, at = RawCursor.of(s), _types(s.get_bind().dialect).time_in(now)
    for chunk in _chunks(counters):
        sql = _WITHHOLD_SQL.format(markers=_markers(len(chunk)))
        cur.execute(sql, (at, originator.hex, *chunk))


def latest_counters(db: Database, originator: Eui64, devices: Sequence[Eui64]) -> dict[Eui64, int]:
    """The greatest counter of an SR 11.3 request issued to each device (absent: none)."""
    by_hex = {d.hex: d for d in devices}
    out: dict[Eui64, int] = {}
    keys = list(by_hex)
    with db.cursor() as cur:
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i : i + _CHUNK]
            sql = _LATEST_SQL.format(markers=_markers(len(chunk)))
            for device, counter in cur.execute(sql, (originator.hex, *chunk)).fetchall():
                out[by_hex[device]] = int(counter)
    return out
