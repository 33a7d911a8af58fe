"""The life of a Supplier signing key on a real SoftHSM2 token: generate, request, certify,
activate, sign, rotate, retire.

What the service claims is checked from outside it wherever possible: the token's attributes
and objects through OpenSC's ``pkcs11-tool``, CSRs through ``openssl req``, certificates from
the module's own test CA (``tests.smki_ca``), SKIs by RFC 5280 method 2 computed there, and
signatures with ``tests.independent``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.clock import fixed_clock
from signer.config import load_config
from signer.errors import CertificateRejected, DevicesRefused, InvalidInput, PolicyRefused
from signer.gbcs import delivery as deliveries
from signer.hsm.token import RESCAN_INTERVAL
from signer.registry import devices
from signer.registry import keys as ledger
from signer.registry.keys import OperationRecord
from signer.service import admin
from signer.service.keys import lifecycle
from signer.service.keys.views import UNREGISTERED, list_keys, rotation_report
from signer.service.resign import ResignResult, resign
from signer.service.services import Services, open_services
from signer.service.verify import verify_manufacturer
from signer.smki.lifecycle import KeyPurpose, KeyState
from tests.support.constants import MANUFACTURER_CODE, PINNED, SUPPLIER_EUI
from tests.support.database import new_database
from tests.support.devices import credentials
from tests.support.hsm import LIFECYCLE_PG_TOKEN_LABEL, MODULE, TOKEN_LABEL, Hsm
from tests.support.independent import ota_header, raw_signature_verifies, split_upgrade_image
from tests.support.manufacturer import Manufacturer
from tests.support.server import write_config
from tests.support.smki_ca import TestCa, method2_ski, pem

# The service clock: inside the test CA's validity (2020..2035) and the session manufacturer
# certificate's (PINNED +- 1 year), so images verify and certificates are judged at one time.
NOW = PINNED
ACTOR = "alice@security-team"
P256_PARAMS = "06082a8648ce3d030107"  # DER OID 1.2.840.10045.3.1.7 (prime256v1)


# -- fixtures -------------------------------------------------------------------------------


#: the token of the module instance being run: the session token on SQLite, a token of its
#: own on PostgreSQL (set by the ``svc`` fixture)
_TOKEN = TOKEN_LABEL


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa(cn="LCCA")


@pytest.fixture(scope="module")
def svc(
    hsm: Hsm,
    ca: TestCa,
    manufacturer: Manufacturer,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Services]:
    """Services on the session token with this module's own database and SMKI issuer.

    Opened with ``open_services`` so the configured issuer is loaded: the chain check runs.
    """
    tmp = tmp_path_factory.mktemp("lifecycle")
    issuer = ca.write(tmp / "ca.pem")
    global _TOKEN  # one module instance at a time (a module-scoped param)
    _TOKEN = TOKEN_LABEL if backend == "sqlite" else LIFECYCLE_PG_TOKEN_LABEL
    config = write_config(
        tmp / "signer.toml",
        hsm,
        new_database(request, backend, tmp),
        token_label=_TOKEN,
        pinned=None,
        extra=f'\n[smki]\nissuers = ["{issuer}"]\n',
    )
    services = open_services(load_config(config), clock=fixed_clock(NOW), token=hsm.token(_TOKEN))
    assert len(services.issuers) == 1
    admin.add_manufacturer(
        services.db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), NOW
    )
    yield services
    services.db.dispose()  # the token belongs to the session


# -- independent views of the token (OpenSC pkcs11-tool) --------------------------------------


def _p11(hsm: Hsm, *args: str, login: bool = False) -> subprocess.CompletedProcess[str]:
    cmd = ["pkcs11-tool", "--module", MODULE, "--token-label", _TOKEN]
    if login:
        cmd += ["--login", "--pin", hsm.pin_file.read_text().strip()]
    return subprocess.run(
        [*cmd, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SOFTHSM2_CONF": str(hsm.conf)},
    )


def _p11_objects(hsm: Hsm, kind: str, label: str) -> list[dict[str, str]]:
    """``--list-objects`` parsed into one dict per object: {"header": ..., "Usage": ...}.

    Filtered here: pkcs11-tool's own ``--label`` filter also lets other labels through.
    """
    out = _p11(hsm, "--list-objects", "--type", kind, login=True)
    assert out.returncode == 0, out.stderr
    objects: list[dict[str, str]] = []
    for line in out.stdout.splitlines():
        if line and not line.startswith(" "):
            objects.append({"header": line})
        elif ":" in line and objects:
            name, _, value = line.strip().partition(":")
            objects[-1][name] = value.strip()
    return [o for o in objects if o.get("label") == label]


def _p11_private_key(hsm: Hsm, label: str) -> dict[str, str]:
    [obj] = _p11_objects(hsm, "privkey", label)
    return obj


def _p11_read(hsm: Hsm, kind: str, key_id: bytes, tmp: Path) -> bytes | None:
    """The DER of the object of ``kind`` (pubkey, cert) with this CKA_ID, or None."""
    out_file = tmp / f"{kind}-{key_id.hex()}.der"
    out_file.unlink(missing_ok=True)
    done = _p11(hsm, "--read-object", "--type", kind, "--id", key_id.hex(), "-o", str(out_file))
    if done.returncode != 0:
        assert "object not found" in done.stderr, done.stderr
        return None
    return out_file.read_bytes()


def _p11_public_key(hsm: Hsm, key_id: bytes, tmp: Path) -> ec.EllipticCurvePublicKey:
    der = _p11_read(hsm, "pubkey", key_id, tmp)
    assert der is not None
    key = serialization.load_der_public_key(der)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


# -- helpers: keys, devices, images, ledger records -------------------------------------------


def _key_id(svc: Services, label: str) -> bytes:
    return svc.token.find(label=label).key_id


def _certify(svc: Services, ca: TestCa, label: str) -> x509.Certificate:
    """The production path: a CSR signed in the token, issued by the CA, installed."""
    csr = lifecycle.certificate_request(svc, label, SUPPLIER_EUI, actor=ACTOR)
    cert = ca.issue(csr)
    lifecycle.install_certificate(svc, label, pem(cert), actor=ACTOR)
    return cert


def _active_key(svc: Services, ca: TestCa, label: str) -> x509.Certificate:
    lifecycle.generate(svc, label, KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    cert = _certify(svc, ca, label)
    lifecycle.activate(svc, label, actor=ACTOR)
    return cert


def _ski(cert: x509.Certificate) -> bytes:
    """The SKI a device's cell would hold, computed from the key, not read from the cert."""
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return method2_ski(key)


