"""A throwaway X.509 CA for the mTLS tests: server and client certificates, files on disk.

TLS checks validity against the real clock (BoringSSL inside gRPC), not the service's pinned
one, so everything here is valid around the real "now" (or expired on purpose).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Issued:
    """A certificate, its key, and where both were written."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()


def _name(cn: str | None, org: str, more_cns: tuple[str, ...] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)]
    for name in ((cn,) if cn is not None else ()) + more_cns:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, name))
    return x509.Name(attrs)


def _san(entry: str) -> x509.GeneralName:
    """ "DNS:x", "URI:y", "email:z", "IP:1.2.3.4", as `signer.caller.Caller` spells them."""
    kind, _, value = entry.partition(":")
    if kind == "DNS":
        return x509.DNSName(value)
    if kind == "URI":
        return x509.UniformResourceIdentifier(value)
    if kind == "email":
        return x509.RFC822Name(value)
    if kind == "IP":
        return x509.IPAddress(ipaddress.ip_address(value))
    raise ValueError(f"unknown SAN form {entry!r}")


class CertificateAuthority:
    """A self-signed P-256 CA that writes what it issues under `directory`."""

    def __init__(self, directory: Path, name: str = "Signer Test Client CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.now = dt.datetime.now(dt.UTC)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name, "Signer Tests")
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=30))
            .not_valid_after(self.now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = directory / "ca.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        file_stem: str,
        *,
        cn: str | None,
        org: str = "Signer Tests",
        sans: tuple[str, ...] = (),
        server: bool = False,
        expired: bool = False,
        more_cns: tuple[str, ...] = (),
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        if expired:
            start, end = self.now - dt.timedelta(days=20), self.now - dt.timedelta(days=1)
        else:
            start, end = self.now - dt.timedelta(hours=1), self.now + dt.timedelta(days=2)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn, org, more_cns))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path = self.directory / f"{file_stem}.pem"
        key_path = self.directory / f"{file_stem}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert, key, cert_path, key_path)

    def crl(
        self,
        file_stem: str,
        revoked: tuple[Issued, ...] = (),
        *,
        expired: bool = False,
        der: bool = False,
        signer: ec.EllipticCurvePrivateKey | None = None,
    ) -> Path:
        """A CRL of this CA revoking ``revoked``, written to ``file_stem.crl``; ``expired``
        puts its nextUpdate in the past, ``signer`` signs it with another key (a forgery)."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.name)
            .last_update(now - dt.timedelta(days=2 if expired else 0, minutes=5))
            .next_update(now - dt.timedelta(days=1) if expired else now + dt.timedelta(days=7))
            .add_extension(x509.CRLNumber(x509.random_serial_number()), critical=False)
        )
        for issued in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(issued.certificate.serial_number)
                .revocation_date(now - dt.timedelta(minutes=1))
                .build()
            )
        crl = builder.sign(signer or self.key, hashes.SHA256())
        path = self.directory / f"{file_stem}.crl"
        path.write_bytes(
            crl.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM)
        )
        return path

    def server(self, file_stem: str = "server") -> Issued:
        """For a server on 127.0.0.1 reached as "127.0.0.1:port" or "localhost:port"."""
        return self.issue(
            file_stem, cn="localhost", sans=("IP:127.0.0.1", "DNS:localhost"), server=True
        )

    def client(
        self,
        file_stem: str,
        cn: str | None,
        *,
        sans: tuple[str, ...] = (),
        expired: bool = False,
        more_cns: tuple[str, ...] = (),
    ) -> Issued:
        return self.issue(file_stem, cn=cn, sans=sans, expired=expired, more_cns=more_cns)
