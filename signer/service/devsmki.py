"""The development SMKI issuing CA: certificates for `signer keys csr` requests.

It plays the SMKI Issuing CA for a developer, so the key rotation walkthrough runs end to end:
it certifies the key a PKCS#10 request carries in the SMKI Organisation profile (the role
and EUI the request names, keyUsage digitalSignature critical, the SMKI policy critical, an
RFC 5280 method-2 SKI, the CA's key as authority key identifier). Development only
(``devparties.require_development``); the production certificate comes from the real CA.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from signer.config import Config
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.service.devparties import DevParty, dev_smki_ca
from signer.smki.certificate import smki_extensions

FIELD = "csr"
#: the roles a Supplier's organisation certificates carry (ARP signing, XML signing)
ROLES = {int(RemotePartyRole.SUPPLIER): "02", int(RemotePartyRole.XML_SIGNING): "87"}
DEFAULT_DAYS = 730


def load_csr(data: bytes, *, field: str = FIELD) -> x509.CertificateSigningRequest:
    """A PKCS#10 request, PEM or DER, whose signature verifies."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except ValueError as exc:
        raise InvalidInput(f"not a PKCS#10 certificate request: {exc}", field=field) from None
    if not csr.is_signature_valid:
        raise InvalidInput("the request's signature does not verify", field=field)
    return csr


def issue_for_csr(
    ca: DevParty,
    csr: x509.CertificateSigningRequest,
    *,
    supplier_eui: Eui64,
    now: dt.datetime,
    days: int = DEFAULT_DAYS,
    field: str = FIELD,
) -> x509.Certificate:
    """The development CA's certificate for the request's key, in the Organisation profile."""
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidInput("the request's key is not P-256; SMKI certifies P-256 only", field=field)
    ous = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    role_text = str(ous[0].value) if len(ous) == 1 else ""
    if role_text.upper() not in ROLES.values():
        raise InvalidInput(
            f"subject OU {role_text or '(none)'!r} is not a Supplier role this CA certifies "
            "(02 Supplier, 87 XML signing)",
            field=field,
        )
    uids = csr.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    raw = uids[0].value if len(uids) == 1 else b""
    eui_bytes = raw[1:] if isinstance(raw, bytes) and len(raw) == 9 and raw[0] == 0 else None
    if eui_bytes is None:
        raise InvalidInput(
            "subject lacks the x500UniqueIdentifier holding the EUI-64 (as `signer keys csr` "
            "writes it)",
            field=field,
        )
    eui = Eui64(eui_bytes)
    if eui != supplier_eui:
        raise InvalidInput(
            f"subject EUI {eui} is not this Supplier's ({supplier_eui})", field=field
        )
    if days < 1:
        raise InvalidInput("a certificate is valid for at least one day", field="days")
    ca_key = ca.key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca.certificate.not_valid_after_utc))
    )
    for ext, critical in smki_extensions(
        public_key=key, key_usage="digitalSignature", authority_key=ca_key
    ):
        builder = builder.add_extension(ext, critical)
    return builder.sign(ca.key, hashes.SHA256())


def sign_csr(
    config: Config, data: bytes, *, now: dt.datetime, days: int = DEFAULT_DAYS, field: str = FIELD
) -> x509.Certificate:
    """``signer dev smki sign``: the configured development CA certifies a request."""
    return issue_for_csr(
        dev_smki_ca(config),
        load_csr(data, field=field),
        supplier_eui=config.supplier_eui,
        now=now,
        days=days,
        field=field,
    )