def _register(svc: Services, eui: str, ski: bytes) -> None:
    """A device whose Supplier digital-signing cell names ``ski`` (replaces its cells)."""
    devices.store_credentials(svc.db, credentials(eui, ski=ski), NOW)


def _verified_image(svc: Services, m: Manufacturer, image: bytes) -> str:
    header = ota_header(len(image))
    d = deliveries.from_separate(
        ota_header=header,
        manufacturer_image=image,
        signature=m.sign(header + image),
        hash=hashlib.sha256(image).digest(),
    )
    verdict = verify_manufacturer(svc, d)
    assert verdict.verified, verdict.checks
    return verdict.image_id


def _signed_by(result: ResignResult, cert: x509.Certificate, image: bytes) -> list[str]:
    """The devices of the one upgrade image whose ARP signature verifies with ``cert``."""
    matching = []
    for item in result.images:
        _, manufacturer_image, _, signature = split_upgrade_image(item.upgrade_image)
        assert manufacturer_image == image
        if raw_signature_verifies(cert, manufacturer_image, signature):
            matching.append(item)
    assert len(matching) == 1, f"{len(matching)} images verify with {cert.subject}"
    return [str(d) for d in matching[0].group.devices]


def _operations(svc: Services, label: str, operation: str) -> list[OperationRecord]:
    return [
        r
        for r in ledger.operations(svc.db, svc.token.token_label)
        if r.key_label == label and r.operation == operation
    ]


def _state(svc: Services, label: str) -> KeyState:
    record = ledger.get(svc.db, svc.token.token_label, _key_id(svc, label))
    assert record is not None
    return record.state


