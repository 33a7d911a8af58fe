"""RequestID counters: strictly increasing, never reused, surviving a restart."""

from __future__ import annotations

import threading
from pathlib import Path

from signer.gbcs.eui import Eui64
from signer.registry import counters
from signer.registry.db import open_database

A = Eui64.parse("90-B3-D5-1F-30-01-00-00")
B = Eui64.parse("90-B3-D5-1F-30-02-00-00")


def test_counters_increase_per_originator_and_survive_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    db = open_database(url)
    assert [counters.reserve(db, A) for _ in range(3)] == [1, 2, 3]
    assert counters.reserve(db, B) == 1
    assert counters.reserve(db, A, count=10) == 4
    db.dispose()
    db = open_database(url)  # a restart: the migration runs again, the counters stay
    assert counters.reserve(db, A) == 14
    assert counters.last_issued(db, B) == 1


def test_concurrent_reservations_never_repeat(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'c.db'}")
    got: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [counters.reserve(db, A) for _ in range(50)]
        assert mine == sorted(mine)
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 401))


def test_a_second_database_connection_sees_the_same_sequence(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    one, two = open_database(url), open_database(url)
    seq = [counters.reserve(one, A), counters.reserve(two, A), counters.reserve(one, A)]
    assert seq == [1, 2, 3]
