"""Self-signed test certificates, built one way for every test that needs one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec


def self_signed(
    key: ec.EllipticCurvePrivateKey,
    name: str | x509.Name,
    not_before: dt.datetime,
    not_after: dt.datetime,
    *,
    serial: int | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> x509.Certificate:
    """A certificate for ``key`` signed by itself; a plain ``name`` is the common name, a
    missing ``serial`` a random one; ``extensions`` are (value, critical) pairs."""
    if isinstance(name, str):
        name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number() if serial is None else serial)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical)
    return builder.sign(key, hashes.SHA256())
