"""Storing the audit trail: appending chained records and reading them back in order.

Appenders take turns through the head row: the first statement of an append is an UPDATE
of that row, which is a row lock on PostgreSQL and the database write lock on SQLite, so
replicas, the CLI and threads each chain onto the head the previous one left, never onto
the same one. Records, head and (for key operations) the change they record commit in one
transaction: no record without its change, no change without its record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from signer.errors import Unavailable
from signer.registry.auditchain import AuditEntry, AuditRecord, Head, Sealable, link, prepare
from signer.registry.db import Database
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
    try:
        locked = s.execute(
            update(_HEAD)
            .where(_HEAD.c.id == HEAD_ID)
            .values(seq=_HEAD.c.seq)
            .returning(_HEAD.c.seq, _HEAD.c.hash)
        ).one_or_none()
        if locked is None:
            raise Unavailable("audit trail unavailable: its head row is missing")
        head = Head(int(locked[0]), str(locked[1]))
        if not items:
            return head
        chain = link(items, head)
        s.execute(insert(_RECORDS), [_row(i, *c) for i, c in zip(items, chain, strict=True)])
        seq, _prev, hash_ = chain[-1]
        s.execute(update(_HEAD).where(_HEAD.c.id == HEAD_ID).values(seq=seq, hash=hash_))
        return Head(seq, hash_)
    except SQLAlchemyError as exc:
        raise Unavailable(f"audit trail unavailable: {_reason(exc)}") from exc


def record(
    db: Database,
    entries: Sequence[AuditEntry],
    along: Sequence[Callable[[Session], None]] = (),
    before_commit: Callable[[], None] | None = None,
) -> Head:
    """Append ``entries`` in a transaction of their own (signatures: one per call or batch),
    with the writes in ``along`` that must stand or fall with them. ``before_commit`` runs
    last, holding the head's lock; if it raises, nothing is written."""
    prepared = prepare(entries)  # before the transaction: the lock waits for less
    try:
        with db.session() as s:
            for write in along:
                write(s)
            head = _append(s, prepared)
            if before_commit is not None:
                before_commit()
            return head
    except SQLAlchemyError as exc:  # at commit
        raise Unavailable(f"audit trail unavailable: {_reason(exc)}") from exc
    except Unavailable as exc:
        if str(exc).startswith("audit trail unavailable") or exc.__class__ is not Unavailable:
            raise  # already ours, or raised on purpose by before_commit
        raise Unavailable(f"audit trail unavailable: {exc}") from exc


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


def _row(item: Sealable, seq: int, prev: str, hash_: str) -> dict[str, Any]:
    e = item.entry
    return {
        "seq": seq,
        "at": item.at,
        "client": e.client,
        "call_id": e.call_id,
        "method": e.method,
        "operation": e.operation,
        "outcome": e.outcome,
        "image_id": e.image_id,
        "digest": e.digest,
        "key_label": e.key_label,
        "key_ski": e.key_ski,
        "certificate_serial": e.certificate_serial,
        "device_count": e.device_count,
        "duis_request_id": e.duis_request_id,
        "details": item.details,
        "prev_hash": prev,
        "hash": hash_,
    }


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


def _reason(exc: SQLAlchemyError) -> str:
    orig = getattr(exc, "orig", None)
    return f"{type(exc).__name__}: {orig}" if orig is not None else type(exc).__name__
