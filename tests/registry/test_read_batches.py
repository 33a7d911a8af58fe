"""``read_batches``: a helper thread takes some of a long look-up's batches on a second
connection. Every batch runs once and the results keep the batches' order; a helper that is
busy elsewhere leaves every batch to the caller, who never waits for it; the helper's
failure is the caller's; the caller's failure stops the helper."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future

import pytest

from signer.errors import Unavailable
from signer.registry import batches as batches_module
from signer.registry.batches import read_batches
from signer.registry.db import Database, RawCursor, open_database

HELPER = "signer-read"


@pytest.fixture
def db(db_url: str) -> Database:
    return open_database(db_url)


class Recorder:
    """Runs each batch as a real statement and notes which thread ran it."""

    def __init__(self, *, slow_first: float = 0.0) -> None:
        self.ran: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._slow_first = slow_first

    def __call__(self, cur: RawCursor, batch: int) -> tuple[int, int]:
        name = threading.current_thread().name
        if batch == 0 and self._slow_first:
            time.sleep(self._slow_first)  # the caller's first: the helper takes the rest
        (row,) = cur.execute("SELECT ? * 2", (batch,)).fetchall()
        with self._lock:
            self.ran.append((batch, name))
        return batch, int(row[0])

    def by_helper(self) -> list[int]:
        return [b for b, name in self.ran if name.startswith(HELPER)]


def test_every_batch_once_in_order_and_the_helper_takes_some(db: Database) -> None:
    run = Recorder(slow_first=0.3)
    results = read_batches(db, list(range(20)), run)
    assert results == [(i, 2 * i) for i in range(20)]
    assert sorted(b for b, _ in run.ran) == list(range(20))
    assert run.by_helper(), "the helper never took a batch while the caller was held up"


def test_one_batch_is_the_callers_alone(db: Database) -> None:
    run = Recorder()
    assert read_batches(db, [7], run) == [(7, 14)]
    assert run.by_helper() == []
    assert read_batches(db, [], run) == []


def test_a_busy_helper_leaves_every_batch_to_the_caller(db: Database) -> None:
    release = threading.Event()
    blocker: Future[bool] = batches_module._HELPER.submit(release.wait, 30)
    try:
        run = Recorder()
        started = time.monotonic()
        assert read_batches(db, list(range(10)), run) == [(i, 2 * i) for i in range(10)]
        assert time.monotonic() - started < 10  # it did not wait for the helper
        assert run.by_helper() == []
    finally:
        release.set()
        blocker.result(timeout=30)


def test_no_connection_to_spare_and_the_helper_leaves_at_once(db_url: str) -> None:
    """With every pooled connection taken but the caller's, the helper does not wait for
    one (pool_timeout): the caller reads alone, and the helper thread is free at once."""
    db = Database(db_url, pool_size=1)
    held = []
    try:
        with db.cursor():  # the caller's own, taken first below: leave exactly this one
            pass
        while db.has_spare_connection():
            held.append(db.engine.raw_connection())
        held.pop().close()  # one back, for the caller
        recorder = Recorder(slow_first=0.3)

        def run(cur: RawCursor, batch: int) -> tuple[int, int]:
            if batch == 3:  # the helper thread is free now, while the caller still reads
                batches_module._HELPER.submit(lambda: None).result(timeout=5)
            return recorder(cur, batch)

        assert read_batches(db, list(range(6)), run) == [(i, 2 * i) for i in range(6)]
        assert recorder.by_helper() == []
    finally:
        for conn in held:
            conn.close()
        db.dispose()


def test_the_helpers_failure_is_the_callers(db: Database) -> None:
    def run(cur: RawCursor, batch: int) -> int:
        if threading.current_thread().name.startswith(HELPER):
            cur.execute("SELECT * FROM no_such_table")  # a driver error on its connection
        elif batch == 0:
            time.sleep(0.3)
        return batch

    with pytest.raises(Unavailable, match="database unavailable"):
        read_batches(db, list(range(20)), run)


class Boom(RuntimeError):
    pass


def test_the_callers_failure_stops_the_helper(db: Database) -> None:
    taken: list[int] = []

    def run(cur: RawCursor, batch: int) -> int:
        if not threading.current_thread().name.startswith(HELPER):
            time.sleep(0.1)  # the helper has its connection by now
            raise Boom("the caller's batch failed")
        taken.append(batch)
        time.sleep(0.02)
        return batch

    with pytest.raises(Boom):
        read_batches(db, list(range(200)), run)
    time.sleep(0.3)  # whatever the helper still does, it does now
    done = len(taken)
    time.sleep(0.2)
    assert 0 < done, "the helper never started: this test shows nothing"
    assert len(taken) == done < 200 - 1, "the helper went on after the caller failed"
