"""Which manufacturer certificates the use case trusts: P-256 keys and 16-bit codes only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import InvalidInput
from signer.registry.db import Database, open_database
from signer.service import admin
from tests.support.constants import PINNED
from tests.support.manufacturer import new_manufacturer


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'signer.db'}")


def _p384_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "P-384 Manufacturer")])
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(PINNED - dt.timedelta(days=1))
        .not_valid_after(PINNED + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def test_a_p256_certificate_is_trusted_once(db: Database, tmp_path: Path) -> None:
    cert = new_manufacturer(tmp_path).certificate
    assert admin.add_manufacturer_certificate(db, 0x121D, cert, PINNED) is True
    assert admin.add_manufacturer_certificate(db, 0x121D, cert, PINNED) is False
    assert [code for code, _, _ in admin.list_manufacturers(db)] == [0x121D]


def test_a_certificate_with_another_curve_is_refused(db: Database) -> None:
    with pytest.raises(InvalidInput, match="P-256") as err:
        admin.add_manufacturer_certificate(db, 0x121D, _p384_certificate(), PINNED)
    assert err.value.field == "cert"
    assert admin.list_manufacturers(db) == []


@pytest.mark.parametrize("code", [-1, 0x10000])
def test_a_code_outside_16_bits_is_refused(db: Database, tmp_path: Path, code: int) -> None:
    cert = new_manufacturer(tmp_path).certificate
    with pytest.raises(InvalidInput, match="16 bits") as err:
        admin.add_manufacturer_certificate(db, code, cert, PINNED)
    assert err.value.field == "code"
    assert admin.list_manufacturers(db) == []
