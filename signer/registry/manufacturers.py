"""Manufacturer code -> the certificates trusted to sign that manufacturer's deliveries.

What may be registered or revoked, and what the audit trail says about it, is the use
case's to decide (`signer.service.manufacturers`); this stores what it is given, each change
in one transaction with its audit trail record.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select, update

from signer.errors import PolicyRefused
from signer.registry import audit
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database
from signer.registry.models import ManufacturerCertificate


@dataclass(frozen=True)
class ManufacturerCert:
    """A registered certificate and its revocation, as stored."""

    code: int
    fingerprint: str  # SHA-256 of the DER, lower-case hex
    subject: str
    serial: str  # decimal
    not_before: dt.datetime
    not_after: dt.datetime
    added_at: dt.datetime
    revoked_at: dt.datetime | None
    revocation_reason: str | None
    certificate_der: bytes

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_der_x509_certificate(self.certificate_der)

    def revoked(self, now: dt.datetime) -> bool:
        return self.revoked_at is not None and self.revoked_at <= now


def fingerprint_of(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


def add_certificate(
    db: Database, code: int, certificate: x509.Certificate, now: dt.datetime, entry: AuditEntry
) -> bool:
    """Register a certificate for a manufacturer code with its audit record; False (and
    nothing written) if it was already there."""
    der = certificate.public_bytes(serialization.Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    with db.session() as s:
        exists = s.scalar(
            select(ManufacturerCertificate.id).where(
                ManufacturerCertificate.manufacturer_code == code,
                ManufacturerCertificate.fingerprint == fingerprint,
            )
        )
        if exists is not None:
            return False
        s.add(
            ManufacturerCertificate(
                manufacturer_code=code,
                fingerprint=fingerprint,
                subject=certificate.subject.rfc4514_string(),
                serial=str(certificate.serial_number),
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                certificate_der=der,
                added_at=now,
            )
        )
        s.flush()
        audit.append(s, [entry])
    return True


def revoke(
    db: Database, code: int, fingerprint: str, at: dt.datetime, reason: str, entry: AuditEntry
) -> ManufacturerCert:
    """Mark a certificate revoked from ``at`` on, with its audit record, once only."""
    with db.session() as s:
        done = s.execute(
            update(ManufacturerCertificate)
            .where(
                ManufacturerCertificate.manufacturer_code == code,
                ManufacturerCertificate.fingerprint == fingerprint,
                ManufacturerCertificate.revoked_at.is_(None),
            )
            .values(revoked_at=at, revocation_reason=reason)
        )
        if done.rowcount != 1:  # type: ignore[attr-defined]
            raise PolicyRefused(
                f"manufacturer certificate {fingerprint[:16]}… of code {code:04X} is already "
                "revoked or not registered"
            )
        audit.append(s, [entry])
        row = s.scalars(
            select(ManufacturerCertificate).where(
                ManufacturerCertificate.manufacturer_code == code,
                ManufacturerCertificate.fingerprint == fingerprint,
            )
        ).one()
        return _cert(row)


def record_refusal(db: Database, entry: AuditEntry) -> None:
    """An add or revoke that was refused: the trail shows the attempt too."""
    audit.record(db, [entry])


def certificates(db: Database, code: int | None = None) -> list[ManufacturerCert]:
    """The registered certificates (of one code), by code and then as added."""
    query = select(ManufacturerCertificate).order_by(
        ManufacturerCertificate.manufacturer_code, ManufacturerCertificate.id
    )
    if code is not None:
        query = query.where(ManufacturerCertificate.manufacturer_code == code)
    with db.session() as s:
        return [_cert(r) for r in s.scalars(query)]


def find(db: Database, code: int, fingerprint: str) -> ManufacturerCert | None:
    with db.session() as s:
        row = s.scalars(
            select(ManufacturerCertificate).where(
                ManufacturerCertificate.manufacturer_code == code,
                ManufacturerCertificate.fingerprint == fingerprint,
            )
        ).one_or_none()
        return None if row is None else _cert(row)


def certificates_for(db: Database, code: int) -> list[x509.Certificate]:
    return [c.certificate for c in certificates(db, code)]


def _cert(row: ManufacturerCertificate) -> ManufacturerCert:
    return ManufacturerCert(
        code=row.manufacturer_code,
        fingerprint=row.fingerprint,
        subject=row.subject,
        serial=row.serial,
        not_before=_utc(row.not_before),
        not_after=_utc(row.not_after),
        added_at=_utc(row.added_at),
        revoked_at=None if row.revoked_at is None else _utc(row.revoked_at),
        revocation_reason=row.revocation_reason,
        certificate_der=row.certificate_der,
    )


def _utc(t: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes; every stored time is UTC."""
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
