"""The life of a Supplier signing key: generate, request, certify, activate, retire.

The private key is made inside the token and never leaves it; everything here works on its
public half and its certificate. Every operation, refusals included, is recorded in the
key ledger with the actor who ran it (`signer.service.keys.operations`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from signer.errors import (
    CertificateRejected,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignerError,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.hsm.token import KeyProtection, TokenKey
from signer.registry import devices as device_registry
from signer.registry.keys import KeyRecord as KeyRecord  # what these use cases return
from signer.service.admin import import_key
from signer.service.keys import operations as ledger
from signer.service.keys.naming import key_ref, locate
from signer.service.keys.operations import amend, cert_facts, operation, recorded, spki_sha256
from signer.service.services import Services
from signer.smki.certificate import load_certificate, smki_extensions, smki_name
from signer.smki.csr import build_csr
from signer.smki.issuance import issue_certificate
from signer.smki.lifecycle import KeyPurpose, KeyState, check_certificate_for, purpose_of

log = logging.getLogger(__name__)
KEY_ID_LENGTH = 8
LISTED_DEVICES = 20  # devices named in a refusal; the rotation report lists them all


class KeysStillTrusted(PolicyRefused):
    """Retirement refused: registered devices still name the key in their cells."""

    def __init__(self, label: str, devices: list[Eui64]):
        self.devices = devices
        shown = ", ".join(str(d) for d in devices[:LISTED_DEVICES])
        more = f" and {len(devices) - LISTED_DEVICES} more" if len(devices) > LISTED_DEVICES else ""
        super().__init__(
            f"{len(devices)} registered device(s) still trust key {label!r} in "
            f"their Supplier digital-signing cell: {shown}{more}; update their "
            "credentials first (SR 6.15.1; see `signer keys rotation-report`), "
            "or retire with --force --reason"
        )


def generate(svc: Services, name: str, purpose: KeyPurpose, *, actor: str) -> KeyRecord:
    """A P-256 key pair made inside the token (pending), with an 8-byte CKA_ID."""
    ref = key_ref(svc.token, name, field="label")
    if ref.label is None:
        raise InvalidInput("a new key needs a label (URI attribute object=)", field="label")
    if ref.key_id is not None and len(ref.key_id) != KEY_ID_LENGTH:
        raise InvalidInput(
            f"CKA_ID must be {KEY_ID_LENGTH} bytes, got {len(ref.key_id)}", field="label"
        )
    op = operation(svc, actor, "generate", ref.label, ref.key_id, purpose=purpose.value)
    with recorded(svc, op):
        key = svc.token.generate_key(ref.label, ref.key_id)
        try:
            return ledger.create(
                svc,
                key,
                purpose,
                amend(
                    op,
                    key_id=key.key_id,
                    detail_extra={"public_key_sha256": spki_sha256(key.public_key)},
                ),
            )
        except BaseException:
            # Unrecorded keys are not left behind: the ledger is the list of what exists.
            svc.token.destroy_key(key)
            raise


def import_existing(
    svc: Services,
    label: str,
    key_pem: bytes,
    cert_pem: bytes,
    *,
    actor: str,
    purpose: KeyPurpose | None = None,
) -> KeyRecord:
    """Import a test key and its certificate (pending until activated)."""
    ref = key_ref(svc.token, label, field="label")
    if ref.label is None or ref.key_id is not None:
        raise InvalidInput(
            "name the imported key by label only (URI attribute object=); its "
            "CKA_ID becomes its certificate's SKI",
            field="label",
        )
    label = ref.label
    cert = load_certificate(cert_pem, field="cert")
    purpose = purpose or purpose_of(cert)
    if purpose is None:
        raise InvalidInput(
            "the certificate's role is neither Supplier (02) nor XML signing "
            "(87); name the purpose",
            field="purpose",
        )
    op = operation(svc, actor, "import", label, None, purpose=purpose.value)
    with recorded(svc, op):
        key = import_key(svc.token, label, key_pem, cert_pem)
        try:
            return ledger.create(
                svc, key, purpose, amend(op, key_id=key.key_id, detail_extra=cert_facts(cert))
            )
        except BaseException:
            svc.token.destroy_key(key)
            raise


def certificate_request(
    svc: Services, name: str, eui_text: str, *, actor: str, cn: str = ""
) -> x509.CertificateSigningRequest:
    """A PKCS#10 request in the SMKI Organisation form, signed inside the token by the key."""
    found = locate(svc, name)
    eui = Eui64.parse(eui_text, field="eui")
    op = operation(svc, actor, "csr", found.label, found.key_id, eui=str(eui), cn=cn)
    with recorded(svc, op):
        record = found.in_ledger()
        if record.state is KeyState.RETIRED:
            raise PolicyRefused(f"key {found.label!r} is retired")
        if eui != svc.config.supplier_eui:
            raise InvalidInput(
                f"EUI {eui} is not this Supplier's ({svc.config.supplier_eui}); "
                "the certificate would fail the profile check",
                field="eui",
            )
        key = found.on_token()
        csr = build_csr(
            subject=smki_name(int(record.purpose.role), eui, cn),
            public_key=key.public_key,
            sign_digest=lambda digest: svc.token.sign_digest(key, digest),
        )
        der = csr.public_bytes(serialization.Encoding.DER)
        ledger.record(
            svc,
            amend(
                op,
                detail_extra={
                    "subject": csr.subject.rfc4514_string(),
                    "csr_sha256": hashlib.sha256(der).hexdigest(),
                    "digest": hashlib.sha256(
                        csr.tbs_certrequest_bytes
                    ).hexdigest(),  # what was signed
                },
            ),
        )
        return csr


