"""Storing the audit trail: appending chained records and reading them back in order.

Appenders take turns through the head row: the first statement of an append is an UPDATE
of that row, which is a row lock on PostgreSQL and the database write lock on SQLite, so
replicas, the CLI and threads each chain onto the head the previous one left, never onto
the same one. Records, head and (for key operations) the change they record commit in one
transaction: no record without its change, no change without its record.
"""

from __future__ import annotations

import contextvars
import operator
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from signer.errors import Unavailable
from signer.registry.auditchain import (
    RECORD_FIELDS,
    AuditEntry,
    AuditRecord,
    Head,
    Sealable,
    entry_values,
    link,
    prepare,
)
from signer.registry.db import Database, RawCursor
from signer.registry.models import AuditHead, AuditRecordRow

HEAD_ID = 1
PAGE = 5000  # records per read while streaming: memory stays bounded by one page

_RECORDS: Table = AuditRecordRow.__table__  # type: ignore[assignment]
_HEAD: Table = AuditHead.__table__  # type: ignore[assignment]
_COLUMNS = list(_RECORDS.columns)


def append(s: Session, entries: Sequence[AuditEntry]) -> Head:
    """Chain ``entries`` onto the trail inside the caller's transaction; returns the new head.

    Raises ``Unavailable`` when the records cannot be written: the caller's transaction
    then rolls back, and whatever it was about to release stays unreleased.
    """
    return _append(s, prepare(entries))


def _append(s: Session, items: Sequence[Sealable]) -> Head:
    """``append`` of entries already ``prepare``d: the head's lock is held for numbering,
    hashing and the insert only."""
    driver_error = s.get_bind().dialect.loaded_dbapi.Error
    try:
        cur = RawCursor.of(s)
        return _chain(cur, items, _lock_head(cur))
    except (SQLAlchemyError, driver_error) as exc:
        raise Unavailable(f"audit trail unavailable: {_reason(exc)}") from exc


# The append at driver speed: it runs for every signature, and SQLAlchemy's statement
# machinery cost more than the statements (measured: 689 against 329 us per record).
_LOCK_HEAD = "UPDATE audit_head SET seq = seq WHERE id = ? RETURNING seq, hash"
_MOVE_HEAD = "UPDATE audit_head SET seq = ?, hash = ? WHERE id = ?"
_NAMES = [c.name for c in _COLUMNS]
if sorted(_NAMES) != sorted(RECORD_FIELDS):
    raise AssertionError(f"audit_records columns {_NAMES} are not the record's fields")
#: a record's values (``RECORD_FIELDS`` order, as ``AuditRecord``) in ``_NAMES`` order
_in_column_order = operator.itemgetter(*(RECORD_FIELDS.index(n) for n in _NAMES))
_INSERT = (  # the model's own column names, and markers: nothing from outside
    f"INSERT INTO audit_records ({', '.join(_NAMES)}) "  # noqa: S608
    f"VALUES ({', '.join('?' * len(_NAMES))})"
)


def _lock_head(cur: RawCursor) -> Head:
    """The head, locked: a row lock on PostgreSQL, the database write lock on SQLite."""
    locked = cur.execute(_LOCK_HEAD, (HEAD_ID,)).fetchone()
    if locked is None:
        raise Unavailable("audit trail unavailable: its head row is missing")
    return Head(int(locked[0]), str(locked[1]))


def _chain(cur: RawCursor, items: Sequence[Sealable], head: Head) -> Head:
    if not items:
        return head
    chain = link(items, head)
    cur.executemany(_INSERT, [_row(i, *c) for i, c in zip(items, chain, strict=True)])
    seq, _prev, hash_ = chain[-1]
    cur.execute(_MOVE_HEAD, (seq, hash_, HEAD_ID))
    return Head(seq, hash_)


