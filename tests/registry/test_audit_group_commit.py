"""Group commit of the audit trail: calls waiting while another writes share one
transaction, and each still ends as its own records and writes decide.

The first call's ``along`` write blocks until the others are queued behind it, so the
group is formed for certain; transactions are counted as connections taken from the pool."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import event, text
from sqlalchemy.orm import Session

from signer.errors import CallEnded, PolicyRefused, Unavailable
from signer.registry import audit
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database, open_database
from signer.service.audit import verify_chain
from tests.support.audit_rows import assert_chain, rows

T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def entry(client: str) -> AuditEntry:
    return AuditEntry(at=T0, client=client, operation="resign", details={"who": client})


@dataclass
class Calls:
    """Threads calling `audit.record`, each with its outcome."""

    db: Database
    threads: list[threading.Thread] = field(default_factory=list)
    outcomes: dict[str, BaseException | None] = field(default_factory=dict)

    def start(
        self,
        client: str,
        along: Callable[[Session], None] | None = None,
        before_commit: Callable[[], None] | None = None,
    ) -> None:
        def run() -> None:
            try:
                audit.record(self.db, [entry(client)] * 2, [along] if along else [], before_commit)
                self.outcomes[client] = None
            except Exception as exc:
                self.outcomes[client] = exc

        thread = threading.Thread(target=run)
        self.threads.append(thread)
        thread.start()

    def join(self) -> None:
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


def transactions(db: Database) -> list[int]:
    """Connections taken from the pool from now on: one per transaction the trail writes."""
    counted = [0]

    def checkout(*_args: object) -> None:
        counted[0] += 1

    event.listen(db.engine, "checkout", checkout)
    return counted


def queue_behind_a_blocked_writer(
    db: Database, calls: Calls, then: Callable[[Session], None] | None = None
) -> threading.Event:
    """Start the first call and wait until it is writing, blocked inside its transaction
    (which runs ``then`` once released); returns the event that releases it."""
    release = threading.Event()

    def blocked(s: Session) -> None:
        release.wait(30)
        if then is not None:
            then(s)

    calls.start("first", along=blocked)
    group = audit._group_of(db)
    deadline = time.monotonic() + 10
    while not group._writing:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    return release


def wait_queued(db: Database, n: int) -> None:
    group = audit._group_of(db)
    deadline = time.monotonic() + 10
    while len(group._waiting) < n:
        assert time.monotonic() < deadline
        time.sleep(0.005)


def clients(db_url: str) -> list[str]:
    return [r["client"] for r in rows(db_url)]


def test_calls_waiting_behind_a_write_commit_together(db: Database, db_url: str) -> None:
    calls = Calls(db)
    release = queue_behind_a_blocked_writer(db, calls)
    for name in ("b", "c", "d"):
        calls.start(name)
    wait_queued(db, 3)
    counted = transactions(db)
    release.set()
    calls.join()
    assert calls.outcomes == {"first": None, "b": None, "c": None, "d": None}
    assert counted[0] == 1  # after the first: b, c and d in one transaction
    assert sorted(clients(db_url)) == sorted(["first"] * 2 + ["b", "c", "d"] * 2)
    assert assert_chain(db_url) == 8
    assert verify_chain(db).intact


def test_a_member_whose_client_left_is_left_out_and_told(db: Database, db_url: str) -> None:
    def gone() -> None:
        raise CallEnded("the call ended")

    calls = Calls(db)
    release = queue_behind_a_blocked_writer(db, calls)
    calls.start("b")
    calls.start("c", before_commit=gone)
    calls.start("d")
    wait_queued(db, 3)
    release.set()
    calls.join()
    assert isinstance(calls.outcomes["c"], CallEnded)
    assert calls.outcomes["b"] is None and calls.outcomes["d"] is None
    assert "c" not in clients(db_url) and clients(db_url).count("b") == 2
    assert assert_chain(db_url) == 6


def test_a_failing_write_fails_its_own_call_only(db: Database, db_url: str) -> None:
    def refused(_s: Session) -> None:
        raise PolicyRefused("already signed")

    def rolled_back_with_it(s: Session) -> None:
        s.execute(text("UPDATE audit_head SET seq = seq WHERE id = 1"))

    calls = Calls(db)
    release = queue_behind_a_blocked_writer(db, calls)
    calls.start("b", along=rolled_back_with_it)
    calls.start("c", along=refused)
    calls.start("d")
    wait_queued(db, 3)
    counted = transactions(db)
    release.set()
    calls.join()
    assert isinstance(calls.outcomes["c"], PolicyRefused)
    assert calls.outcomes["b"] is None and calls.outcomes["d"] is None
    # the group's transaction was rolled back at c's write, then b and d written together
    assert counted[0] == 2
    assert sorted(clients(db_url)) == sorted(["first"] * 2 + ["b", "d"] * 2)
    assert assert_chain(db_url) == 6


def test_a_failing_database_fails_the_group_at_once_and_writes_nothing_twice(
    db: Database, db_url: str
) -> None:
    def break_inserts_for_b(s: Session) -> None:
        """In the first call's own transaction: from its commit on, b's records fail."""
        if s.get_bind().dialect.name == "postgresql":
            s.execute(
                text(
                    "CREATE FUNCTION full_for_b() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "IF NEW.client = 'b' THEN RAISE EXCEPTION 'disk full'; END IF; "
                    "RETURN NEW; END $$"
                )
            )
            s.execute(
                text(
                    "CREATE TRIGGER full_for_b BEFORE INSERT ON audit_records FOR EACH ROW "
                    "EXECUTE FUNCTION full_for_b()"
                )
            )
        else:
            s.execute(
                text(
                    "CREATE TRIGGER full_for_b BEFORE INSERT ON audit_records "
                    "WHEN NEW.client = 'b' BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )

    calls = Calls(db)
    release = queue_behind_a_blocked_writer(db, calls, then=break_inserts_for_b)
    for name in ("b", "c", "d"):
        calls.start(name)
    wait_queued(db, 3)
    counted = transactions(db)
    release.set()
    calls.join()
    assert calls.outcomes["first"] is None
    for name in ("b", "c", "d"):  # the store failed, not a call: every member alike
        error = calls.outcomes[name]
        assert isinstance(error, Unavailable) and "disk full" in str(error), error
    assert counted[0] == 1  # one try, not one per member
    assert clients(db_url) == ["first"] * 2
    assert assert_chain(db_url) == 2


def test_each_member_is_checked_against_its_own_client(db: Database, db_url: str) -> None:
    """The real check (`signing`'s): it reads the caller bound to the call's thread, and the
    leader runs it for every member of its group."""
    from signer.caller import Caller, bound
    from signer.service.signing import _client_still_waiting as waiting

    def as_caller(name: str, here: bool) -> Callable[[], None]:
        def run() -> None:
            with bound(Caller(identity=name, request_id=name, active=lambda: here)):
                try:
                    audit.record(db, [entry(name)], [], waiting)
                    calls.outcomes[name] = None
                except Exception as exc:
                    calls.outcomes[name] = exc

        return run

    calls = Calls(db)
    release = queue_behind_a_blocked_writer(db, calls)
    for name, here in (("gone", False), ("c", True), ("d", True)):
        thread = threading.Thread(target=as_caller(name, here))
        calls.threads.append(thread)
        thread.start()
    wait_queued(db, 3)
    release.set()
    calls.join()
    assert isinstance(calls.outcomes["gone"], CallEnded)
    assert calls.outcomes["c"] is None and calls.outcomes["d"] is None
    assert sorted(clients(db_url)) == sorted(["first"] * 2 + ["c", "d"])
