"""Manufacturer trust: which certificates may vouch for a delivery, from when to when.

A certificate is added only if it can verify a delivery now (P-256 key, digitalSignature
when it restricts its key usage, inside its validity period at the service's clock); it can
be revoked from a time on, after which nothing it verified is signed any more. Every add and
revoke, refusals included, is an audit trail record built here, as key operations are.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from signer.caller import current
from signer.errors import InvalidInput, NotFound, PolicyRefused, SignerError
from signer.registry import library, manufacturers
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database
from signer.registry.manufacturers import ManufacturerCert as ManufacturerCert  # returned
from signer.registry.manufacturers import fingerprint_of
from signer.service.caches import TrustSnapshot
from signer.smki.certificate import load_certificate

log = logging.getLogger(__name__)
MAX_REASON_CHARS = 200
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")
ADD, REVOKE = "manufacturer-add", "manufacturer-revoke"


@dataclass(frozen=True)
class ManufacturerView:
    """A registered certificate with its state at a time, for listings."""

    cert: ManufacturerCert
    state: str  # trusted | revoked | expired | not yet valid

    def as_json(self) -> dict[str, Any]:
        c = self.cert
        return {
            "code": f"{c.code:04X}",
            "subject": c.subject,
            "serial": c.serial,
            "fingerprint": c.fingerprint,
            "not_before": c.not_before.isoformat(),
            "not_after": c.not_after.isoformat(),
            "state": self.state,
            "revoked_at": c.revoked_at.isoformat() if c.revoked_at else None,
            "reason": c.revocation_reason,
            "added_at": c.added_at.isoformat(),
        }


def parse_code(code: str) -> int:
    text = code.strip().removeprefix("0x").removeprefix("0X")
    try:
        value = int(text, 16)
    except ValueError:
        raise InvalidInput(
            f"manufacturer code {code[:16]!r} is not hexadecimal", field="code"
        ) from None
    return _check_code(value)


def add_manufacturer(
    db: Database, code: str, cert_data: bytes, now: dt.datetime, *, actor: str | None = None
) -> bool:
    return add_manufacturer_certificate(
        db, parse_code(code), load_certificate(cert_data, field="cert"), now, actor=actor
    )


def add_manufacturer_certificate(
    db: Database,
    code: int,
    certificate: x509.Certificate,
    now: dt.datetime,
    *,
    actor: str | None = None,
) -> bool:
    """Trust a certificate for a manufacturer code's deliveries; False if it already was."""
    facts = {"code": f"{code:04X}" if 0 <= code <= 0xFFFF else str(code), **_facts(certificate)}
    try:
        _check_code(code)
        check_manufacturer_profile(certificate, now)
        known = manufacturers.find(db, code, facts["fingerprint"])
        if known is not None and known.revoked_at is not None:
            raise PolicyRefused(
                f"manufacturer certificate {_name(known)} was revoked at {_iso(known.revoked_at)} "
                f"({known.revocation_reason}); a revoked certificate is not trusted again"
            )
        return manufacturers.add_certificate(
            db, code, certificate, now, _entry(ADD, now, actor, facts)
        )
    except (InvalidInput, PolicyRefused, NotFound) as exc:
        _record_refusal(db, ADD, now, actor, facts, exc)
        raise


def check_manufacturer_profile(certificate: x509.Certificate, now: dt.datetime) -> None:
    """What a certificate needs to verify deliveries (GBCS: ECDSA P-256 / SHA-256).

    A KeyUsage extension is not required (manufacturer certificates are not SMKI ones and
    RFC 5280 lets an absent one mean "any use"), but one that is present must allow
    digitalSignature. Validity is judged at the service's clock.
    """
    key = certificate.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise InvalidInput("a manufacturer certificate must carry a P-256 key", field="cert")
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        raise InvalidInput(
            "the manufacturer certificate's keyUsage does not allow digitalSignature",
            field="cert",
        )
    if now < certificate.not_valid_before_utc:
        raise InvalidInput(
            f"the manufacturer certificate is not valid before "
            f"{_iso(certificate.not_valid_before_utc)} (now {_iso(now)})",
            field="cert",
        )
    if now > certificate.not_valid_after_utc:
        raise InvalidInput(
            f"the manufacturer certificate expired on {_iso(certificate.not_valid_after_utc)} "
            f"(now {_iso(now)})",
            field="cert",
        )