def _refusal_recorded(svc: Services, label: str, operation: str, exc: Exception) -> None:
    last = _operations(svc, label, operation)[-1]
    assert (last.actor, last.outcome, last.detail["reason"]) == (ACTOR, "refused", str(exc))


# -- 1. generation ----------------------------------------------------------------------------


def test_generate_makes_a_pending_p256_key_that_never_leaves_the_token(
    svc: Services, hsm: Hsm, tmp_path: Path
) -> None:
    record = lifecycle.generate(svc, "lc-generated", KeyPurpose.SUPPLIER_DS, actor=ACTOR)

    # the token, as OpenSC sees it: signs, nothing else, and never left the token
    private = _p11_private_key(hsm, "lc-generated")
    assert private["header"].startswith("Private Key Object; EC")
    assert private["ID"] == record.key_id.hex() and len(bytes.fromhex(private["ID"])) == 8
    assert private["Usage"] == "sign"  # no decrypt, unwrap, derive
    access = {a.strip() for a in private["Access"].split(",")}
    assert {"sensitive", "always sensitive", "never extractable", "local"} <= access
    assert "extractable" not in access
    [public] = _p11_objects(hsm, "pubkey", "lc-generated")
    assert public["EC_PARAMS"] == P256_PARAMS and "256 bits" in public["header"]
    assert public["ID"] == private["ID"]
    public_key = _p11_public_key(hsm, record.key_id, tmp_path)
    assert isinstance(public_key.curve, ec.SECP256R1)

    # the token, as the service reads it
    [protection] = [p for p in svc.token.protection() if p.label == "lc-generated"]
    assert (
        protection.extractable,
        protection.sensitive,
        protection.always_sensitive,
        protection.never_extractable,
    ) == (False, True, True, True)
    assert svc.token.find(label="lc-generated").public_key == public_key

    # the ledger: pending, for its purpose, with who made it and which public key it has
    stored = ledger.get(svc.db, _TOKEN, record.key_id)
    assert stored is not None
    assert (stored.label, stored.state, stored.purpose, stored.ski, stored.created_at) == (
        "lc-generated",
        KeyState.PENDING,
        KeyPurpose.SUPPLIER_DS,
        None,
        NOW,
    )
    [op] = _operations(svc, "lc-generated", "generate")
    assert (op.actor, op.outcome, op.key_id, op.at) == (ACTOR, "ok", record.key_id, NOW)
    assert op.detail["purpose"] == "supplier-ds"
    assert op.detail["public_key_sha256"] == hashlib.sha256(_spki(public_key)).hexdigest()


