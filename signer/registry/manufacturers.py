"""Manufacturer code -> the certificates trusted to sign that manufacturer's deliveries.

What may be registered (a 16-bit code, a P-256 key) is the use case's to decide
(`signer.service.admin`); this stores what it is given.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from signer.registry.db import Database
from signer.registry.models import ManufacturerCertificate


def add_certificate(
    db: Database, code: int, certificate: x509.Certificate, now: dt.datetime
) -> bool:
    """Register a certificate for a manufacturer code; False if it was already there."""
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
                not_after=certificate.not_valid_after_utc,
                certificate_der=der,
                added_at=now,
            )
        )
    return True


def certificates_for(db: Database, code: int) -> list[x509.Certificate]:
    with db.session() as s:
        rows = s.scalars(
            select(ManufacturerCertificate.certificate_der).where(
                ManufacturerCertificate.manufacturer_code == code
            )
        ).all()
    return [x509.load_der_x509_certificate(der) for der in rows]


def list_codes(db: Database) -> list[tuple[int, str, dt.datetime]]:
    with db.session() as s:
        rows = s.execute(
            select(
                ManufacturerCertificate.manufacturer_code,
                ManufacturerCertificate.subject,
                ManufacturerCertificate.not_after,
            ).order_by(ManufacturerCertificate.manufacturer_code)
        ).all()
    return [(r[0], r[1], r[2]) for r in rows]
