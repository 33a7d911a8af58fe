"""Which manufacturer certificates the use case trusts, and for how long: P-256 keys, 16-bit
codes, digitalSignature, validity at the service's clock; revocation; every change audited."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from signer.caller import Caller, bound
from signer.errors import InvalidInput, NotFound, PolicyRefused
from signer.registry.db import Database, open_database
from signer.service import admin
from tests.support.audit_rows import assert_chain, rows
from tests.support.certificates import self_signed
from tests.support.constants import PINNED
from tests.support.manufacturer import new_manufacturer

OPERATOR = Caller(identity="cli:ann@host", request_id="req-mfr-1", method="signer manufacturers")


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'signer.db'}")


def _p384_certificate() -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP384R1())
    return self_signed(
        key, "P-384 Manufacturer", PINNED - dt.timedelta(days=1), PINNED + dt.timedelta(days=1)
    )


def test_a_p256_certificate_is_trusted_once(db: Database, tmp_path: Path) -> None:
    cert = new_manufacturer(tmp_path).certificate
    assert admin.add_manufacturer_certificate(db, 0x121D, cert, PINNED) is True
    assert admin.add_manufacturer_certificate(db, 0x121D, cert, PINNED) is False
    assert [(v.cert.code, v.state) for v in admin.list_manufacturers(db, PINNED)] == [
        (0x121D, "trusted")
    ]


def test_a_certificate_with_another_curve_is_refused(db: Database) -> None:
    with pytest.raises(InvalidInput, match="P-256") as err:
        admin.add_manufacturer_certificate(db, 0x121D, _p384_certificate(), PINNED)
    assert err.value.field == "cert"
    assert admin.list_manufacturers(db, PINNED) == []


@pytest.mark.parametrize("code", [-1, 0x10000])
def test_a_code_outside_16_bits_is_refused(db: Database, tmp_path: Path, code: int) -> None:
    cert = new_manufacturer(tmp_path).certificate
    with pytest.raises(InvalidInput, match="16 bits") as err:
        admin.add_manufacturer_certificate(db, code, cert, PINNED)
    assert err.value.field == "code"
    assert admin.list_manufacturers(db, PINNED) == []


def _with_key_usage(**bits: bool) -> x509.Certificate:
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    usage.update(bits)
    return self_signed(
        ec.generate_private_key(ec.SECP256R1()),
        "KU Manufacturer",
        PINNED - dt.timedelta(days=1),
        PINNED + dt.timedelta(days=1),
        extensions=[(x509.KeyUsage(**usage), True)],
    )


def test_key_usage_when_present_must_allow_digital_signature(db: Database) -> None:
    with pytest.raises(InvalidInput, match="digitalSignature") as err:
        admin.add_manufacturer_certificate(db, 0x121D, _with_key_usage(key_agreement=True), PINNED)
    assert err.value.field == "cert"
    assert admin.list_manufacturers(db, PINNED) == []
    signing = _with_key_usage(digital_signature=True)
    assert admin.add_manufacturer_certificate(db, 0x121D, signing, PINNED) is True


@pytest.mark.parametrize(
    ("now", "words"),
    [
        (PINNED - dt.timedelta(days=366), "not valid before"),
        (PINNED + dt.timedelta(days=366), "expired on"),
    ],
)
def test_a_certificate_outside_its_validity_at_the_clock_is_refused(
    db: Database, tmp_path: Path, now: dt.datetime, words: str
) -> None:
    cert = new_manufacturer(tmp_path).certificate  # valid PINNED +- 365 days
    with pytest.raises(InvalidInput, match=words) as err:
        admin.add_manufacturer_certificate(db, 0x121D, cert, now)
    assert err.value.field == "cert"
    assert admin.list_manufacturers(db, PINNED) == []


def test_revocation_is_listed_audited_and_final(db_url: str, tmp_path: Path) -> None:
    db = open_database(db_url)
    m = new_manufacturer(tmp_path)
    fingerprint = m.certificate.fingerprint(hashes.SHA256()).hex()
    with bound(OPERATOR):
        assert admin.add_manufacturer(db, "121d", m.cert_pem.read_bytes(), PINNED) is True
        at = PINNED + dt.timedelta(days=2)
        revoked = admin.revoke_manufacturer_certificate(
            db, "121D", fingerprint=fingerprint.upper(), reason="key leaked", at=at, now=PINNED
        )
    assert (revoked.revoked_at, revoked.revocation_reason) == (at, "key leaked")
    # from `at` on, not before: the listing tells the state at the time asked
    states = [v.state for v in admin.list_manufacturers(db, PINNED)]
    assert states == ["trusted"]
    (view,) = admin.list_manufacturers(db, at)
    assert view.state == "revoked"
    assert view.as_json() | {"added_at": None} == {
        "code": "121D",
        "subject": "CN=Test Manufacturer 121D",
        "serial": str(m.certificate.serial_number),
        "fingerprint": fingerprint,
        "not_before": m.certificate.not_valid_before_utc.isoformat(),
        "not_after": m.certificate.not_valid_after_utc.isoformat(),
        "state": "revoked",
        "revoked_at": at.isoformat(),
        "reason": "key leaked",
        "added_at": None,
    }
    added, revoke = rows(db_url)[-2:]
    assert [
        (r["operation"], r["outcome"], r["client"], r["call_id"], r["certificate_serial"])
        for r in (added, revoke)
    ] == [
        ("manufacturer-add", "ok", OPERATOR.identity, OPERATOR.request_id, revoked.serial),
        ("manufacturer-revoke", "ok", OPERATOR.identity, OPERATOR.request_id, revoked.serial),
    ]
    details = json.loads(revoke["details"])
    assert (details["fingerprint"], details["reason"], details["revoked_at"]) == (
        fingerprint,
        "key leaked",
        at.isoformat(),
    )
    assert_chain(db_url)
    # revoked for good: a second revocation and a re-add are refused, and recorded as refused
    with pytest.raises(PolicyRefused, match="already revoked"):
        admin.revoke_manufacturer_certificate(
            db, "121D", serial=revoked.serial, reason="again", now=PINNED
        )
    with pytest.raises(PolicyRefused, match="not trusted again"):
        admin.add_manufacturer_certificate(db, 0x121D, m.certificate, PINNED)
    assert [(r["operation"], r["outcome"]) for r in rows(db_url)[-2:]] == [
        ("manufacturer-revoke", "refused"),
        ("manufacturer-add", "refused"),
    ]
    db.dispose()


def test_revoke_names_what_is_wrong(db: Database, tmp_path: Path) -> None:
    cert = new_manufacturer(tmp_path).certificate
    admin.add_manufacturer_certificate(db, 0x121D, cert, PINNED)
    serial = str(cert.serial_number)

    def revoke(**kw: object) -> None:
        args: dict[str, object] = {"reason": "r", "now": PINNED, "serial": serial, **kw}
        admin.revoke_manufacturer_certificate(db, "121D", **args)  # type: ignore[arg-type]

    with pytest.raises(InvalidInput, match="reason") as e1:
        revoke(reason="  ")
    assert e1.value.field == "reason"
    with pytest.raises(InvalidInput, match="exactly one"):
        revoke(fingerprint="00" * 32)
    with pytest.raises(InvalidInput) as e2:
        revoke(serial=None, fingerprint="xyz")
    assert e2.value.field == "fingerprint"
    with pytest.raises(InvalidInput) as e3:
        revoke(serial="twelve")
    assert e3.value.field == "serial"
    with pytest.raises(InvalidInput) as e4:
        revoke(at=dt.datetime(2024, 6, 1))
    assert e4.value.field == "at"
    with pytest.raises(NotFound, match="serial 4660"):  # 0x1234
        revoke(serial="0x1234")
    with pytest.raises(NotFound, match="121E"):
        admin.revoke_manufacturer_certificate(db, "121E", serial=serial, reason="r", now=PINNED)
    assert [v.state for v in admin.list_manufacturers(db, PINNED)] == ["trusted"]
