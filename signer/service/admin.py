"""Administrative use cases behind the CLI: keys, manufacturers, devices."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.duis.response import extract_gbcs_payload
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.trust_anchor import (
    DeviceCredentials,
    decode_payload_text,
    parse_security_credentials_response,
)
from signer.hsm.token import Token, TokenKey
from signer.registry import devices, manufacturers
from signer.registry.db import Database
from signer.registry.devices import DeviceRecord
from signer.smki.certificate import load_certificate


def import_key(token: Token, label: str, key_pem: bytes, cert_pem: bytes) -> TokenKey:
    """Import an existing (test) key and its certificate as non-extractable and sensitive."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise InvalidInput(
            "encrypted private keys are not supported; decrypt it first", field="key"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"not a PEM private key: {exc}", field="key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("not an EC private key", field="key")
    cert = load_certificate(cert_pem, field="cert")
    return token.import_key(label, key, cert)


def add_manufacturer(db: Database, code: str, cert_data: bytes, now: dt.datetime) -> bool:
    text = code.strip().removeprefix("0x").removeprefix("0X")
    try:
        value = int(text, 16)
    except ValueError:
        raise InvalidInput(f"manufacturer code {code!r} is not hexadecimal", field="code") from None
    return add_manufacturer_certificate(db, value, load_certificate(cert_data, field="cert"), now)


def add_manufacturer_certificate(
    db: Database, code: int, certificate: x509.Certificate, now: dt.datetime
) -> bool:
    """Trust a certificate for a manufacturer code's deliveries; False if it already was.

    Manufacturers sign with ECDSA P-256 (GBCS): a certificate with another key could
    never verify a delivery, so it is refused rather than stored."""
    if not 0 <= code <= 0xFFFF:
        raise InvalidInput(f"manufacturer code {code:#x} is not 16 bits", field="code")
    key = certificate.public_key()
    if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
        raise InvalidInput("a manufacturer certificate must carry a P-256 key", field="cert")
    return manufacturers.add_certificate(db, code, certificate, now)


def parse_device_credentials(data: bytes) -> DeviceCredentials:
    """A 6.24.1 response given as hex, base64, or a DUIS response XML carrying it."""
    if data.lstrip().startswith(b"<"):
        payload = extract_gbcs_payload(data)
    else:
        payload = decode_payload_text(data)
    return parse_security_credentials_response(payload)


def import_device(db: Database, data: bytes, now: dt.datetime) -> tuple[DeviceCredentials, bool]:
    creds = parse_device_credentials(data)
    return creds, devices.store_credentials(db, creds, now)


def show_device(db: Database, eui_text: str) -> DeviceRecord | None:
    return devices.get_device(db, Eui64.parse(eui_text, field="eui"))


def list_manufacturers(db: Database) -> list[tuple[int, str, dt.datetime]]:
    """(code, certificate subject, not after) of every registered certificate, by code."""
    return manufacturers.list_codes(db)