def revoke_manufacturer_certificate(
    db: Database,
    code: str,
    *,
    now: dt.datetime,
    reason: str,
    serial: str | None = None,
    fingerprint: str | None = None,
    at: dt.datetime | None = None,
    actor: str | None = None,
) -> ManufacturerCert:
    """Stop trusting a certificate from ``at`` (default now) on, naming why."""
    facts: dict[str, Any] = {"code": code.strip()[:8], "reason": reason.strip()[:MAX_REASON_CHARS]}
    try:
        value = parse_code(code)
        facts["code"] = f"{value:04X}"
        reason = reason.strip()
        if not reason:
            raise InvalidInput("a revocation needs a reason", field="reason")
        if len(reason) > MAX_REASON_CHARS:
            raise InvalidInput(
                f"the reason has {len(reason)} characters, at most {MAX_REASON_CHARS}",
                field="reason",
            )
        when = now if at is None else at
        if when.tzinfo is None or when.utcoffset() is None:
            raise InvalidInput("the revocation time needs a time zone (e.g. ...Z)", field="at")
        when = when.astimezone(dt.UTC)  # SQLite keeps wall-clock time: store it as UTC
        found = _select(db, value, serial, fingerprint)
        facts.update(_stored_facts(found), revoked_at=when.isoformat())
        if found.revoked_at is not None:
            raise PolicyRefused(
                f"manufacturer certificate {_name(found)} is already revoked "
                f"(at {_iso(found.revoked_at)}: {found.revocation_reason})"
            )
        return manufacturers.revoke(
            db,
            value,
            found.fingerprint,
            when,
            reason,
            _entry(REVOKE, now, actor, facts, serial=found.serial),
        )
    except (InvalidInput, PolicyRefused, NotFound) as exc:
        _record_refusal(db, REVOKE, now, actor, facts, exc)
        raise


def list_manufacturers(db: Database, now: dt.datetime) -> list[ManufacturerView]:
    """Every registered certificate, by code, with its state at ``now``."""
    return [ManufacturerView(c, state_of(c, now)) for c in manufacturers.certificates(db)]


def state_of(cert: ManufacturerCert, now: dt.datetime) -> str:
    if cert.revoked(now):
        return "revoked"
    if now > cert.not_after:
        return "expired"
    if now < cert.not_before:
        return "not yet valid"
    return "trusted"


def revocation_line(cert: ManufacturerCert) -> str:
    """How a check or refusal names a revoked certificate and why."""
    assert cert.revoked_at is not None
    return f"{_name(cert)} revoked at {_iso(cert.revoked_at)}: {cert.revocation_reason}"


def image_refusal(
    trusted: TrustSnapshot, db: Database, image_id: str, code: int, now: dt.datetime
) -> str | None:
    """Why a verified image may no longer be signed, or None.

    Failing closed: an image verified by a certificate revoked since is refused. An image
    verified before the library recorded the certificate (NULL) is refused while any
    certificate of its manufacturer code is revoked, since it may have been that one.
    """
    listed, fingerprint = trusted.verified_by(image_id, lambda: library.verified_by(db, image_id))
    if not listed:  # deleted since this process cached it
        return f"image {image_id} is no longer in the firmware library"
    certificates = trusted.manufacturer_certificates(code)
    if fingerprint is None:
        revoked = [c for c in certificates if c.revoked(now)]
        if not revoked:
            return None
        return (
            f"image {image_id} was verified before the library recorded which manufacturer "
            f"certificate verified it, and code {code:04X} has revoked certificates "
            f"({'; '.join(revocation_line(c) for c in revoked)}); verify the delivery again"
        )
    cert = next((c for c in certificates if c.fingerprint == fingerprint), None)
    if cert is None:
        return (
            f"image {image_id} was verified by manufacturer certificate {fingerprint[:16]}…, "
            f"which is no longer registered for code {code:04X}"
        )
    if cert.revoked(now):
        return f"image {image_id} was verified by manufacturer certificate {revocation_line(cert)}"
    return None


