"""RequestID counters: reserved in the database before anything is signed.

A counter handed out is never handed out again, by this process or another: one atomic
UPDATE ... RETURNING, and a crash after it leaves a gap (DUIS tolerates gaps, not repeats).
Every reservation starts at or above the wall clock in microseconds, so a database restored
from a backup cannot repeat one either; why that holds and what it costs is in the README,
section "Backups, restores and counters".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy import BigInteger, case, insert, literal, select, update
from sqlalchemy.exc import IntegrityError

from signer.errors import PolicyRefused
from signer.gbcs.eui import Eui64
from signer.registry.db import Database
from signer.registry.models import RequestCounter

log = logging.getLogger(__name__)

# BIGINT is signed on every portable backend; DUIS allows up to 2**64-1 but we stop here.
MAX_COUNTER = 2**63 - 1
#: the longest a reservation waits for the clock to pass its counters; further ahead (a
#: clock set back, counters imported from elsewhere) it returns at once and says so
MAX_WAIT = 1.0

#: the floor: now in microseconds since the Unix epoch
CounterClock = Callable[[], int]


def wall_clock_us() -> int:
    return time.time_ns() // 1000


def reserve(
    db: Database, originator: Eui64, count: int = 1, *, clock: CounterClock = wall_clock_us
) -> int:
    """Reserve ``count`` consecutive counters above the clock's floor; returns the first."""
    if count < 1:
        raise ValueError("reserve at least one counter")
    _ensure_row(db, originator)
    floor = clock()
    start = case(
        (
            RequestCounter.last_counter + 1 > literal(floor, BigInteger),
            RequestCounter.last_counter + 1,
        ),
        else_=literal(floor, BigInteger),
    )
    with db.session() as s:
        last = s.scalar(
            update(RequestCounter)
            .where(
                RequestCounter.originator == originator.hex,
                RequestCounter.last_counter <= MAX_COUNTER - count,
                literal(floor, BigInteger) <= MAX_COUNTER - count,
            )
            .values(last_counter=start + (count - 1))
            .returning(RequestCounter.last_counter)
        )
    if last is None:
        raise PolicyRefused(f"RequestID counters for {originator} are exhausted")
    _wait_for_clock(int(last), clock)
    return int(last) - count + 1


def _wait_for_clock(last: int, clock: CounterClock) -> None:
    """Return once the clock has passed ``last``: what a restore relies on."""
    ahead = last - clock()
    if ahead <= 0:
        return
    if ahead > MAX_WAIT * 1e6:
        log.warning(
            "RequestID counters are %.1f s ahead of this host's clock (clock set "
            "back?): a database restored from a backup could repeat them",
            ahead / 1e6,
        )
        return
    deadline = time.monotonic() + ahead / 1e6 + 0.001
    while clock() < last and time.monotonic() < deadline:
        time.sleep(max(0.0, (last - clock()) / 1e6))


def last_issued(db: Database, originator: Eui64) -> int | None:
    with db.session() as s:
        value = s.scalar(
            select(RequestCounter.last_counter).where(RequestCounter.originator == originator.hex)
        )
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