def install_certificate(svc: Services, name: str, cert_data: bytes, *, actor: str) -> KeyRecord:
    """Store the issued certificate next to its key, if it is the key's and fits its purpose."""
    found = locate(svc, name)
    op = operation(svc, actor, "install-cert", found.label, found.key_id)
    with recorded(svc, op):
        cert = load_certificate(cert_data, field="cert")
    op = amend(op, detail_extra=cert_facts(cert))  # a refusal names the certificate too
    with recorded(svc, op):
        record = found.in_ledger()
        key = found.on_token()
        if record.state is KeyState.RETIRED:
            raise PolicyRefused(f"key {found.label!r} is retired")
        if cert.public_key() != key.public_key:
            raise CertificateRejected(
                f"the certificate's public key (SHA-256 {spki_sha256(cert.public_key())[:16]}…) "
                f"is not key {key.label!r}'s (SHA-256 {spki_sha256(key.public_key)[:16]}…)"
            )
        smki = check_certificate_for(
            record.purpose,
            cert,
            supplier_eui=svc.config.supplier_eui,
            now=svc.clock(),
            issuers=svc.issuers,
        )
        _refuse_ski_clash(svc, key, smki.ski)
        if record.state is KeyState.ACTIVE and record.ski is not None and smki.ski != record.ski:
            raise CertificateRejected(
                f"key {key.label!r} is active and devices' cells name SKI {record.ski.hex()}; "
                f"a renewal must keep it, this certificate has {smki.ski.hex()}"
            )
        svc.token.store_certificate(key, cert)
        if record.state is KeyState.ACTIVE:
            ledger.update_certificate(svc, record, ski=smki.ski, serial=str(smki.serial), op=op)
        else:
            ledger.record(svc, op)
        return locate(svc, name).in_ledger()


def activate(
    svc: Services, name: str, *, actor: str, purpose: KeyPurpose | None = None
) -> KeyRecord:
    """Let a key sign: its certificate must pass its purpose's profile now.

    A key already on the token but unknown to the ledger (made before the ledger existed,
    or by another tool) is adopted here; its purpose comes from ``purpose`` or its
    certificate's role.
    """
    found = locate(svc, name)
    op = operation(svc, actor, "activate", found.label, found.key_id)
    with recorded(svc, op):
        if found.record is not None and found.record.state is KeyState.RETIRED:
            raise PolicyRefused(f"key {found.label!r} is retired; retirement is final")
        key = found.on_token()
        if key.certificate is None:
            raise PolicyRefused(
                f"key {key.label!r} has no certificate; install one first "
                "(`signer keys install-cert`)"
            )
        if not key.can_sign:
            raise PolicyRefused(f"key {key.label!r} is disabled on the token (CKA_SIGN false)")
        record = found.record
        if record is None:
            purpose = purpose or purpose_of(key.certificate)
            if purpose is None:
                raise InvalidInput(
                    f"key {key.label!r} is not in the key ledger and its "
                    "certificate's role names no purpose; give --purpose",
                    field="purpose",
                )
            op = amend(op, detail_extra={"adopted": True})
        elif purpose is not None and purpose is not record.purpose:
            raise PolicyRefused(f"key {key.label!r} is for {record.purpose}, not {purpose}")
        use = purpose if record is None else record.purpose
        assert use is not None
        smki = check_certificate_for(
            use,
            key.certificate,
            supplier_eui=svc.config.supplier_eui,
            now=svc.clock(),
            issuers=svc.issuers,
        )
        _refuse_ski_clash(svc, key, smki.ski)
        protection = _protection(svc, key)
        op = amend(op, detail_extra={"generated_in_token": protection.local})
        if record is None:
            record = ledger.create(svc, key, use, amend(op, operation="adopt"))
        done = ledger.transition(
            svc,
            record,
            KeyState.ACTIVE,
            amend(op, detail_extra=cert_facts(key.certificate)),
            ski=smki.ski,
            certificate_serial=str(smki.serial),
        )
        return done