def _select(
    db: Database, code: int, serial: str | None, fingerprint: str | None
) -> ManufacturerCert:
    if (serial is None) == (fingerprint is None):
        raise InvalidInput(
            "name the certificate by exactly one of serial or fingerprint", field="serial"
        )
    certs = manufacturers.certificates(db, code)
    if fingerprint is not None:
        fp = fingerprint.strip().lower().replace(":", "")
        if not _FINGERPRINT.match(fp):
            raise InvalidInput(
                "a fingerprint is the certificate's SHA-256: 64 hex digits", field="fingerprint"
            )
        matching = [c for c in certs if c.fingerprint == fp]
        shown = f"SHA-256 {fp[:16]}…"
    else:
        assert serial is not None
        number = _serial_number(serial)
        matching = [c for c in certs if c.serial == str(number)]
        shown = f"serial {str(number)[:40]}"
    if not matching:
        raise NotFound(f"manufacturer code {code:04X} has no registered certificate with {shown}")
    if len(matching) > 1:
        raise InvalidInput(
            f"{len(matching)} certificates of code {code:04X} have {shown}; name one by "
            "its fingerprint",
            field="serial",
        )
    return matching[0]


def _serial_number(text: str) -> int:
    """Decimal, or hex with 0x (as openssl prints it with a colon-separated form too)."""
    t = text.strip().replace(":", "")
    try:
        return int(t[2:], 16) if t.lower().startswith("0x") else int(t, 10)
    except ValueError:
        raise InvalidInput(
            f"serial {text[:20]!r} is neither decimal nor 0x-prefixed hex", field="serial"
        ) from None


def _check_code(code: int) -> int:
    if not 0 <= code <= 0xFFFF:
        raise InvalidInput(f"manufacturer code {code:#x} is not 16 bits", field="code")
    return code


def _facts(cert: x509.Certificate) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint_of(cert),
        "subject": cert.subject.rfc4514_string(),
        "serial": str(cert.serial_number),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
    }


def _stored_facts(cert: ManufacturerCert) -> dict[str, Any]:
    return {
        "fingerprint": cert.fingerprint,
        "subject": cert.subject,
        "serial": cert.serial,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
    }


def _entry(
    operation: str,
    now: dt.datetime,
    actor: str | None,
    facts: dict[str, Any],
    *,
    outcome: str = "ok",
    serial: str | None = None,
) -> AuditEntry:
    caller = current()
    return AuditEntry(
        at=now,
        client=actor or caller.identity,
        operation=operation,
        outcome=outcome,
        call_id=caller.request_id,
        method=caller.method,
        certificate_serial=serial or facts.get("serial"),
        details=facts,
    )


def _record_refusal(
    db: Database,
    operation: str,
    now: dt.datetime,
    actor: str | None,
    facts: dict[str, Any],
    exc: SignerError,
) -> None:
    entry = _entry(operation, now, actor, {**facts, "refused": str(exc)}, outcome="refused")
    try:
        manufacturers.record_refusal(db, entry)
    except SignerError as err:  # the database itself may be what failed; the refusal stands
        log.error("could not record refused %s: %s", operation, err)


def _name(cert: ManufacturerCert) -> str:
    subject = cert.subject or "(no subject)"
    return f"{subject} (serial {cert.serial[:40]}, SHA-256 {cert.fingerprint[:16]}…)"


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
