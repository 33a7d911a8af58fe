"""SR 11.3 requests the service issued: a CS06 pre-command is signed only if it matches one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from signer.gbcs.eui import Eui64
from signer.registry.db import Database
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
    )


def get_many(
    db: Database, originator: Eui64, counters: Sequence[int]
) -> dict[int, IssuedActivation]:
    """The activations with these counters, in one query per thousand."""
    out: dict[int, IssuedActivation] = {}
    wanted = sorted(set(counters))
    with db.read() as conn:
        for i in range(0, len(wanted), 1000):
            for row in conn.execute(
                _MANY, {"originator": originator.hex, "counters": wanted[i : i + 1000]}
            ):
                out[row.counter] = IssuedActivation(
                    originator=originator,
                    counter=row.counter,
                    device=Eui64(bytes.fromhex(row.device_eui)),
                    image_id=row.image_id,
                    execution_time=_aware(row.execution_time),
                    cancel=row.cancel,
                    issued_at=_aware(row.issued_at) or row.issued_at,
                    pre_command_signed_at=_aware(row.pre_command_signed_at),
                )
    return out


#: how long a claim holds a pre-command for its signer; far longer than a batch takes
CLAIM_LEASE = dt.timedelta(minutes=5)


def claim_pre_commands(
    db: Database, originator: Eui64, counters: Sequence[int], now: dt.datetime
) -> set[int]:
    """Claim these activations' pre-commands for signing; returns the counters claimed.

    One atomic UPDATE ... RETURNING per call: of two concurrent claims, one wins each row,
    so a pre-command is signed once. A claim is a lease: one whose signer died, or could
    not release it, can be claimed again after `CLAIM_LEASE`. Only `mark_signed`, in the
    signatures' audit transaction, makes a pre-command signed for good.
    """
    if not counters:
        return set()
    with db.session() as s:
        rows = s.execute(
            update(Activation)
            .where(
                Activation.originator == originator.hex,
                Activation.counter.in_(list(counters)),
                Activation.pre_command_signed_at.is_(None),
                or_(
                    Activation.pre_command_claimed_at.is_(None),
                    Activation.pre_command_claimed_at <= now - CLAIM_LEASE,
                ),
            )
            .values(pre_command_claimed_at=now)
            .returning(Activation.counter)
        )
        return {int(r[0]) for r in rows}


def mark_signed(s: Session, originator: Eui64, counters: Sequence[int], now: dt.datetime) -> None:
    """Inside the audit records' transaction: signed exactly when the records commit."""
    if counters:
        s.execute(
            update(Activation)
            .where(Activation.originator == originator.hex, Activation.counter.in_(list(counters)))
            .values(pre_command_signed_at=now, pre_command_claimed_at=None)
        )


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