def retire(
    svc: Services, name: str, *, actor: str, force: bool = False, reason: str = ""
) -> KeyRecord:
    """Retire a key for good: the ledger stops it, and CKA_SIGN is cleared on the token."""
    found = locate(svc, name)
    op = operation(svc, actor, "retire", found.label, found.key_id, forced=force, reason=reason)
    with recorded(svc, op):
        if force and not reason.strip():
            raise InvalidInput("a forced retirement needs a reason", field="reason")
        record = found.in_ledger()
        if record.state is KeyState.RETIRED:
            done = record  # already retired: make sure the token refuses it too
        else:
            skis = {s for s in (record.ski, found.key.ski if found.key else None) if s}
            trusting = sorted(
                {d for s in skis for d in device_registry.devices_trusting(svc.db, s)},
                key=lambda d: d.value,
            )
            if trusting and not force:
                raise KeysStillTrusted(found.label, trusting)
            done = ledger.transition(
                svc,
                record,
                KeyState.RETIRED,
                amend(op, detail_extra={"devices_still_trusting": len(trusting)}),
            )
    if found.key is not None and found.key.can_sign:
        disable = operation(svc, actor, "disable-signing", found.label, found.key_id)
        try:
            svc.token.disable_signing(found.key)
        except SignerError as exc:
            # The ledger already refuses the key; say loudly that the second barrier is missing.
            log.error(
                "key %r is retired in the ledger but CKA_SIGN could not be cleared: %s",
                found.label,
                exc,
            )
            ledger.record(svc, amend(disable, outcome="failed", detail_extra={"error": str(exc)}))
            raise HsmUnavailable(
                f"key {found.label!r} is retired in the key ledger (it will not sign), but "
                f"CKA_SIGN could not be cleared on the token: {exc}; run `signer keys retire` "
                "again when the token is reachable"
            ) from exc
        ledger.record(svc, disable)
    return done


def self_certify(
    svc: Services,
    name: str,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
    actor: str,
    issuer_cn: str = "DEV",
) -> KeyRecord:
    """Development only: certify a pending key with itself as ``CN=<issuer_cn>,OU=07``.

    Production certificates come from the SMKI issuing CA through `keys csr`.
    """
    found = locate(svc, name)
    record = found.in_ledger()
    if record.state is not KeyState.PENDING:
        raise PolicyRefused(
            f"key {found.label!r} is {record.state}; only a pending key is self-certified"
        )
    key = found.on_token()
    cert = issue_certificate(
        subject=smki_name(int(record.purpose.role), svc.config.supplier_eui, key.label),
        issuer=smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, issuer_cn),
        public_key=key.public_key,
        serial=x509.random_serial_number(),
        not_before=not_before,
        not_after=not_after,
        extensions=smki_extensions(public_key=key.public_key, key_usage="digitalSignature"),
        sign_digest=lambda digest: svc.token.sign_digest(key, digest),
    )
    return install_certificate(
        svc, name, cert.public_bytes(serialization.Encoding.PEM), actor=actor
    )


def _protection(svc: Services, key: TokenKey) -> KeyProtection:
    """The key's protection attributes; a key that could ever leave the token, or that
    could do more than sign, is never activated."""
    found = [p for p in svc.token.protection() if p.key_id == key.key_id]
    if len(found) != 1:
        raise NotFound(f"key {key.label!r}: private key attributes not readable")
    problems = found[0].problems()
    if problems:
        raise PolicyRefused(f"key {key.label!r} cannot be trusted to sign: {'; '.join(problems)}")
    return found[0]


def _refuse_ski_clash(svc: Services, key: TokenKey, ski: bytes) -> None:
    """Two signing-capable keys behind one SKI would let the token, not the device, choose."""
    for other in svc.token.keys(refresh=True):
        if other.key_id != key.key_id and other.ski == ski and other.can_sign:
            raise CertificateRejected(
                f"key {other.label!r} already has a certificate with SKI {ski.hex()}"
            )
