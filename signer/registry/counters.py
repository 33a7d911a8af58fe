"""RequestID counters: reserved in the database before anything is signed.

A counter handed out is never handed out again, by this process or another: the
increment is one atomic UPDATE ... RETURNING. A crash after reserving leaves a gap,
which DUIS tolerates; a repeat it does not.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from signer.errors import PolicyRefusal
from signer.gbcs.eui import Eui64
from signer.registry.db import Database
from signer.registry.models import RequestCounter

# BIGINT is signed on every portable backend; DUIS allows up to 2**64-1 but we stop here.
MAX_COUNTER = 2**63 - 1


def reserve(db: Database, originator: Eui64, count: int = 1) -> int:
    """Reserve ``count`` consecutive counters; returns the first."""
    if count < 1:
        raise ValueError("reserve at least one counter")
    _ensure_row(db, originator)
    with db.session() as s:
        last = s.scalar(
            update(RequestCounter)
            .where(RequestCounter.originator == originator.hex,
                   RequestCounter.last_counter <= MAX_COUNTER - count)
            .values(last_counter=RequestCounter.last_counter + count)
            .returning(RequestCounter.last_counter))
    if last is None:
        raise PolicyRefusal(f"RequestID counters for {originator} are exhausted")
    return int(last) - count + 1


def last_issued(db: Database, originator: Eui64) -> int | None:
    with db.session() as s:
        value = s.scalar(select(RequestCounter.last_counter).where(
            RequestCounter.originator == originator.hex))
    return None if value is None else int(value)


def _ensure_row(db: Database, originator: Eui64) -> None:
    with db.session() as s:
        if s.get(RequestCounter, originator.hex) is not None:
            return
    try:
        with db.session() as s:
            s.execute(insert(RequestCounter).values(originator=originator.hex, last_counter=0))
    except IntegrityError:
        pass  # another writer created it first
