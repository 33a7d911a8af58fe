"""The SR 11.3 requests the service issued, as stored: a campaign batch's rows (written at
driver speed, with the column types' own processors) read back exactly as rows written
through SQLAlchemy's statements do, and a pre-command's claim is held by one signer at a
time, however many statements a batch's claim takes. Each test runs on SQLite and on a real
PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading

from signer.gbcs.eui import Eui64
from signer.registry import activations
from signer.registry.activations import CLAIM_LEASE, IssuedActivation
from signer.registry.db import Database, open_database

SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
IMAGE = "77c217f22a739fe20c0612284c38ecbb560c2b621b06f11578adbe27899d2ca9"
NOW = dt.datetime(2026, 12, 3, 14, 30, 15, 123456, tzinfo=dt.UTC)
DATED = dt.datetime(2031, 1, 15, 9, 0, tzinfo=dt.UTC)
DEVICES = [Eui64(bytes((0, 0xDA, 0, 0, 0, 0, 0, i))) for i in range(1, 4)]


def stored(db: Database, counter: int) -> tuple[object, ...]:
    """The row as the driver hands it back, without any type's processing."""
    with db.cursor() as cur:
        row = cur.execute(
            "SELECT device_eui, image_id, execution_time, cancel, issued_at, "
            "pre_command_signed_at, pre_command_claimed_at FROM activations "
            "WHERE originator = ? AND counter = ?",
            (SUPPLIER.hex, counter),
        ).fetchone()
    assert row is not None
    return tuple(row)


def fleet(n: int) -> list[Eui64]:
    return [Eui64(i.to_bytes(8, "big")) for i in range(1, n + 1)]


def test_a_campaign_batch_reads_back_as_requests_stored_one_by_one(db_url: str) -> None:
    db = open_database(db_url)
    shapes = ((100, None, False), (200, DATED, False), (300, None, True))
    for base, execution_time, cancel in shapes:
        activations.record(  # SQLAlchemy's insert
            db,
            [
                IssuedActivation(SUPPLIER, base + i, d, IMAGE, execution_time, cancel, NOW)
                for i, d in enumerate(DEVICES)
            ],
        )
        with db.session() as s:  # the campaign's, at driver speed
            activations.insert_campaign_batch(
                s,
                originator=SUPPLIER,
                first_counter=base + 50,
                devices=DEVICES,
                image_id=IMAGE,
                execution_time=execution_time,
                cancel=cancel,
                issued_at=NOW,
            )
        one_by_one = activations.get_many(db, SUPPLIER, [base + i for i in range(3)])
        batch = activations.get_many(db, SUPPLIER, [base + 50 + i for i in range(3)])
        for i, device in enumerate(DEVICES):
            issued = IssuedActivation(
                SUPPLIER, base + i, device, IMAGE, execution_time, cancel, NOW
            )
            assert one_by_one[base + i] == issued
            assert batch[base + 50 + i] == dataclasses.replace(issued, counter=base + 50 + i)
            # SQLAlchemy's read of the campaign's row agrees with the driver-speed one
            assert activations.get(db, SUPPLIER, base + 50 + i) == batch[base + 50 + i]
            assert batch[base + 50 + i].issued_at.utcoffset() == dt.timedelta(0)
            # and what is stored is the same, byte for byte (SQL compares the stored form)
            assert stored(db, base + 50 + i) == stored(db, base + i)
    assert activations.get_many(db, SUPPLIER, [999]) == {}
    db.dispose()


def test_a_claim_is_taken_once_runs_out_and_ends_when_signed(db_url: str) -> None:
    """2,500 counters: the claim takes three statements, in one transaction."""
    db = open_database(db_url)
    devices = fleet(2500)
    counters = list(range(1, 2501))
    with db.session() as s:
        activations.insert_campaign_batch(
            s,
            originator=SUPPLIER,
            first_counter=1,
            devices=devices,
            image_id=IMAGE,
            execution_time=None,
            cancel=False,
            issued_at=NOW,
        )
    claim = activations.claim_pre_commands
    assert claim(db, SUPPLIER, counters, NOW) == set(counters)
    assert claim(db, SUPPLIER, counters, NOW + CLAIM_LEASE - dt.timedelta(seconds=1)) == set()
    later = NOW + CLAIM_LEASE
    assert claim(db, SUPPLIER, counters[:10], later) == set(counters[:10])  # the lease ran out
    with db.session() as s:
        activations.mark_signed(s, SUPPLIER, counters[:1500], later)
    much_later = NOW + 3 * CLAIM_LEASE
    assert claim(db, SUPPLIER, counters, much_later) == set(counters[1500:])
    activations.release_pre_commands(db, SUPPLIER, counters)
    assert claim(db, SUPPLIER, counters, much_later) == set(counters[1500:])  # released
    got = activations.get_many(db, SUPPLIER, counters)
    assert {got[c].pre_command_signed_at for c in counters[:1500]} == {later}
    assert {got[c].pre_command_signed_at for c in counters[1500:]} == {None}
    assert [got[c].device for c in counters] == devices
    db.dispose()


def test_concurrent_claims_never_share_a_pre_command(db_url: str) -> None:
    """Two replicas' worth of connections claim the same batch at once: each pre-command
    goes to exactly one of them."""
    replicas = [open_database(db_url), open_database(db_url)]
    counters = list(range(1, 1501))
    with replicas[0].session() as s:
        activations.insert_campaign_batch(
            s,
            originator=SUPPLIER,
            first_counter=1,
            devices=fleet(1500),
            image_id=IMAGE,
            execution_time=None,
            cancel=False,
            issued_at=NOW,
        )
    won: list[set[int]] = []
    lock = threading.Lock()

    def work(r: int) -> None:
        got = activations.claim_pre_commands(replicas[r % 2], SUPPLIER, counters, NOW)
        with lock:
            won.append(got)

    threads = [threading.Thread(target=work, args=(r,)) for r in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(w) for w in won) == len(counters)
    assert set().union(*won) == set(counters)
    for db in replicas:
        db.dispose()
