"""The key-operation ledger: who did what to which key, refusals included.

Every key operation is written twice, in one transaction with the ledger change it makes: as
a key-operation record (`signer keys operations`) and as an audit trail record. Both are
built here, in the use case, as the signing door builds signature records: who (the actor,
and the call from `signer.caller`), what, which key, the outcome. The registry only stores
them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from signer.caller import current
from signer.errors import CertificateRejected, InvalidInput, NotFound, PolicyRefused, SignerError
from signer.hsm.token import TokenKey
from signer.registry import keys as ledger
from signer.registry.auditchain import AuditEntry
from signer.registry.keys import KeyRecord, Operation, OperationRecord
from signer.service.services import Services
from signer.smki.certificate import parse_smki
from signer.smki.lifecycle import KeyPurpose, KeyState, check_transition

log = logging.getLogger(__name__)


def operations(svc: Services) -> list[OperationRecord]:
    """The recorded key operations of this token, oldest first."""
    return ledger.operations(svc.db, svc.token.token_label)


def operation(
    svc: Services, actor: str, name: str, label: str, key_id: bytes | None, **detail: Any
) -> Operation:
    """Operation ``name`` on a key, as it will be recorded unless amended."""
    if not actor:
        raise InvalidInput("every key operation needs an actor", field="actor")
    return Operation(
        actor=actor,
        operation=name,
        token_label=svc.token.token_label,
        key_label=label,
        key_id=key_id,
        detail=detail,
    )


def amend(
    op: Operation,
    *,
    operation: str | None = None,
    key_id: bytes | None = None,
    outcome: str | None = None,
    detail_extra: dict[str, Any] | None = None,
) -> Operation:
    """``op`` with what the operation learnt on its way: the key made, the outcome, facts."""
    return Operation(
        actor=op.actor,
        operation=operation or op.operation,
        token_label=op.token_label,
        key_label=op.key_label,
        key_id=key_id if key_id is not None else op.key_id,
        outcome=outcome or op.outcome,
        detail={**(op.detail or {}), **(detail_extra or {})},
    )


@contextmanager
def recorded(svc: Services, op: Operation) -> Iterator[None]:
    """Record a refused or failed operation before the error reaches the caller."""
    try:
        yield
    except (InvalidInput, PolicyRefused, NotFound) as exc:
        _try_record(svc, amend(op, outcome="refused", detail_extra={"reason": str(exc)}))
        raise
    except SignerError as exc:
        _try_record(svc, amend(op, outcome="failed", detail_extra={"reason": str(exc)}))
        raise


def audit_entry(
    op: Operation, now: dt.datetime, *, ski: bytes | None = None, serial: str | None = None
) -> AuditEntry:
    """The audit trail record of ``op``: the key's SKI and certificate serial as given, else
    as the operation's detail names them."""
    detail = dict(op.detail or {})
    caller = current()
    return AuditEntry(
        at=now,
        client=op.actor,
        operation=f"key-{op.operation}",
        outcome=op.outcome,
        call_id=caller.request_id,
        method=caller.method,
        key_label=op.key_label,
        key_ski=ski.hex() if ski is not None else _text(detail.get("ski")),
        certificate_serial=serial if serial is not None else _text(detail.get("serial")),
        digest=_text(detail.get("digest")),
        details={
            "token": op.token_label,
            "cka_id": op.key_id.hex() if op.key_id is not None else None,
            **detail,
        },
    )


def record(svc: Services, op: Operation) -> None:
    """Record an operation that changed no state (a CSR, a refusal, an import)."""
    now = svc.clock()
    ledger.record(svc.db, op, audit_entry(op, now), now)


def create(svc: Services, key: TokenKey, purpose: KeyPurpose, op: Operation) -> KeyRecord:
    """A new ledger entry (pending) for a token key, recorded with the operation that made it."""
    now = svc.clock()
    return ledger.create(
        svc.db,
        token_label=svc.token.token_label,
        key_id=key.key_id,
        label=key.label,
        purpose=purpose,
        now=now,
        op=op,
        entry=audit_entry(op, now),
    )


def transition(
    svc: Services,
    record: KeyRecord,
    target: KeyState,
    op: Operation,
    *,
    ski: bytes | None = None,
    certificate_serial: str | None = None,
) -> KeyRecord:
    """Move a key to ``target`` if its lifecycle allows it, with its records."""
    now = svc.clock()
    check_transition(record.label, record.state, target)
    entry = audit_entry(
        op,
        now,
        ski=ski or record.ski,
        serial=certificate_serial or record.certificate_serial,
    )
    return ledger.transition(
        svc.db,
        record,
        target,
        now=now,
        op=op,
        entry=entry,
        ski=ski,
        certificate_serial=certificate_serial,
    )


def update_certificate(
    svc: Services, record: KeyRecord, *, ski: bytes, serial: str, op: Operation
) -> None:
    """A renewed certificate on an active key, with its records."""
    now = svc.clock()
    ledger.update_certificate(
        svc.db,
        record,
        ski=ski,
        serial=serial,
        now=now,
        op=op,
        entry=audit_entry(op, now, ski=ski, serial=serial),
    )


def cert_facts(cert: x509.Certificate) -> dict[str, Any]:
    """What an operation's record says about a certificate."""
    facts: dict[str, Any] = {
        "serial": str(cert.serial_number),
        "issuer": cert.issuer.rfc4514_string(),
        "subject": cert.subject.rfc4514_string(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "certificate_sha256": cert.fingerprint(hashes.SHA256()).hex(),
    }
    try:
        facts["ski"] = parse_smki(cert).ski.hex()
    except CertificateRejected:
        pass
    return facts


def spki_sha256(public_key: CertificatePublicKeyTypes) -> str:
    return hashlib.sha256(
        public_key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    ).hexdigest()


def _try_record(svc: Services, op: Operation) -> None:
    try:
        record(svc, op)
    except SignerError as exc:  # the database itself may be what failed
        log.error(
            "could not record refused key operation %s on %r: %s", op.operation, op.key_label, exc
        )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
