"""SMKI organisation certificates: parsing and the checks that decide what a key may sign.

Pure code: "now" is always a parameter, because the published test certificates expire and
production must not depend on a hidden clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# No public API builds a BIT STRING name attribute; x500UniqueIdentifier needs one.
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import ExtensionOID, NameOID, SignatureAlgorithmOID

from signer.errors import CertificateRejected, FormatError, excerpt
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole

#: The SMKI organisation certificate policy (GB Smart Metering PKI).
SMKI_ORG_POLICY = x509.ObjectIdentifier("1.2.826.0.1.8641679.1.2.1.4")

KeyUsageName = Literal["digitalSignature", "keyAgreement"]

_ROLE_FORM = re.compile(r"^[0-9A-Fa-f]{2}$")


@dataclass(frozen=True)
class SmkiCertificate:
    """The SMKI-relevant facts of a certificate, read once so callers never re-parse X.509."""

    certificate: x509.Certificate
    role: int
    eui: Eui64
    ski: bytes
    key_usage: KeyUsageName
    serial: int
    issuer_name: str
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def public_key(self) -> ec.EllipticCurvePublicKey:
        key = self.certificate.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)  # checked by the profile
        return key

    @property
    def role_name(self) -> str:
        return role_label(self.role)


def role_label(role: int) -> str:
    """``02 (Supplier)``: the form error messages use, so an operator can read them."""
    try:
        name = RemotePartyRole(role).name.replace("_", " ").title()
    except ValueError:
        name = "unknown role"
    return f"{role:02X} ({name})"


def load_certificate(data: bytes, *, field: str = "certificate") -> x509.Certificate:
    """Accept PEM or DER, because operators paste either.

    `cryptography` parses lazily: a wrong version, a repeated extension or a key type it
    does not know would only raise later, from whichever caller touched it first, with the
    library's own exception. So they are all read here, once, and refused as a FormatError.
    """
    pem = data.lstrip().startswith(b"-----BEGIN")
    try:
        cert = (x509.load_pem_x509_certificate if pem else x509.load_der_x509_certificate)(data)
        cert.extensions  # noqa: B018 - parsed for the exceptions it raises
        cert.public_key()
        cert.signature_hash_algorithm  # noqa: B018
        cert.not_valid_after_utc  # noqa: B018
        cert.subject.rfc4514_string()  # names are decoded lazily too (found by fuzz/)
        cert.issuer.rfc4514_string()
    except x509.InvalidVersion as exc:
        raise FormatError(f"unsupported X.509 version {exc.parsed_version}", field=field) from None
    except x509.DuplicateExtension as exc:
        raise FormatError(
            f"the extension {exc.oid.dotted_string} appears twice", field=field
        ) from None
    except UnsupportedAlgorithm as exc:
        raise FormatError(f"unsupported algorithm: {_first_line(exc)}", field=field) from None
    except (ValueError, TypeError) as exc:  # TypeError: a BIT STRING name of another OID
        what = "a PEM" if pem else "a DER"
        raise FormatError(
            f"not {what} X.509 certificate: {_first_line(exc)}", field=field
        ) from None
    return cert


def _first_line(exc: Exception) -> str:
    """The library's message without its links and dumps, and short."""
    text = str(exc).split(". See ", 1)[0].splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def subject_key_identifier(cert: x509.Certificate) -> bytes:
    """The 8-byte SKI that Trust Anchor Cells store; the key is matched to a cell by it."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        raise CertificateRejected("certificate has no subjectKeyIdentifier") from None
    ski = ext.value.digest
    if len(ski) != 8:
        raise CertificateRejected(f"subjectKeyIdentifier has {len(ski)} bytes, SMKI uses 8")
    return ski


def smki_key_identifier(public_key: ec.EllipticCurvePublicKey) -> bytes:
    """RFC 5280 §4.2.1.2 method 2 (0100 + low 60 bits of SHA-1), which the SMKI test CA uses."""
    point = public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    h = hashlib.sha1(point, usedforsecurity=False).digest()
    return bytes([0x40 | (h[-8] & 0x0F)]) + h[-7:]


def check_key_identifier(cert: x509.Certificate) -> bytes:
    """The SKI must be the method-2 identifier of the certificate's own key (SMKI, spec §4).

    Devices match a key by the SKI in their Trust Anchor Cell: an SKI that is not derived
    from the key would let one certificate stand for another key's cell.
    """
    ski = subject_key_identifier(cert)
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CertificateRejected(f"key is {type(key).__name__}, SMKI needs P-256 (secp256r1)")
    expected = smki_key_identifier(key)
    if ski != expected:
        raise CertificateRejected(
            f"subjectKeyIdentifier {ski.hex()} is not the RFC 5280 method-2 identifier of "
            f"the certificate's own key ({expected.hex()})"
        )
    return ski


def compact_name(name: x509.Name) -> str:
    """RFC 4514 without spaces (``CN=Z1,OU=07``): the form X509IssuerName carries."""
    return name.rfc4514_string()


def parse_smki(cert: x509.Certificate) -> SmkiCertificate:
    """Read role, EUI, SKI and key usage; anything missing or odd is a rejection, not a guess."""
    role = _role_of(cert)
    eui = _eui_of(cert)
    ski = subject_key_identifier(cert)
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        raise CertificateRejected("certificate has no keyUsage extension") from None
    bits = _key_usage_bits(ku)
    if bits == ["digitalSignature"]:
        usage: KeyUsageName = "digitalSignature"
    elif bits == ["keyAgreement"]:
        usage = "keyAgreement"
    else:
        raise CertificateRejected(
            f"keyUsage must be exactly digitalSignature or keyAgreement, got {bits or 'none'}"
        )
    return SmkiCertificate(
        certificate=cert,
        role=role,
        eui=eui,
        ski=ski,
        key_usage=usage,
        serial=cert.serial_number,
        issuer_name=compact_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def check_profile_basics(cert: x509.Certificate, now: dt.datetime) -> SmkiCertificate:
    """The checks every SMKI organisation certificate must pass whatever it is used for."""
    _require_aware(now)
    smki = parse_smki(cert)
    ku_ext = cert.extensions.get_extension_for_class(x509.KeyUsage)
    if not ku_ext.critical:
        raise CertificateRejected("keyUsage extension is not marked critical")
    try:
        pol_ext = cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES)
    except x509.ExtensionNotFound:
        raise CertificateRejected("certificate has no certificatePolicies extension") from None
    if not pol_ext.critical:
        raise CertificateRejected("certificatePolicies extension is not marked critical")
    policies = pol_ext.value
    assert isinstance(policies, x509.CertificatePolicies)
    oids = [p.policy_identifier.dotted_string for p in policies]
    if SMKI_ORG_POLICY.dotted_string not in oids:
        raise CertificateRejected(
            f"certificatePolicies {oids} lack the SMKI policy {SMKI_ORG_POLICY.dotted_string}"
        )
    key = cert.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        curve = key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__
        raise CertificateRejected(f"key is {curve}, SMKI needs P-256 (secp256r1)")
    if cert.signature_algorithm_oid != SignatureAlgorithmOID.ECDSA_WITH_SHA256:
        raise CertificateRejected(
            f"certificate signed with {cert.signature_algorithm_oid.dotted_string}, "
            "SMKI needs ecdsa-with-SHA256"
        )
    check_validity(cert, now)
    return smki


def check_validity(cert: x509.Certificate, now: dt.datetime, *, what: str = "certificate") -> None:
    """Inclusive at both ends, as RFC 5280 defines the validity period."""
    _require_aware(now)
    if now < cert.not_valid_before_utc:
        raise CertificateRejected(
            f"{what} is not valid before {_iso(cert.not_valid_before_utc)} (now {_iso(now)})"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateRejected(
            f"{what} expired on {_iso(cert.not_valid_after_utc)} (now {_iso(now)})"
        )


def check_supplier_signing(
    cert: x509.Certificate,
    *,
    supplier_eui: Eui64,
    now: dt.datetime,
    issuers: Sequence[x509.Certificate] = (),
) -> SmkiCertificate:
    """The rule for a certificate whose key makes ARP signatures (spec §4), its SKI bound
    to its key (method 2).

    The SKI-against-Trust-Anchor-Cell comparison is the caller's: it needs the device's cells.
    """
    smki = check_profile_basics(cert, now)
    _require_role(smki, RemotePartyRole.SUPPLIER)
    _require_usage(smki, "digitalSignature")
    _require_eui(smki, supplier_eui)
    check_key_identifier(cert)
    if issuers:
        check_issued_by(cert, issuers, now=now)
    return smki


def check_xml_signing(cert: x509.Certificate, *, eui: Eui64, now: dt.datetime) -> SmkiCertificate:
    """The rule for the DUIS XML-signing certificate: pinned, since it is self-signed."""
    smki = check_profile_basics(cert, now)
    _require_role(smki, RemotePartyRole.XML_SIGNING)
    _require_usage(smki, "digitalSignature")
    _require_eui(smki, eui)
    check_key_identifier(cert)
    return smki


def check_issued_by(
    cert: x509.Certificate, issuers: Sequence[x509.Certificate], *, now: dt.datetime
) -> x509.Certificate:
    """One hop only: SMKI organisation certificates are issued directly by an issuing CA."""
    issuer_text = compact_name(cert.issuer)
    candidates = [i for i in issuers if i.subject == cert.issuer]
    if not candidates:
        raise CertificateRejected(
            f"issuer {issuer_text} is not one of the configured SMKI issuing CAs"
        )
    for ca in candidates:
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            continue
        check_validity(ca, now, what=f"issuing CA {issuer_text}")
        return ca
    raise CertificateRejected(
        f"certificate signature does not verify with any configured CA named {issuer_text}"
    )


def smki_name(role: int, eui: Eui64 | None, cn: str = "") -> x509.Name:
    """A subject in the SMKI layout: CN?, OU=<role hex>, x500UniqueIdentifier=<EUI bits>.

    With no EUI the order is OU then CN, as the issuing CA names (``CN=Z1,OU=07``) are written.
    """
    ou = x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{role:02X}")
    attrs: list[x509.NameAttribute[str] | x509.NameAttribute[bytes]] = []
    if eui is None:
        attrs.append(ou)
        if cn:
            attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
        return x509.Name(attrs)
    if cn:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    attrs.append(ou)
    # BIT STRING content: the unused-bits byte (0) then the 8 EUI bytes.
    attrs.append(
        x509.NameAttribute(
            NameOID.X500_UNIQUE_IDENTIFIER, b"\x00" + eui.value, _type=_ASN1Type.BitString
        )
    )
    return x509.Name(attrs)


def smki_extensions(
    *,
    public_key: ec.EllipticCurvePublicKey,
    key_usage: KeyUsageName,
    authority_key: ec.EllipticCurvePublicKey | None = None,
) -> list[tuple[x509.ExtensionType, bool]]:
    """(extension, critical) pairs of the SMKI organisation profile, for a CertificateBuilder."""
    ds = key_usage == "digitalSignature"
    exts: list[tuple[x509.ExtensionType, bool]] = [
        (
            x509.KeyUsage(
                digital_signature=ds,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=not ds,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        ),
        (x509.CertificatePolicies([x509.PolicyInformation(SMKI_ORG_POLICY, None)]), True),
        (x509.SubjectKeyIdentifier(smki_key_identifier(public_key)), False),
    ]
    if authority_key is not None:
        aki = x509.AuthorityKeyIdentifier(smki_key_identifier(authority_key), None, None)
        exts.append((aki, False))
    return exts


def _role_of(cert: x509.Certificate) -> int:
    ous = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if len(ous) != 1:
        raise CertificateRejected(
            f"subject must carry exactly one OU (remote party role), found {len(ous)}"
        )
    value = ous[0].value
    text = value if isinstance(value, str) else value.hex()
    if not _ROLE_FORM.match(text):
        raise CertificateRejected(
            f"subject OU {excerpt(text)} is not a remote party role (two hex digits, e.g. '02')"
        )
    return int(text, 16)


def _eui_of(cert: x509.Certificate) -> Eui64:
    uids = cert.subject.get_attributes_for_oid(NameOID.X500_UNIQUE_IDENTIFIER)
    if len(uids) != 1:
        raise CertificateRejected(
            f"subject must carry exactly one x500UniqueIdentifier (EUI-64), found {len(uids)}"
        )
    value = uids[0].value
    raw = value if isinstance(value, bytes) else value.encode("latin-1")
    if len(raw) == 9 and raw[0] == 0:  # BIT STRING with its unused-bits byte
        raw = raw[1:]
    if len(raw) != 8:
        raise CertificateRejected(
            f"x500UniqueIdentifier {raw.hex()} is not an 8-byte EUI-64 bit string"
        )
    return Eui64(raw)


def _key_usage_bits(ku: x509.KeyUsage) -> list[str]:
    bits = []
    for attr, name in (
        ("digital_signature", "digitalSignature"),
        ("content_commitment", "nonRepudiation"),
        ("key_encipherment", "keyEncipherment"),
        ("data_encipherment", "dataEncipherment"),
        ("key_agreement", "keyAgreement"),
        ("key_cert_sign", "keyCertSign"),
        ("crl_sign", "cRLSign"),
    ):
        if getattr(ku, attr):
            bits.append(name)
    return bits


def _require_role(smki: SmkiCertificate, role: RemotePartyRole) -> None:
    if smki.role != role:
        raise CertificateRejected(f"role OU is {smki.role:02X}, needs {role_label(role)}")


def _require_usage(smki: SmkiCertificate, usage: KeyUsageName) -> None:
    if smki.key_usage != usage:
        raise CertificateRejected(f"keyUsage is {smki.key_usage}, needs {usage} only")


def _require_eui(smki: SmkiCertificate, eui: Eui64) -> None:
    if smki.eui != eui:
        raise CertificateRejected(f"certificate EUI is {smki.eui}, expected {eui}")


def _require_aware(now: dt.datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("'now' must be timezone-aware")


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
