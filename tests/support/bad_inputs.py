"""Files an operator might hand the CLI by mistake (or an attacker on purpose).

Each maker writes one file under a directory and returns its path; the names say what is
wrong. Certificates are built by `cryptography` and then broken at the DER level, because
the library refuses to build most of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

_NOW = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
_ANY_KEY = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _cert(key: _ANY_KEY, *, key_agreement: bool = False) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad input")])
    usage = x509.KeyUsage(
        digital_signature=not key_agreement,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=key_agreement,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1234)
        .not_valid_before(_NOW - dt.timedelta(days=1))
        .not_valid_after(_NOW + dt.timedelta(days=3650))
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier(b"\x40" + b"\x01" * 7), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier(b"\x40" + b"\x02" * 7, None, None), critical=False
        )
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _p256() -> bytes:
    return _der(_cert(ec.generate_private_key(ec.SECP256R1())))


def _patched(der: bytes, old: bytes, new: bytes) -> bytes:
    assert der.count(old) == 1, old
    return der.replace(old, new)


def wrong_version(d: Path) -> Path:
    """X.509 version 5 (the INTEGER 4): cryptography refuses it when it reads the version."""
    return _write(
        d, "wrong-version.der", _patched(_p256(), b"\xa0\x03\x02\x01\x02", b"\xa0\x03\x02\x01\x04")
    )


def duplicate_extension(d: Path) -> Path:
    """The authorityKeyIdentifier's OID turned into the SKI's: two SKI extensions."""
    return _write(
        d,
        "duplicate-extension.der",
        _patched(_p256(), b"\x06\x03\x55\x1d\x23", b"\x06\x03\x55\x1d\x0e"),
    )


def rsa_key(d: Path) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _write(d, "rsa.pem", _cert(key).public_bytes(serialization.Encoding.PEM))


def ed25519_key(d: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    return _write(d, "ed25519.pem", _cert(key).public_bytes(serialization.Encoding.PEM))


def p384_key(d: Path) -> Path:
    key = ec.generate_private_key(ec.SECP384R1())
    return _write(d, "p384.pem", _cert(key).public_bytes(serialization.Encoding.PEM))


def key_agreement(d: Path) -> Path:
    """A P-256 certificate for key agreement, not signing: wrong for every signing purpose."""
    key = ec.generate_private_key(ec.SECP256R1())
    return _write(
        d,
        "key-agreement.pem",
        _cert(key, key_agreement=True).public_bytes(serialization.Encoding.PEM),
    )


def garbage_pem(d: Path) -> Path:
    return _write(
        d,
        "garbage.pem",
        b"-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )


def trailing_der(d: Path) -> Path:
    return _write(d, "trailing.der", _p256() + b"\x00\x00trailing")


def not_utf8(d: Path) -> Path:
    return _write(d, "latin1.csv", b"entry_id,caf\xe9\n")


def empty(d: Path) -> Path:
    return _write(d, "empty.txt", b"")


def deeply_nested(d: Path) -> Path:
    return _write(d, "nested.json", b"[" * 100_000)


def huge_float(d: Path) -> Path:
    return _write(d, "huge-float.json", b'[{"entry_id": 1e999999}]')


def huge_integer(d: Path) -> Path:
    return _write(d, "huge-int.json", b'[{"entry_id": ' + b"9" * 100_000 + b"}]")


def directory(d: Path) -> Path:
    path = d / "a-directory"
    path.mkdir(exist_ok=True)
    return path


CERTIFICATES: dict[str, Callable[[Path], Path]] = {
    "wrong-version": wrong_version,
    "duplicate-extension": duplicate_extension,
    "rsa": rsa_key,
    "ed25519": ed25519_key,
    "p384": p384_key,
    "key-agreement": key_agreement,
    "garbage-pem": garbage_pem,
    "trailing-der": trailing_der,
    "empty": empty,
    "not-utf8": not_utf8,
    "directory": directory,
}
"""Certificate files every command that reads one must refuse in one line."""

DATA_FILES: dict[str, Callable[[Path], Path]] = {
    "not-utf8": not_utf8,
    "empty": empty,
    "deeply-nested": deeply_nested,
    "huge-float": huge_float,
    "huge-integer": huge_integer,
    "directory": directory,
}
"""Text/JSON files (CPL, inventory, credentials, device lists) to refuse in one line."""


def _write(d: Path, name: str, data: bytes) -> Path:
    path = d / name
    path.write_bytes(data)
    return path