def record(
    db: Database,
    entries: Sequence[AuditEntry],
    along: Sequence[Callable[[Session], None]] = (),
    before_commit: Callable[[], None] | None = None,
) -> Head:
    """Append ``entries`` in a transaction with the writes in ``along`` that must stand or
    fall with them; ``before_commit`` runs holding the head's lock, and if it raises, none
    of this call's records or writes are committed. Returns once they are committed.

    The ``along`` writes run holding the head's lock too, just before this call's records
    are inserted: a read they make sees every record committed before (on PostgreSQL, READ
    COMMITTED, its statement starts after the lock is held) and those of the group's
    earlier members, never this call's own (the direct limit's re-count relies on it).

    Concurrent calls in one process share a transaction (group commit): one of them takes
    every call waiting, appends them all under one lock of the head and commits once, then
    wakes the others. Each call's outcome is still its own: a call whose ``before_commit``
    raises is left out of the group; if the group's transaction fails, every member is
    written alone, so a failing ``along`` write fails its own call only.
    """
    return _group_of(db).record(
        db, _Pending(prepare(entries), tuple(along), before_commit, contextvars.copy_context())
    )


class _Pending:
    """One call's part of a group: what to write, the call's context (its caller: whose
    client ``before_commit`` asks about, whose request ID its log lines carry), and how it
    ended."""

    def __init__(
        self,
        items: list[Sealable],
        along: tuple[Callable[[Session], None], ...],
        before_commit: Callable[[], None] | None,
        context: contextvars.Context,
    ) -> None:
        self.items, self.along, self.before_commit = items, along, before_commit
        self.context = context
        self.done = False
        self.head: Head | None = None
        self.error: BaseException | None = None

    def check(self) -> None:
        if self.before_commit is not None:
            self.context.run(self.before_commit)

    def write_along(self, s: Session | None) -> None:
        for write in self.along:
            assert s is not None
            self.context.run(write, s)

    def finish(self, head: Head | None = None, error: BaseException | None = None) -> None:
        self.head, self.error, self.done = head, error, True

    def result(self) -> Head:
        if self.error is not None:
            raise self.error
        assert self.head is not None
        return self.head


class _GroupCommit:
    """Leader and followers: a call that finds no group being written writes all waiting."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Pending] = []
        self._writing = False

    def record(self, db: Database, pending: _Pending) -> Head:
        with self._cond:
            self._waiting.append(pending)
            while not pending.done and self._writing:
                self._cond.wait()
            if pending.done:
                return pending.result()
            group, self._waiting, self._writing = self._waiting, [], True
        try:
            _write(db, group)
        finally:
            for p in group:  # only if the write itself was interrupted
                if not p.done:
                    p.finish(error=Unavailable("audit trail unavailable: the write was cut"))
            with self._cond:
                self._writing = False
                self._cond.notify_all()
        return pending.result()


class _MemberFailed(Exception):
    """One member's own write failed: the group is rolled back and written without it."""

    def __init__(self, member: _Pending, error: Exception) -> None:
        self.member, self.error = member, error


def _write(db: Database, group: list[_Pending]) -> None:
    """The group in one transaction. A member whose ``along`` write fails gets its error
    and the rest are written again without it (each retry has one member fewer); any other
    failure — the lock, an insert, the commit: the database itself — fails every member
    alike at once, and nothing is written twice."""
    todo = group
    while len(todo) > 1:
        try:
            _write_together(db, todo)
            return
        except _MemberFailed as failed:
            failed.member.finish(error=_outcome(failed.error, db))
        except Exception as exc:
            error = _outcome(exc, db)
            for p in todo:
                if not p.done:
                    p.finish(error=error)
            return
        todo = [p for p in todo if not p.done]
    if todo:
        _write_alone(db, todo[0])


def _write_together(db: Database, group: list[_Pending]) -> None:
    live: list[_Pending] = []
    heads: list[Head] = []
    with _transaction(db, any(p.along for p in group)) as (cur, s):
        head = _lock_head(cur)
        for p in group:
            try:
                p.check()  # holding the head's lock, as alone
            except Exception as exc:  # that call's own outcome: left out
                p.finish(error=exc)
                continue
            live.append(p)
        for p in live:  # each member's writes see the records of those before it
            try:
                p.write_along(s)
            except Exception as exc:
                raise _MemberFailed(p, exc) from exc
            head = _chain(cur, p.items, head)
            heads.append(head)
    for p, h in zip(live, heads, strict=True):
        p.finish(head=h)


@contextmanager
def _transaction(db: Database, with_session: bool) -> Iterator[tuple[RawCursor, Session | None]]:
    """One transaction, committed at the end: a session's when ``along`` writes need one,
    else the driver's alone."""
    if with_session:
        with db.session() as s:
            yield RawCursor.of(s), s
        return
    with db.cursor() as cur:
        yield cur, None
        cur.commit()


