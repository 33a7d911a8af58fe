"""The key ledger and its operation records.

A state change, the record of who made it and its audit trail record are written in one
transaction, so the ledger never moves without its records. The use case builds both
records (`signer.service.keys.operations`); this stores them. State changes are conditional
on the state the caller saw: two administrators racing cannot both win.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from signer.errors import PolicyRefused
from signer.registry import audit
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database
from signer.registry.models import KeyOperation, SigningKey
from signer.smki.lifecycle import KeyPurpose, KeyState


@dataclass(frozen=True)
class KeyRecord:
    token_label: str
    key_id: bytes
    label: str
    purpose: KeyPurpose
    state: KeyState
    ski: bytes | None
    certificate_serial: str | None
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None


@dataclass(frozen=True)
class Operation:
    """One key operation as it will be recorded."""

    actor: str
    operation: str
    token_label: str
    key_label: str
    key_id: bytes | None
    outcome: str = "ok"
    detail: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OperationRecord:
    id: int
    at: dt.datetime
    actor: str
    operation: str
    token_label: str
    key_label: str
    key_id: bytes | None
    outcome: str
    detail: dict[str, Any]


def get(db: Database, token_label: str, key_id: bytes) -> KeyRecord | None:
    with db.session() as s:
        row = s.get(SigningKey, (token_label, key_id.hex()))
        return _record(row) if row is not None else None


def all_keys(db: Database, token_label: str) -> dict[bytes, KeyRecord]:
    with db.session() as s:
        rows = s.scalars(select(SigningKey).where(SigningKey.token_label == token_label))
        return {bytes.fromhex(r.key_id): _record(r) for r in rows}


def states(db: Database, token_label: str) -> dict[bytes, tuple[KeyState, KeyPurpose]]:
    """Every ledger key's state and purpose: what signing consults, one light query."""
    query = select(SigningKey.key_id, SigningKey.state, SigningKey.purpose).where(
        SigningKey.token_label == token_label
    )
    with db.read() as conn:
        return {bytes.fromhex(k): (KeyState(s), KeyPurpose(p)) for k, s, p in conn.execute(query)}


def all_states(db: Database) -> dict[tuple[str, bytes], tuple[KeyState, KeyPurpose]]:
    """``states`` of every token's keys, by (token label, CKA_ID)."""
    query = select(SigningKey.token_label, SigningKey.key_id, SigningKey.state, SigningKey.purpose)
    with db.read() as conn:
        return {
            (t, bytes.fromhex(k)): (KeyState(s), KeyPurpose(p))
            for t, k, s, p in conn.execute(query)
        }


def create(
    db: Database,
    *,
    token_label: str,
    key_id: bytes,
    label: str,
    purpose: KeyPurpose,
    now: dt.datetime,
    op: Operation,
    entry: AuditEntry,
) -> KeyRecord:
    """A new ledger entry in state pending, recorded with the operation that made it."""
    with db.session() as s:
        if s.get(SigningKey, (token_label, key_id.hex())) is not None:
            raise PolicyRefused(
                f"key {label!r} (CKA_ID {key_id.hex()}) is already in the key ledger"
            )
        row = SigningKey(
            token_label=token_label,
            key_id=key_id.hex(),
            label=label,
            purpose=purpose.value,
            state=KeyState.PENDING.value,
            created_at=now,
        )
        s.add(row)
        _add_operation(s, op, entry, now)
        s.flush()
        return _record(row)


def transition(
    db: Database,
    record: KeyRecord,
    target: KeyState,
    *,
    now: dt.datetime,
    op: Operation,
    entry: AuditEntry,
    ski: bytes | None = None,
    certificate_serial: str | None = None,
) -> KeyRecord:
    """Move a key from the state the caller saw to ``target``, with its records, atomically.

    The use case has checked that the lifecycle allows the move."""
    values: dict[str, Any] = {"state": target.value}
    if target is KeyState.ACTIVE:
        values.update(
            activated_at=now, ski=ski.hex() if ski else None, certificate_serial=certificate_serial
        )
    if target is KeyState.RETIRED:
        values["retired_at"] = now
    with db.session() as s:
        done = s.execute(
            update(SigningKey)
            .where(
                SigningKey.token_label == record.token_label,
                SigningKey.key_id == record.key_id.hex(),
                SigningKey.state == record.state.value,
            )
            .values(**values)
        ).rowcount  # type: ignore[attr-defined]
        if done != 1:
            raise PolicyRefused(
                f"key {record.label!r} changed state while this operation ran; look again and retry"
            )
        _add_operation(s, op, entry, now)
        row = s.get(SigningKey, (record.token_label, record.key_id.hex()))
        assert row is not None
        s.refresh(row)
        return _record(row)


def update_certificate(
    db: Database,
    record: KeyRecord,
    *,
    ski: bytes,
    serial: str,
    now: dt.datetime,
    op: Operation,
    entry: AuditEntry,
) -> None:
    """A renewed certificate on an active key: keep the ledger's copy of its SKI current."""
    with db.session() as s:
        s.execute(
            update(SigningKey)
            .where(
                SigningKey.token_label == record.token_label,
                SigningKey.key_id == record.key_id.hex(),
            )
            .values(ski=ski.hex(), certificate_serial=serial)
        )
        _add_operation(s, op, entry, now)


def record(db: Database, op: Operation, entry: AuditEntry, now: dt.datetime) -> None:
    """Record an operation that changed no state (a CSR, a refusal, an import)."""
    with db.session() as s:
        _add_operation(s, op, entry, now)


def operations(db: Database, token_label: str | None = None) -> list[OperationRecord]:
    query = select(KeyOperation).order_by(KeyOperation.id)
    if token_label is not None:
        query = query.where(KeyOperation.token_label == token_label)
    with db.session() as s:
        return [
            OperationRecord(
                id=r.id,
                at=_utc(r.at),
                actor=r.actor,
                operation=r.operation,
                token_label=r.token_label,
                key_label=r.key_label,
                key_id=bytes.fromhex(r.key_id) if r.key_id else None,
                outcome=r.outcome,
                detail=json.loads(r.detail),
            )
            for r in s.scalars(query)
        ]


def _add_operation(s: Session, op: Operation, entry: AuditEntry, now: dt.datetime) -> None:
    """The operation record and its audit trail record, in the caller's transaction."""
    s.add(_operation_row(op, now))
    s.flush()  # the ledger's own errors surface as themselves, not as the audit trail's
    audit.append(s, [entry])


def _operation_row(op: Operation, now: dt.datetime) -> KeyOperation:
    return KeyOperation(
        at=now,
        actor=op.actor,
        operation=op.operation,
        token_label=op.token_label,
        key_label=op.key_label,
        key_id=op.key_id.hex() if op.key_id is not None else None,
        outcome=op.outcome,
        detail=json.dumps(dict(op.detail or {}), sort_keys=True),
    )


def _record(row: SigningKey) -> KeyRecord:
    return KeyRecord(
        token_label=row.token_label,
        key_id=bytes.fromhex(row.key_id),
        label=row.label,
        purpose=KeyPurpose(row.purpose),
        state=KeyState(row.state),
        ski=bytes.fromhex(row.ski) if row.ski else None,
        certificate_serial=row.certificate_serial,
        created_at=_utc(row.created_at),
        activated_at=_utc(row.activated_at) if row.activated_at else None,
        retired_at=_utc(row.retired_at) if row.retired_at else None,
    )


def _utc(t: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; everything stored here was UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC)
