"""SR 11.3 requests the service issued: a CS06 pre-command is signed only if it matches one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update

from signer.gbcs.eui import Eui64
from signer.registry.db import Database
from signer.registry.models import Activation


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
    """Store a batch in one statement, before any of its requests leaves the service."""
    if not issued:
        return
    with db.session() as s:
        s.execute(insert(Activation), [
            {"originator": a.originator.hex, "counter": a.counter, "device_eui": a.device.hex,
             "image_id": a.image_id, "execution_time": a.execution_time, "cancel": a.cancel,
             "issued_at": a.issued_at} for a in issued])


_GET = select(Activation.device_eui, Activation.image_id, Activation.execution_time,
              Activation.cancel, Activation.issued_at, Activation.pre_command_signed_at).where(
    Activation.originator == bindparam("originator"), Activation.counter == bindparam("counter"))


def get(db: Database, originator: Eui64, counter: int) -> IssuedActivation | None:
    with db.read() as conn:  # a plain read: one per pre-command, no ORM identity map needed
        row = conn.execute(_GET, {"originator": originator.hex, "counter": counter}).first()
    if row is None:
        return None
    return IssuedActivation(
        originator=originator, counter=counter, device=Eui64(bytes.fromhex(row.device_eui)),
        image_id=row.image_id, execution_time=_aware(row.execution_time), cancel=row.cancel,
        issued_at=row.issued_at, pre_command_signed_at=row.pre_command_signed_at)


def claim_pre_command(db: Database, originator: Eui64, counter: int, now: dt.datetime) -> bool:
    """Mark the activation's pre-command as being signed; False if it already was.

    One atomic UPDATE: of two concurrent requests for the same pre-command, one wins.
    """
    with db.engine.begin() as conn:
        result = conn.execute(update(Activation).where(
            Activation.originator == originator.hex, Activation.counter == counter,
            Activation.pre_command_signed_at.is_(None)).values(pre_command_signed_at=now))
    return bool(result.rowcount)


def release_pre_command(db: Database, originator: Eui64, counter: int) -> None:
    """Undo a claim whose signing failed, so the pre-command can be tried again."""
    with db.engine.begin() as conn:
        conn.execute(update(Activation).where(Activation.originator == originator.hex,
                                              Activation.counter == counter)
                     .values(pre_command_signed_at=None))


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite returns naive datetimes: everything stored here is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value
