"""A test SMKI issuing CA, written with `cryptography` alone (not the project's issuance code).

It certifies whatever public key a CSR carries, in the SMKI Organisation profile: the role OU
and EUI from arguments, keyUsage critical with one bit, the SMKI policy critical, and an
RFC 5280 method-2 SKI computed here.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

SMKI_POLICY = x509.ObjectIdentifier("1.2.826.0.1.8641679.1.2.1.4")


def method2_ski(key: ec.EllipticCurvePublicKey) -> bytes:
    point = key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    digest = hashlib.sha1(point).digest()  # RFC 5280 method 2 key identifier
    return bytes([0x40 | (digest[12] & 0x0F)]) + digest[13:]


def org_subject(role: int, eui_hex: str, cn: str = "") -> x509.Name:
    attrs: list[x509.NameAttribute[str] | x509.NameAttribute[bytes]] = (
        [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    )
    attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"{role:02X}"))
    attrs.append(
        x509.NameAttribute(
            NameOID.X500_UNIQUE_IDENTIFIER,
            b"\x00" + bytes.fromhex(eui_hex),
            _type=x509.name._ASN1Type.BitString,
        )
    )
    return x509.Name(attrs)


@dataclass
class TestCa:
    cn: str = "TESTCA"
    not_before: dt.datetime = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    not_after: dt.datetime = dt.datetime(2035, 1, 1, tzinfo=dt.UTC)
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )

    __test__ = False  # not a pytest class

    @property
    def name(self) -> x509.Name:
        return x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "07"),
                x509.NameAttribute(NameOID.COMMON_NAME, self.cn),
            ]
        )

    @property
    def certificate(self) -> x509.Certificate:
        public = self.key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(public)
            .serial_number(1)
            .not_valid_before(self.not_before)
            .not_valid_after(self.not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
            .add_extension(x509.SubjectKeyIdentifier(method2_ski(public)), False)
            .sign(self.key, hashes.SHA256())
        )

    def write(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path

    def issue(
        self,
        public_key: ec.EllipticCurvePublicKey | x509.CertificateSigningRequest,
        *,
        role: int = 0x02,
        eui_hex: str = "90B3D51F30010000",
        cn: str = "",
        key_agreement: bool = False,
        policy: bool = True,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        serial: int | None = None,
        subject: x509.Name | None = None,
        ski: bytes | None = None,
    ) -> x509.Certificate:
        """An Organisation certificate; the keyword arguments make the wrong ones too
        (``ski``: a subjectKeyIdentifier other than the key's method-2 one)."""
        if isinstance(public_key, x509.CertificateSigningRequest):
            assert public_key.is_signature_valid
            subject = subject or public_key.subject
            key = public_key.public_key()
        else:
            key = public_key
        assert isinstance(key, ec.EllipticCurvePublicKey)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject or org_subject(role, eui_hex, cn))
            .issuer_name(self.name)
            .public_key(key)
            .serial_number(serial or x509.random_serial_number())
            .not_valid_before(not_before or self.not_before)
            .not_valid_after(not_after or self.not_after)
            .add_extension(
                x509.KeyUsage(
                    not key_agreement,
                    False,
                    False,
                    False,
                    key_agreement,
                    False,
                    False,
                    False,
                    False,
                ),
                True,
            )
            .add_extension(x509.SubjectKeyIdentifier(ski or method2_ski(key)), False)
            .add_extension(
                x509.AuthorityKeyIdentifier(method2_ski(self.key.public_key()), None, None), False
            )
        )
        if policy:
            builder = builder.add_extension(
                x509.CertificatePolicies([x509.PolicyInformation(SMKI_POLICY, None)]), True
            )
        return builder.sign(self.key, hashes.SHA256())


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)
