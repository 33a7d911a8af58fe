"""A test manufacturer: its key is the manufacturer's, so it lives outside the token."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.certificates import self_signed
from tests.support.constants import PINNED


@dataclass(frozen=True)
class Manufacturer:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    cert_pem: Path

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))


def new_manufacturer(directory: Path) -> Manufacturer:
    """A fresh key and self-signed certificate valid around PINNED, its PEM in ``directory``."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = self_signed(
        key,
        "Test Manufacturer 121D",
        PINNED - dt.timedelta(days=365),
        PINNED + dt.timedelta(days=365),
    )
    path = directory / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return Manufacturer(key, cert, path)