def test_generate_refuses_a_label_already_on_the_token_and_records_why(svc: Services) -> None:
    lifecycle.generate(svc, "lc-twice", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    with pytest.raises(InvalidInput, match="already exists") as err:
        lifecycle.generate(svc, "lc-twice", KeyPurpose.XML_SIGN, actor=ACTOR)
    _refusal_recorded(svc, "lc-twice", "generate", err.value)
    assert [k.label for k in svc.token.keys(refresh=True)].count("lc-twice") == 1


# -- 2. a pending key never signs ----------------------------------------------------------


def test_a_pending_key_with_a_certificate_never_signs(
    svc: Services, ca: TestCa, manufacturer: Manufacturer
) -> None:
    lifecycle.generate(svc, "lc-pending", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    cert = _certify(svc, ca, "lc-pending")  # certified, but nobody activated it
    assert _state(svc, "lc-pending") is KeyState.PENDING
    _register(svc, "00-DB-1C-00-00-00-02-01", _ski(cert))
    image_id = _verified_image(svc, manufacturer, b"pending key " * 40)

    with pytest.raises(DevicesRefused) as err:
        resign(svc, image_id, ["00-DB-1C-00-00-00-02-01"], None)
    [(device, reason, detail)] = err.value.refusals
    assert (device, reason) == ("00-DB-1C-00-00-00-02-01", "key_not_active")
    assert "key 'lc-pending' is pending" in detail


# -- 3. the whole production path -------------------------------------------------------------


def test_csr_certificate_activation_and_signing_end_to_end(
    svc: Services, ca: TestCa, hsm: Hsm, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    record = lifecycle.generate(svc, "lc-full", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    csr = lifecycle.certificate_request(svc, "lc-full", SUPPLIER_EUI, actor=ACTOR, cn="lc-full")

    # OpenSSL verifies the CSR's self-signature (3.0 exits 0 on failure: read its words)
    csr_file = tmp_path / "request.pem"
    csr_file.write_bytes(csr.public_bytes(serialization.Encoding.PEM))
    checked = subprocess.run(
        ["openssl", "req", "-in", str(csr_file), "-verify", "-noout"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0 and "verify OK" in checked.stdout + checked.stderr, checked
    assert "failure" not in checked.stdout + checked.stderr
    # ... and it carries the key the token holds, in the SMKI Organisation subject form
    token_public = _p11_public_key(hsm, record.key_id, tmp_path)
    assert _spki(csr.public_key()) == _spki(token_public)  # type: ignore[arg-type]
    subject = csr.subject
    assert [a.value for a in subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)] == [
        "lc-full"
    ]
    assert [
        a.value for a in subject.get_attributes_for_oid(x509.NameOID.ORGANIZATIONAL_UNIT_NAME)
    ] == ["02"]
    assert [
        a.value for a in subject.get_attributes_for_oid(x509.NameOID.X500_UNIQUE_IDENTIFIER)
    ] == [b"\x00" + bytes.fromhex("90B3D51F30010000")]
    [csr_op] = _operations(svc, "lc-full", "csr")
    assert (csr_op.actor, csr_op.outcome) == (ACTOR, "ok")
    assert (
        csr_op.detail["csr_sha256"]
        == hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest()
    )

    cert = ca.issue(csr)
    lifecycle.install_certificate(svc, "lc-full", pem(cert), actor=ACTOR)
    assert _p11_read(hsm, "cert", record.key_id, tmp_path) == cert.public_bytes(
        serialization.Encoding.DER
    )
    assert _state(svc, "lc-full") is KeyState.PENDING  # installing is not activating

    active = lifecycle.activate(svc, "lc-full", actor=ACTOR)
    assert (active.state, active.ski, active.certificate_serial, active.activated_at) == (
        KeyState.ACTIVE,
        method2_ski(token_public),
        str(cert.serial_number),
        NOW,
    )
    [activate_op] = _operations(svc, "lc-full", "activate")
    assert (activate_op.actor, activate_op.outcome) == (ACTOR, "ok")

    _register(svc, "00-DB-1C-00-00-00-03-01", method2_ski(token_public))
    image = b"end to end " * 40
    result = resign(
        svc, _verified_image(svc, manufacturer, image), ["00-DB-1C-00-00-00-03-01"], None
    )
    assert result.refused == ()
    assert _signed_by(result, cert, image) == ["00-DB-1C-00-00-00-03-01"]


# -- 4. install_certificate refusals ------------------------------------------------------------

ROGUE_CA = TestCa(cn="ROGUECA")
SAME_NAME_OTHER_KEY_CA = TestCa(cn="LCCA")
OTHER_KEY = ec.generate_private_key(ec.SECP256R1()).public_key()
EXPIRED_AT = NOW - dt.timedelta(days=1)

IssueBad = Callable[[TestCa, ec.EllipticCurvePublicKey], x509.Certificate]
BAD_CERTIFICATES: dict[str, tuple[IssueBad, str]] = {
    "another key": (
        lambda ca, key: ca.issue(OTHER_KEY),
        "the certificate's public key (SHA-256 {other_sha256}…) is not key 'lc-install''s "
        "(SHA-256 {key_sha256}…)",
    ),
    "role 03": (lambda ca, key: ca.issue(key, role=0x03), "role OU is 03, needs 02 (Supplier)"),
    # the SMKI rule: a device's cell names the key by an SKI derived from it (method 2)
    "SKI not of its key": (
        lambda ca, key: ca.issue(key, ski=method2_ski(OTHER_KEY)),
        "subjectKeyIdentifier {other_ski} is not the RFC 5280 method-2 identifier of the "
        "certificate's own key ({key_ski})",
    ),
    "keyAgreement": (
        lambda ca, key: ca.issue(key, key_agreement=True),
        "keyUsage is keyAgreement, needs digitalSignature only",
    ),
    "another EUI": (
        lambda ca, key: ca.issue(key, eui_hex="90B3D51F30019999"),
        "certificate EUI is 90-B3-D5-1F-30-01-99-99, expected 90-B3-D5-1F-30-01-00-00",
    ),
    "no SMKI policy": (
        lambda ca, key: ca.issue(key, policy=False),
        "certificate has no certificatePolicies extension",
    ),
    "expired": (
        lambda ca, key: ca.issue(key, not_after=EXPIRED_AT),
        f"certificate expired on {EXPIRED_AT:%Y-%m-%dT%H:%M:%SZ} (now {NOW:%Y-%m-%dT%H:%M:%SZ})",
    ),
    "unconfigured CA": (
        lambda ca, key: ROGUE_CA.issue(key),
        "issuer CN=ROGUECA,OU=07 is not one of the configured SMKI issuing CAs",
    ),
    "CA name forged": (
        lambda ca, key: SAME_NAME_OTHER_KEY_CA.issue(key),
        "certificate signature does not verify with any configured CA named CN=LCCA,OU=07",
    ),
}


@pytest.fixture(scope="module")
def certified_pending(svc: Services, ca: TestCa) -> x509.Certificate:
    """lc-install: pending, with a good certificate that every refusal must leave in place."""
    lifecycle.generate(svc, "lc-install", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    return _certify(svc, ca, "lc-install")


@pytest.mark.parametrize("case", sorted(BAD_CERTIFICATES))
def test_install_certificate_refuses_and_says_why(
    svc: Services,
    ca: TestCa,
    hsm: Hsm,
    certified_pending: x509.Certificate,
    tmp_path: Path,
    case: str,
) -> None:
    key = svc.token.find(label="lc-install")
    issue, expected = BAD_CERTIFICATES[case]
    expected = expected.format(  # SPKI fingerprints as the message abbreviates them
        key_sha256=hashlib.sha256(_spki(key.public_key)).hexdigest()[:16],
        other_sha256=hashlib.sha256(_spki(OTHER_KEY)).hexdigest()[:16],
        key_ski=method2_ski(key.public_key).hex(),
        other_ski=method2_ski(OTHER_KEY).hex(),
    )
    good_der = certified_pending.public_bytes(serialization.Encoding.DER)
    assert _p11_read(hsm, "cert", key.key_id, tmp_path) == good_der

    bad = issue(ca, key.public_key)
    with pytest.raises(CertificateRejected) as err:
        lifecycle.install_certificate(svc, "lc-install", pem(bad), actor=ACTOR)
    assert expected in str(err.value)
    _refusal_recorded(svc, "lc-install", "install-cert", err.value)
    # the record names the refused certificate, not only the reason
    recorded = _operations(svc, "lc-install", "install-cert")[-1].detail
    assert (recorded["serial"], recorded["certificate_sha256"]) == (
        str(bad.serial_number),
        hashlib.sha256(bad.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
    assert _p11_read(hsm, "cert", key.key_id, tmp_path) == good_der  # nothing stored
    assert _state(svc, "lc-install") is KeyState.PENDING


# -- 5. activation and retirement ---------------------------------------------------------------


def test_activate_refuses_a_certificate_whose_ski_is_not_its_keys(
    svc: Services, ca: TestCa
) -> None:
    """A certificate put on the token by another tool is checked at activation too."""
    lifecycle.generate(svc, "lc-bad-ski", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    key = svc.token.find(label="lc-bad-ski")
    svc.token.store_certificate(key, ca.issue(key.public_key, ski=method2_ski(OTHER_KEY)))
    with pytest.raises(CertificateRejected, match="not the RFC 5280 method-2 identifier") as err:
        lifecycle.activate(svc, "lc-bad-ski", actor=ACTOR)
    _refusal_recorded(svc, "lc-bad-ski", "activate", err.value)
    assert _state(svc, "lc-bad-ski") is KeyState.PENDING


def test_import_refuses_a_certificate_whose_ski_is_not_its_keys(svc: Services, ca: TestCa) -> None:
    """Its SKI would become the key's CKA_ID: the token would file the key under another's."""
    private = ec.generate_private_key(ec.SECP256R1())
    key_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    bad = ca.issue(private.public_key(), ski=method2_ski(OTHER_KEY))
    with pytest.raises(CertificateRejected, match="not the RFC 5280 method-2 identifier"):
        lifecycle.import_existing(svc, "lc-import-bad-ski", key_pem, pem(bad), actor=ACTOR)
    assert [k for k in svc.token.keys(refresh=True) if k.label == "lc-import-bad-ski"] == []
    good = ca.issue(private.public_key())
    record = lifecycle.import_existing(svc, "lc-import-bad-ski", key_pem, pem(good), actor=ACTOR)
    assert record.key_id == method2_ski(private.public_key())


def test_activate_refuses_a_key_without_a_certificate(svc: Services) -> None:
    lifecycle.generate(svc, "lc-no-cert", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    with pytest.raises(PolicyRefused, match="'lc-no-cert' has no certificate; install one") as err:
        lifecycle.activate(svc, "lc-no-cert", actor=ACTOR)
    _refusal_recorded(svc, "lc-no-cert", "activate", err.value)
    assert _state(svc, "lc-no-cert") is KeyState.PENDING


def test_retire_waits_for_the_devices_then_stops_the_key_for_good(
    svc: Services, ca: TestCa, hsm: Hsm, manufacturer: Manufacturer
) -> None:
    old = _active_key(svc, ca, "lc-retire-old")
    new = _active_key(svc, ca, "lc-retire-new")
    trusting = ["00-DB-1C-00-00-00-05-02", "00-DB-1C-00-00-00-05-01"]
    for eui in trusting:
        _register(svc, eui, _ski(old))

    with pytest.raises(lifecycle.KeysStillTrusted) as still:
        lifecycle.retire(svc, "lc-retire-old", actor=ACTOR)
    assert [str(d) for d in still.value.devices] == sorted(trusting)
    assert all(eui in str(still.value) for eui in trusting)
    _refusal_recorded(svc, "lc-retire-old", "retire", still.value)

    with pytest.raises(InvalidInput) as no_reason:
        lifecycle.retire(svc, "lc-retire-old", actor=ACTOR, force=True, reason="  ")
    assert no_reason.value.field == "reason"
    assert "a forced retirement needs a reason" in str(no_reason.value)
    _refusal_recorded(svc, "lc-retire-old", "retire", no_reason.value)
    assert _state(svc, "lc-retire-old") is KeyState.ACTIVE
    assert svc.token.find(label="lc-retire-old").can_sign

    for eui in trusting:  # SR 6.15.1 done: their cells now name the new key
        _register(svc, eui, _ski(new))
    retired = lifecycle.retire(svc, "lc-retire-old", actor=ACTOR)
    assert (retired.state, retired.retired_at) == (KeyState.RETIRED, NOW)
    assert _state(svc, "lc-retire-old") is KeyState.RETIRED
    assert [(r.outcome, r.actor) for r in _operations(svc, "lc-retire-old", "disable-signing")] == [
        ("ok", ACTOR)
    ]
    # the second barrier: CKA_SIGN cleared on the token, as the service and OpenSC see it
    assert svc.token.find(label="lc-retire-old").can_sign is False
    assert _p11_private_key(hsm, "lc-retire-old")["Usage"] == "none"

    # a device that still names the retired key is refused; the others get the new key
    _register(svc, "00-DB-1C-00-00-00-05-03", _ski(old))
    image = b"after retirement " * 40
    result = resign(
        svc, _verified_image(svc, manufacturer, image), [*trusting, "00-DB-1C-00-00-00-05-03"], None
    )
    assert [(str(r.device), r.reason) for r in result.refused] == [
        ("00-DB-1C-00-00-00-05-03", "key_not_active")
    ]
    assert "'lc-retire-old'" in result.refused[0].detail
    assert _signed_by(result, new, image) == trusting

    # retirement is final
    with pytest.raises(PolicyRefused, match="'lc-retire-old' is retired") as again:
        lifecycle.activate(svc, "lc-retire-old", actor=ACTOR)
    _refusal_recorded(svc, "lc-retire-old", "activate", again.value)
    assert _state(svc, "lc-retire-old") is KeyState.RETIRED


def test_the_token_itself_refuses_a_retired_key(svc: Services) -> None:
    lifecycle.generate(svc, "lc-token-refuses", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    lifecycle.retire(svc, "lc-token-refuses", actor=ACTOR)
    key = svc.token.find(label="lc-token-refuses")
    assert key.can_sign is False
    with pytest.raises(PolicyRefused, match="CKA_SIGN is false"):
        svc.token.sign_digest(key, b"\0" * 32)


# -- 6. rotation: two active keys at once --------------------------------------------------------


def test_rotation_signs_each_device_group_with_the_key_its_cell_names(
    svc: Services, ca: TestCa, manufacturer: Manufacturer
) -> None:
    old = _active_key(svc, ca, "lc-rotate-old")
    new = _active_key(svc, ca, "lc-rotate-new")
    on_old = ["00-DB-1C-00-00-00-06-01", "00-DB-1C-00-00-00-06-03"]
    on_new = ["00-DB-1C-00-00-00-06-02"]
    for eui in on_old:
        _register(svc, eui, _ski(old))
    for eui in on_new:
        _register(svc, eui, _ski(new))

    image = b"rotation " * 40
    result = resign(svc, _verified_image(svc, manufacturer, image), [*on_old, *on_new], None)
    assert len(result.images) == 2 and result.refused == ()
    assert _signed_by(result, old, image) == on_old
    assert _signed_by(result, new, image) == on_new

    report = rotation_report(svc, "lc-rotate-old", "lc-rotate-new")
    assert [str(d) for d in report.still_on_old] == on_old
    assert report.on_new == 1
    assert (report.old.ski, report.new.ski) == (_ski(old), _ski(new))


# -- 7. keys named by PKCS#11 URI -----------------------------------------------------------------


def test_a_pkcs11_uri_names_the_key_for_csr_and_activate(
    svc: Services, ca: TestCa, hsm: Hsm, tmp_path: Path
) -> None:
    uri = f"pkcs11:token={_TOKEN};object=lc-uri"
    record = lifecycle.generate(svc, "lc-uri", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    csr = lifecycle.certificate_request(svc, uri, SUPPLIER_EUI, actor=ACTOR)
    assert _spki(csr.public_key()) == _spki(  # type: ignore[arg-type]
        _p11_public_key(hsm, record.key_id, tmp_path)
    )
    cert = ca.issue(csr)
    lifecycle.install_certificate(svc, uri, pem(cert), actor=ACTOR)
    active = lifecycle.activate(svc, uri, actor=ACTOR)
    assert (active.label, active.key_id, active.state, active.ski) == (
        "lc-uri",
        record.key_id,
        KeyState.ACTIVE,
        _ski(cert),
    )
    assert [r.key_label for r in ledger.operations(svc.db) if r.key_id == record.key_id] == [
        "lc-uri"
    ] * 4  # generate, csr, install-cert, activate: recorded under its label


@pytest.mark.parametrize("operation", ["activate", "csr", "retire"])
def test_a_uri_naming_another_token_is_refused_naming_the_field(
    svc: Services, operation: str
) -> None:
    lifecycle.generate(svc, f"lc-other-token-{operation}", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    uri = f"pkcs11:token=other-hsm;object=lc-other-token-{operation}"
    calls: dict[str, Callable[[], object]] = {
        "activate": lambda: lifecycle.activate(svc, uri, actor=ACTOR),
        "csr": lambda: lifecycle.certificate_request(svc, uri, SUPPLIER_EUI, actor=ACTOR),
        "retire": lambda: lifecycle.retire(svc, uri, actor=ACTOR),
    }
    with pytest.raises(InvalidInput) as err:
        calls[operation]()
    assert err.value.field == "label"
    assert "names token 'other-hsm'" in str(err.value)
    assert f"uses token '{_TOKEN}'" in str(err.value)
    assert _state(svc, f"lc-other-token-{operation}") is KeyState.PENDING


@pytest.mark.parametrize(
    "uri",
    [
        "pkcs11:token=signer-test;object=lc-generated;pin-value=Secret-7351",
        "pkcs11:token=signer-test;object=lc-generated?pin-value=Secret-7351",
    ],
)
def test_a_pin_in_a_uri_is_refused_and_never_repeated(svc: Services, uri: str) -> None:
    before = ledger.operations(svc.db)
    for call in (
        lambda: lifecycle.activate(svc, uri, actor=ACTOR),
        lambda: lifecycle.certificate_request(svc, uri, SUPPLIER_EUI, actor=ACTOR),
    ):
        with pytest.raises(InvalidInput) as err:
            call()
        assert err.value.field == "label"
        assert "'pin-value'" in str(err.value) and "Secret-7351" not in str(err.value)
        assert "pin_file or pin_env" in str(err.value)
    after = ledger.operations(svc.db)
    assert "Secret-7351" not in json.dumps([(r.key_label, r.detail) for r in after])
    assert len(after) == len(before)  # nothing to record against: no key was named


# -- 8. what the key list shows ------------------------------------------------------------------


def test_list_keys_shows_states_devices_and_unregistered_keys(svc: Services, ca: TestCa) -> None:
    lifecycle.generate(svc, "lc-list-pending", KeyPurpose.SUPPLIER_DS, actor=ACTOR)
    active = _active_key(svc, ca, "lc-list-active")
    retired = _active_key(svc, ca, "lc-list-retired")
    lifecycle.generate(svc, "lc-list-xml", KeyPurpose.XML_SIGN, actor=ACTOR)
    svc.token.generate_key("lc-list-unregistered")  # made by another tool: no ledger entry
    for eui in ("00-DB-1C-00-00-00-08-01", "00-DB-1C-00-00-00-08-02"):
        _register(svc, eui, _ski(active))
    _register(svc, "00-DB-1C-00-00-00-08-03", _ski(retired))
    lifecycle.retire(svc, "lc-list-retired", actor=ACTOR, force=True, reason="key compromise drill")

    views = {v.label: v for v in list_keys(svc) if v.label.startswith("lc-list-")}
    shown = {
        label: (v.state, v.purpose, v.devices, v.can_sign, v.on_token, v.ski)
        for label, v in views.items()
    }
    assert shown == {
        "lc-list-pending": ("pending", "supplier-ds", 0, True, True, None),
        "lc-list-active": ("active", "supplier-ds", 2, True, True, _ski(active)),
        "lc-list-retired": ("retired", "supplier-ds", 1, False, True, _ski(retired)),
        "lc-list-xml": ("pending", "xml-sign", 0, True, True, None),
        "lc-list-unregistered": (UNREGISTERED, "", 0, True, True, None),
    }
    assert views["lc-list-active"].serial == active.serial_number
    assert views["lc-list-active"].issuer == "CN=LCCA,OU=07"
    assert str(views["lc-list-active"].eui) == SUPPLIER_EUI


# -- protection: a key that can do more than sign is never activated ---------------------------


def test_activate_refuses_a_key_made_outside_the_service_with_extra_usages(
    svc: Services, ca: TestCa, hsm: Hsm
) -> None:
    made = _p11(
        hsm,
        "--keypairgen",
        "--key-type",
        "EC:prime256v1",
        "--label",
        "lc-derive",
        "--id",
        "0a0b0c0d0e0f0102",
        "--usage-sign",
        "--usage-derive",
        login=True,
    )
    assert made.returncode == 0, made.stderr
    assert "derive" in _p11_private_key(hsm, "lc-derive")["Usage"]
    time.sleep(RESCAN_INTERVAL + 0.1)  # let the token view rescan: another process made it
    key = svc.token.find(label="lc-derive")
    svc.token.store_certificate(key, ca.issue(key.public_key, cn="lc-derive"))
    with pytest.raises(PolicyRefused, match=r"cannot be trusted to sign: it also allows .*derive"):
        lifecycle.activate(svc, "lc-derive", actor=ACTOR, purpose=KeyPurpose.SUPPLIER_DS)
    assert ledger.get(svc.db, svc.token.token_label, key.key_id) is None