def _write_alone(db: Database, p: _Pending) -> None:
    try:
        with _transaction(db, bool(p.along)) as (cur, s):
            head = _lock_head(cur)  # first: the along writes run holding it, as in a group
            p.write_along(s)
            head = _chain(cur, p.items, head)
            p.check()
    except Exception as exc:
        p.finish(error=_outcome(exc, db))
    else:
        p.finish(head=head)


def _outcome(exc: Exception, db: Database) -> BaseException:
    """What a member's call raises for a failure of its write."""
    if isinstance(exc, SQLAlchemyError | db.driver_error):
        return Unavailable(f"audit trail unavailable: {_reason(exc)}")
    if isinstance(exc, Unavailable):
        if str(exc).startswith("audit trail unavailable") or exc.__class__ is not Unavailable:
            return exc  # already ours, or raised on purpose by before_commit
        return Unavailable(f"audit trail unavailable: {exc}")
    return exc  # an along write's or before_commit's: its own call's outcome


_GROUPS: weakref.WeakKeyDictionary[Database, _GroupCommit] = weakref.WeakKeyDictionary()
_GROUPS_LOCK = threading.Lock()


def _group_of(db: Database) -> _GroupCommit:
    with _GROUPS_LOCK:
        group = _GROUPS.get(db)
        if group is None:
            group = _GROUPS[db] = _GroupCommit()
        return group


def head(db: Database) -> tuple[Head | None, int | None]:
    """The head row and the highest stored seq, read in one statement (one snapshot)."""
    query = select(
        select(_HEAD.c.seq).where(_HEAD.c.id == HEAD_ID).scalar_subquery(),
        select(_HEAD.c.hash).where(_HEAD.c.id == HEAD_ID).scalar_subquery(),
        select(func.max(_RECORDS.c.seq)).scalar_subquery(),
    )
    with db.read() as conn:
        seq, hash_, top = conn.execute(query).one()
    found = None if seq is None else Head(int(seq), str(hash_))
    return found, None if top is None else int(top)


def records(
    db: Database, *, after: int = 0, upto: int | None = None, page: int = PAGE
) -> Iterator[AuditRecord]:
    """Records with ``after < seq <= upto`` in seq order, a page per read (never the table)."""
    last = after
    while True:
        query = select(*_COLUMNS).where(_RECORDS.c.seq > last)
        if upto is not None:
            query = query.where(_RECORDS.c.seq <= upto)
        with db.read() as conn:
            rows = conn.execute(query.order_by(_RECORDS.c.seq).limit(page)).all()
        for row in rows:
            yield _record(row._mapping)
        if len(rows) < page:
            return
        last = int(rows[-1].seq)


def find_by_hash(db: Database, hash_: str) -> AuditRecord | None:
    """The stored record with this hash (a scan: only called once a chain is broken)."""
    with db.read() as conn:
        row = conn.execute(
            select(*_COLUMNS).where(_RECORDS.c.hash == hash_).order_by(_RECORDS.c.seq).limit(1)
        ).first()
    return None if row is None else _record(row._mapping)


def _row(item: Sealable, seq: int, prev: str, hash_: str) -> tuple[Any, ...]:
    """A record's values in the INSERT's column order (``_NAMES``)."""
    values: tuple[Any, ...] = _in_column_order(
        (seq, item.at, *entry_values(item.entry), item.details, prev, hash_)
    )
    return values


def _record(m: Any) -> AuditRecord:
    return AuditRecord(
        seq=int(m["seq"]),
        at=m["at"],
        client=m["client"],
        call_id=m["call_id"],
        method=m["method"],
        operation=m["operation"],
        outcome=m["outcome"],
        image_id=m["image_id"],
        digest=m["digest"],
        key_label=m["key_label"],
        key_ski=m["key_ski"],
        certificate_serial=m["certificate_serial"],
        device_count=m["device_count"],
        duis_request_id=m["duis_request_id"],
        details=m["details"],
        prev_hash=m["prev_hash"],
        hash=m["hash"],
    )


def _reason(exc: Exception) -> str:
    """The driver's words: SQLAlchemy's errors carry them in ``orig``, the driver's own
    (the append's statements) in themselves."""
    if isinstance(exc, SQLAlchemyError):
        orig = getattr(exc, "orig", None)
        return f"{type(exc).__name__}: {orig}" if orig is not None else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
