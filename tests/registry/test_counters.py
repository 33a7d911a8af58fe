"""RequestID counters: strictly increasing, never reused, surviving a restart and a restore.

Each test runs on SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from signer.gbcs.eui import Eui64
from signer.registry import counters
from signer.registry.db import open_database
from tests.support.postgres import Cluster

A = Eui64.parse("90-B3-D5-1F-30-01-00-00")
B = Eui64.parse("90-B3-D5-1F-30-02-00-00")


def no_floor() -> int:
    return 0


def test_counters_increase_per_originator_and_survive_reopening(db_url: str) -> None:
    db = open_database(db_url)
    assert [counters.reserve(db, A, clock=no_floor) for _ in range(3)] == [1, 2, 3]
    assert counters.reserve(db, B, clock=no_floor) == 1
    assert counters.reserve(db, A, count=10, clock=no_floor) == 4
    db.dispose()
    db = open_database(db_url)  # a restart: the migration runs again, the counters stay
    assert counters.reserve(db, A, clock=no_floor) == 14
    assert counters.last_issued(db, B) == 1
    db.dispose()


def test_a_reservation_starts_at_the_clock_floor_and_is_not_ahead_of_it(db_url: str) -> None:
    db = open_database(db_url)
    before = counters.wall_clock_us()
    first = counters.reserve(db, A)
    assert first >= before
    batch = counters.reserve(db, A, count=5000)  # 5 ms worth of counters at once
    assert batch > first
    assert counters.wall_clock_us() >= batch + 4999  # handed out only once the clock passed
    # a floor never moves the sequence back: a clock behind the counters continues from them
    assert counters.reserve(db, A, clock=lambda: before) == batch + 5000
    db.dispose()


def test_concurrent_reservations_never_repeat(db_url: str) -> None:
    db = open_database(db_url)
    got: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [counters.reserve(db, A, count=1 + i % 3) for i in range(40)]
        assert mine == sorted(mine) and len(set(mine)) == len(mine)
        with lock:
            got.extend(
                c + k
                for c, n in zip(mine, [1 + i % 3 for i in range(40)], strict=True)
                for k in range(n)
            )

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 8 * sum(1 + i % 3 for i in range(40)) == len(set(got))
    db.dispose()


def test_a_second_database_connection_sees_the_same_sequence(db_url: str) -> None:
    one, two = open_database(db_url), open_database(db_url)
    seq = [
        counters.reserve(one, A, clock=no_floor),
        counters.reserve(two, A, clock=no_floor),
        counters.reserve(one, A, clock=no_floor),
    ]
    assert seq == [1, 2, 3]
    one.dispose()
    two.dispose()


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup API (what `.backup` and `.restore` use), connections closed."""
    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


class Backups:
    """Back up and restore the database behind a URL the way an operator would."""

    def __init__(self, url: str, request: pytest.FixtureRequest, tmp: Path) -> None:
        self.url, self.request, self.file = url, request, tmp / "backup"

    def backup(self) -> None:
        if self.url.startswith("sqlite"):
            _sqlite_copy(Path(self.url.removeprefix("sqlite:///")), self.file)
        else:
            self._cluster().dump(self.url, self.file)

    def restore(self) -> None:
        if self.url.startswith("sqlite"):
            path = Path(self.url.removeprefix("sqlite:///"))
            for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                stale.unlink(missing_ok=True)
            _sqlite_copy(self.file, path)
        else:
            self._cluster().restore(self.url, self.file)

    def _cluster(self) -> Cluster:
        cluster: Cluster = self.request.getfixturevalue("postgres")
        return cluster


@pytest.mark.parametrize("issue_as", ["one at a time", "in batches"])
def test_counters_issued_after_a_restore_never_repeat_earlier_ones(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path, issue_as: str
) -> None:
    """Back up, issue, restore the backup, issue again: no counter comes back."""
    size = 1 if issue_as == "one at a time" else 1000
    db = open_database(db_url)
    issued = [counters.reserve(db, A, count=size) for _ in range(3)]
    backups = Backups(db_url, request, tmp_path)
    backups.backup()
    issued += [counters.reserve(db, A, count=size) for _ in range(20)]
    db.dispose()
    backups.restore()
    db = open_database(db_url)
    assert counters.last_issued(db, A) == issued[2] + size - 1  # the restore forgot 20
    after = [counters.reserve(db, A, count=size) for _ in range(20)]
    handed_out = {c + k for c in issued for k in range(size)}
    again = {c + k for c in after for k in range(size)}
    assert not handed_out & again
    assert min(after) > max(handed_out)
    db.dispose()


def test_without_the_floor_a_restore_would_repeat_counters(
    db_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The control: the same sequence with the floor taken away does repeat (so the test
    above could fail)."""
    db = open_database(db_url)
    counters.reserve(db, A, clock=no_floor)
    backups = Backups(db_url, request, tmp_path)
    backups.backup()
    issued = [counters.reserve(db, A, clock=no_floor) for _ in range(5)]
    db.dispose()
    backups.restore()
    db = open_database(db_url)
    assert counters.reserve(db, A, clock=no_floor) in issued
    db.dispose()
