"""Every signature and key operation lands in the audit trail, attributed; none without it.

The records are read with sqlite3 or psycopg and re-hashed by ``tests.audit_rows``; each
recorded digest is recomputed from the returned artefact and the artefact's signature is verified
over it with `cryptography`; SKI and serial come from the certificate files.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    Prehashed,
    decode_dss_signature,
    encode_dss_signature,
)
from lxml import etree
from prometheus_client import REGISTRY

from signer.caller import Caller, bound
from signer.clock import fixed_clock
from signer.errors import (
    CertificateRejected,
    HsmUnavailable,
    NotFound,
    PolicyRefused,
    Unavailable,
)
from signer.gbcs import delivery as deliveries
from signer.gbcs.eui import Eui64
from signer.registry import activations, counters
from signer.service import signing
from signer.service.activation import (
    ActivationSpec,
    build_activations,
    stream_activations,
)
from signer.service.audit import verify_chain
from signer.service.duis import build_duis
from signer.service.keys import lifecycle as keys
from signer.service.precommands import sign_pre_command_for
from signer.service.resign import resign
from signer.service.services import Services
from signer.service.verify import verify_manufacturer
from signer.smki.lifecycle import KeyPurpose
from tests.support.audit_rows import allow_inserts, assert_chain, fail_inserts, head, query, rows
from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.database import new_database
from tests.support.hsm import Hsm
from tests.support.independent import (
    cs06_pre_command,
    duis_fields,
    firmware_image_of,
    ota_header,
    split_upgrade_image,
)
from tests.support.ledger import services_for
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare

DS = "{http://www.w3.org/2000/09/xmldsig#}"
BACKOFFICE = Caller(
    identity="CN=backoffice,O=Supplier", request_id="req-audit-0001", method="Resign"
)
IMAGE = b"audit trail test firmware " * 30


@dataclass
class Env:
    svc: Services
    path: str  # the database URL (tests.audit_rows reads it independently)
    image_id: str
    z1: x509.Certificate
    xml: x509.Certificate


@pytest.fixture(scope="module")
def env(
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    """Services whose audit trail is on SQLite, then on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("audit")
    config, db, db_url = prepare(
        hsm, vectors, manufacturer, tmp, db_url=new_database(request, backend, tmp)
    )
    svc = services_for(hsm.token(), db, config)
    header = ota_header(len(IMAGE))
    verdict = verify_manufacturer(
        svc,
        deliveries.from_separate(
            ota_header=header,
            manufacturer_image=IMAGE,
            signature=manufacturer.sign(header + IMAGE),
            hash=hashlib.sha256(IMAGE).digest(),
        ),
    )
    assert verdict.verified, verdict.checks

    def cert(name: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((vectors / "certs" / f"{name}.pem").read_bytes())

    yield Env(
        svc, db_url, verdict.image_id, cert("Z1-supplier-ds"), cert("xml-sign-90B3D51F30010000-ds")
    )
    db.dispose()


def ski(cert: x509.Certificate) -> str:
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest.hex()


def signed_over(cert: x509.Certificate, digest_hex: str, raw: bytes) -> bool:
    """The raw r||s signature verifies over exactly this digest with the certificate."""
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    try:
        key.verify(der, bytes.fromhex(digest_hex), ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def xml_signature(document: bytes) -> tuple[str, bytes]:
    """SHA-256 of the exclusive C14N of SignedInfo, and the raw SignatureValue."""
    root = etree.fromstring(document, etree.XMLParser(huge_tree=True, resolve_entities=False))
    signed_info = root.find(f".//{DS}SignedInfo")
    value = root.find(f".//{DS}SignatureValue")
    assert signed_info is not None and value is not None and value.text
    c14n = etree.tostring(signed_info, method="c14n", exclusive=True, with_comments=False)
    return hashlib.sha256(c14n).hexdigest(), base64.b64decode(value.text)


def signatures(key: str, purpose: str) -> float:
    return (
        REGISTRY.get_sample_value("signer_signatures_total", {"key": key, "purpose": purpose})
        or 0.0
    )


def assert_attributed(r: dict[str, Any], caller: Caller, cert: x509.Certificate) -> None:
    assert (r["client"], r["call_id"], r["method"]) == (
        caller.identity,
        caller.request_id,
        caller.method,
    )
    assert r["key_ski"] == ski(cert)
    assert r["certificate_serial"] == str(cert.serial_number)
    assert r["outcome"] == "ok"


def test_resign_records_its_signature_with_who_what_and_which_key(env: Env) -> None:
    start, _ = head(env.path)
    counted = signatures("z1-supplier-ds", "supplier-ds")
    with bound(BACKOFFICE):
        result = resign(env.svc, env.image_id, [RTDS_DEVICE], None)
    [r] = rows(env.path, after=start)
    _, image, _, signature = split_upgrade_image(result.images[0].upgrade_image)
    assert r["digest"] == hashlib.sha256(image).hexdigest()
    assert signed_over(env.z1, r["digest"], signature)
    assert_attributed(r, BACKOFFICE, env.z1)
    assert (
        r["operation"],
        r["key_label"],
        r["image_id"],
        r["device_count"],
        r["duis_request_id"],
    ) == ("resign", "z1-supplier-ds", env.image_id, 1, None)
    assert json.loads(r["details"])["purpose"] == "supplier-ds"
    assert signatures("z1-supplier-ds", "supplier-ds") == counted + 1
    assert_chain(env.path)


def test_build_duis_records_the_arp_and_the_xml_signature(env: Env) -> None:
    caller = Caller("CN=duis-client", "req-duis-7", "BuildDUIS")
    start, _ = head(env.path)
    with bound(caller):
        result = build_duis(
            env.svc,
            image_id=env.image_id,
            upgrade_image=None,
            device_ids=[RTDS_DEVICE],
            firmware_version="01020304",
            service="11.1",
        )
    arp, xml = rows(env.path, after=start)
    _, image, _, arp_signature = split_upgrade_image(firmware_image_of(result.document))
    assert (arp["operation"], arp["digest"]) == ("resign", hashlib.sha256(image).hexdigest())
    assert signed_over(env.z1, arp["digest"], arp_signature)
    assert_attributed(arp, caller, env.z1)
    digest, xml_sig = xml_signature(result.document)
    assert (xml["operation"], xml["digest"]) == ("duis-sign", digest)
    assert signed_over(env.xml, xml["digest"], xml_sig)
    assert_attributed(xml, caller, env.xml)
    assert xml["duis_request_id"] == duis_fields(result.document)["RequestID"]
    assert (xml["key_label"], xml["image_id"], xml["device_count"]) == ("xml-sign", env.image_id, 1)
    assert xml["duis_request_id"] is not None and arp["duis_request_id"] is None


def test_activation_and_its_pre_command_record_each_signature(env: Env) -> None:
    caller = Caller("CN=campaigns", "req-act-1", "StreamActivation")
    start, _ = head(env.path)
    with bound(caller):
        built, refused = build_activations(env.svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    assert not refused
    [act] = rows(env.path, after=start)
    digest, sig = xml_signature(built[0].document)
    request_id = duis_fields(built[0].document)["RequestID"]
    assert (act["operation"], act["digest"], act["duis_request_id"]) == (
        "activation-sign",
        digest,
        request_id,
    )
    assert signed_over(env.xml, digest, sig)
    assert_attributed(act, caller, env.xml)
    assert (act["image_id"], act["device_count"]) == (env.image_id, 1)

    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=built[0].request_id.counter,
        firmware_hash=bytes.fromhex(env.image_id),
    )
    dcc = Caller("CN=dcc-adapter", "req-pre-1", "SignPreCommand")
    start, _ = head(env.path)
    with bound(dcc):
        signed = sign_pre_command_for(env.svc, pre_command=pre, accept_unauthenticated=True)
    cs06, wrapper = rows(env.path, after=start)
    assert (cs06["operation"], cs06["digest"]) == (
        "precommand-sign",
        hashlib.sha256(pre[1:]).hexdigest(),
    )
    assert signed.signed_command[:-65] == pre
    assert signed_over(env.z1, cs06["digest"], signed.signed_command[-64:])
    assert_attributed(cs06, dcc, env.z1)
    digest, sig = xml_signature(signed.document)
    assert (wrapper["operation"], wrapper["digest"]) == ("precommand-duis-sign", digest)
    assert signed_over(env.xml, digest, sig)
    assert_attributed(wrapper, dcc, env.xml)
    for r in (cs06, wrapper):
        assert (r["duis_request_id"], r["image_id"], r["device_count"]) == (
            request_id,
            env.image_id,
            1,
        )
        # raw GBCS, taken only with the flag: the records say the DCC did not vouch for it
        assert json.loads(r["details"])["dcc_authenticated"] is False
    assert_chain(env.path)


def test_key_operations_are_in_the_chain_refusals_included(env: Env, vectors: Path) -> None:
    svc, actor = env.svc, "cli:alice@security"
    label = f"audit-{uuid.uuid4().hex[:8]}"
    caller = Caller(actor, "req-keys-1", "signer keys")
    start, _ = head(env.path)
    try:
        with bound(caller):
            generated = keys.generate(svc, label, KeyPurpose.SUPPLIER_DS, actor=actor)
            with pytest.raises(CertificateRejected):  # another key's certificate
                keys.install_certificate(
                    svc, label, (vectors / "certs/Z1-supplier-ds.pem").read_bytes(), actor=actor
                )
            with pytest.raises(PolicyRefused, match="no certificate"):
                keys.activate(svc, label, actor=actor)
            keys.retire(svc, label, actor=actor)
    finally:
        svc.token.destroy_key(svc.token.find(label=label))
    new = rows(env.path, after=start)
    assert [(r["operation"], r["outcome"]) for r in new] == [
        ("key-generate", "ok"),
        ("key-install-cert", "refused"),
        ("key-activate", "refused"),
        ("key-retire", "ok"),
        ("key-disable-signing", "ok"),
    ]
    for r in new:
        assert (r["client"], r["call_id"], r["key_label"]) == (actor, "req-keys-1", label)
        assert json.loads(r["details"])["cka_id"] == generated.key_id.hex()
    assert "public key" in json.loads(new[1]["details"])["reason"]
    assert new[1]["key_ski"] == ski(env.z1)  # the certificate that was offered
    # every key operation record has its audit record, in the same order
    operations = query(
        env.path, "SELECT actor, operation, key_label, outcome FROM key_operations ORDER BY id"
    )
    audited = [
        (r["client"], r["operation"], r["key_label"], r["outcome"])
        for r in rows(env.path)
        if r["operation"].startswith("key-")
    ]
    assert audited == [(a, f"key-{o}", k, out) for a, o, k, out in operations]
    assert any(op == "key-activate" for _, op, _, _ in audited[:4])  # the fixture's activations
    assert_chain(env.path)


def test_a_signature_the_token_refuses_is_recorded_as_refused(env: Env) -> None:
    svc = env.svc
    key = svc.token.generate_key(f"audit-off-{uuid.uuid4().hex[:8]}")
    digest = hashlib.sha256(b"never signed").digest()
    start, _ = head(env.path)
    try:
        svc.token.disable_signing(key)
        with bound(BACKOFFICE), pytest.raises(PolicyRefused, match="CKA_SIGN"):
            with signing.batch(svc) as signer:
                signer.sign(
                    key,
                    digest,
                    purpose=KeyPurpose.SUPPLIER_DS,
                    operation=signing.RESIGN,
                    image_id=env.image_id,
                    device_count=1,
                )
    finally:
        svc.token.destroy_key(key)
    [r] = rows(env.path, after=start)
    assert (r["outcome"], r["digest"], r["key_label"], r["client"]) == (
        "refused",
        digest.hex(),
        key.label,
        BACKOFFICE.identity,
    )
    assert "CKA_SIGN" in json.loads(r["details"])["reason"]


def test_a_batch_the_token_refuses_is_recorded_digest_by_digest(env: Env) -> None:
    svc = env.svc
    key = svc.token.generate_key(f"audit-off-{uuid.uuid4().hex[:8]}")
    digests = [hashlib.sha256(f"never signed {i}".encode()).digest() for i in range(3)]
    start, _ = head(env.path)
    try:
        svc.token.disable_signing(key)
        with bound(BACKOFFICE), pytest.raises(PolicyRefused, match="CKA_SIGN"):
            with signing.batch(svc) as signer:
                signer.sign_all(
                    key,
                    digests,
                    [None, None, None],
                    purpose=KeyPurpose.SUPPLIER_DS,
                    operation=signing.RESIGN,
                    image_id=env.image_id,
                    device_count=1,
                )
    finally:
        svc.token.destroy_key(key)
    records = rows(env.path, after=start)
    assert [(r["outcome"], r["digest"]) for r in records] == [("refused", d.hex()) for d in digests]
    assert_chain(env.path)


def test_a_token_key_unlike_its_certificate_releases_no_pre_command(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first CS06 signature of each key in a batch is checked with the key's
    certificate: a token answering with another key's signatures (standing in for a key
    object replaced under the same CKA_ID) gets the batch withheld, recorded as failed,
    and the claim given back, so the pre-command can be signed once the token is right."""
    svc = env.svc
    with bound(BACKOFFICE):
        built, _ = build_activations(svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=built[0].request_id.counter,
        firmware_hash=bytes.fromhex(env.image_id),
    )
    impostor = ec.generate_private_key(ec.SECP256R1())

    def impostor_signs(
        _key: object, digests: list[bytes], *, into: list[bytes], check: Any
    ) -> list[bytes]:
        for d in digests:  # one handle: the token adapter checks its first signature
            r, s_ = decode_dss_signature(impostor.sign(d, ec.ECDSA(Prehashed(hashes.SHA256()))))
            if not into:
                check(d, r.to_bytes(32, "big") + s_.to_bytes(32, "big"))
            into.append(r.to_bytes(32, "big") + s_.to_bytes(32, "big"))
        return into

    start, _ = head(env.path)
    with monkeypatch.context() as m:
        m.setattr(svc.token, "sign_digests", impostor_signs)
        with bound(BACKOFFICE), pytest.raises(HsmUnavailable, match="does not verify"):
            sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)
    [r] = rows(env.path, after=start)
    assert (r["operation"], r["outcome"]) == ("precommand-sign", "failed")
    with bound(BACKOFFICE):
        signed = sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)
    assert signed_over(env.z1, hashlib.sha256(pre[1:]).hexdigest(), signed.signed_command[-64:])


def test_a_batch_stopped_part_way_records_the_signed_ones_as_withheld(env: Env) -> None:
    """The token signed a first chunk, then the batch stopped: those signatures are recorded
    as failed (withheld, never returned), the digests never signed as failed with the
    reason."""
    from signer.hsm.token import SIGN_CHUNK

    key = env.svc.token.find(label="z1-supplier-ds")
    digests = [hashlib.sha256(f"part-way {i}".encode()).digest() for i in range(SIGN_CHUNK + 2)]

    def second_chunk_fails(d: bytes, _sig: bytes) -> None:
        if d == digests[SIGN_CHUNK]:
            raise HsmUnavailable("the token went away")

    start, _ = head(env.path)
    with bound(BACKOFFICE), pytest.raises(HsmUnavailable, match="went away"):
        with signing.batch(env.svc) as signer:
            signer.sign_all(
                key,
                digests,
                [None] * len(digests),
                purpose=KeyPurpose.SUPPLIER_DS,
                operation=signing.RESIGN,
                image_id=env.image_id,
                device_count=1,
                check=second_chunk_fails,
            )
    records = rows(env.path, after=start)
    assert [r["digest"] for r in records] == [d.hex() for d in digests]
    assert {r["outcome"] for r in records} == {"failed"}
    details = [json.loads(r["details"]) for r in records]
    assert all("went away" in d["withheld"] for d in details[:SIGN_CHUNK])
    assert all("went away" in d["reason"] and "withheld" not in d for d in details[SIGN_CHUNK:])
    assert_chain(env.path)


def test_signatures_of_a_call_that_failed_are_recorded_as_failed(env: Env) -> None:
    key = env.svc.token.find(label="z1-supplier-ds")
    start, _ = head(env.path)
    counted = signatures("z1-supplier-ds", "supplier-ds")
    with pytest.raises(RuntimeError, match="later step"):
        with signing.batch(env.svc) as signer:
            signer.sign(
                key,
                hashlib.sha256(IMAGE).digest(),
                purpose=KeyPurpose.SUPPLIER_DS,
                operation=signing.RESIGN,
                image_id=env.image_id,
                device_count=1,
            )
            raise RuntimeError("a later step of the call failed")
    [r] = rows(env.path, after=start)
    assert r["outcome"] == "failed"
    assert "later step" in json.loads(r["details"])["withheld"]
    assert signatures("z1-supplier-ds", "supplier-ds") == counted  # none was returned


def test_no_signature_leaves_without_its_record(env: Env) -> None:
    """Fail closed: with the audit table refusing inserts, every signing call (a key's CSR
    included) raises UNAVAILABLE and returns nothing; a pre-command's claim is released for
    a retry."""
    svc = env.svc
    with bound(BACKOFFICE):
        built, _ = build_activations(svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    counter = built[0].request_id.counter
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=counter,
        firmware_hash=bytes.fromhex(env.image_id),
    )
    before = head(env.path)
    counted = (signatures("z1-supplier-ds", "supplier-ds"), signatures("xml-sign", "xml-sign"))
    label = f"audit-down-{uuid.uuid4().hex[:8]}"
    fail_inserts(env.path, "audit_records", "audit_down", "audit store full")
    try:
        with bound(BACKOFFICE):
            with pytest.raises(Unavailable, match="audit trail unavailable"):
                resign(svc, env.image_id, [RTDS_DEVICE], None)
            with pytest.raises(Unavailable, match="audit trail unavailable"):
                build_duis(
                    svc,
                    image_id=env.image_id,
                    upgrade_image=None,
                    device_ids=[RTDS_DEVICE],
                    firmware_version="01020304",
                    service="11.1",
                )
            with pytest.raises(Unavailable, match="audit trail unavailable"):
                build_activations(svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
            with pytest.raises(Unavailable, match="audit trail unavailable"):
                sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)
            with pytest.raises(Unavailable, match="audit trail unavailable"):
                keys.generate(svc, label, KeyPurpose.SUPPLIER_DS, actor="cli:bob@host")
            with pytest.raises(Unavailable, match="audit trail unavailable"):  # no CSR back
                keys.certificate_request(svc, "z1-supplier-ds", SUPPLIER_EUI, actor="cli:bob@host")
    finally:
        allow_inserts(env.path, "audit_records", "audit_down")
    assert head(env.path) == before
    assert (
        signatures("z1-supplier-ds", "supplier-ds"),
        signatures("xml-sign", "xml-sign"),
    ) == counted
    issued = activations.get(svc.db, Eui64.parse(SUPPLIER_EUI), counter)
    assert issued is not None and issued.pre_command_signed_at is None
    with pytest.raises(NotFound):  # the generated key was undone with its record
        svc.token.find(label=label)
    with bound(BACKOFFICE):  # the audit trail is back: the same pre-command signs now
        signed = sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)
    assert signed.request_id.counter == counter
    assert_chain(env.path)
    report = verify_chain(svc.db)
    assert report.intact and report.head is not None and report.head.seq == head(env.path)[0]


def test_an_activation_whose_record_fails_is_never_issued(env: Env) -> None:
    """The 11.3 requests of a batch whose audit records cannot be written are not issued:
    no activation row remains, so a pre-command for one is refused as never issued."""
    svc, supplier = env.svc, Eui64.parse(SUPPLIER_EUI)
    [(stored,)] = query(env.path, "SELECT COUNT(*) FROM activations")
    fail_inserts(env.path, "audit_records", "audit_down", "audit store full")
    try:
        with bound(BACKOFFICE), pytest.raises(Unavailable, match="audit trail unavailable"):
            build_activations(svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
        with bound(BACKOFFICE), pytest.raises(Unavailable, match="audit trail unavailable"):
            next(stream_activations(svc, ActivationSpec(env.image_id), [[RTDS_DEVICE]]))
    finally:
        allow_inserts(env.path, "audit_records", "audit_down")
    assert query(env.path, "SELECT COUNT(*) FROM activations") == [(stored,)]
    reserved = counters.last_issued(svc.db, supplier)  # the counter the failed batch took
    assert reserved is not None and activations.get(svc.db, supplier, reserved) is None
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=reserved,
        firmware_hash=bytes.fromhex(env.image_id),
    )
    start, _ = head(env.path)
    with (
        bound(BACKOFFICE),
        pytest.raises(PolicyRefused, match=f"no SR 11.3 request with counter {reserved}"),
    ):
        sign_pre_command_for(svc, pre_command=pre, accept_unauthenticated=True)
    assert rows(env.path, after=start) == []  # nothing was signed


def test_issuance_and_its_records_stand_or_fall_together(env: Env) -> None:
    """The other way round: if the activation rows cannot be stored, the batch's audit
    records are not written either (one transaction), and nothing is returned."""
    start, _ = head(env.path)
    fail_inserts(env.path, "activations", "issue_down", "activations full")
    try:
        with bound(BACKOFFICE), pytest.raises(Unavailable):
            build_activations(env.svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    finally:
        allow_inserts(env.path, "activations", "issue_down")
    assert [r["outcome"] for r in rows(env.path, after=start)] == ["failed"]  # withheld


def test_a_caller_no_longer_waiting_gets_nothing_and_the_record_says_failed(env: Env) -> None:
    """A client that cancelled or whose deadline passed while the signature was made:
    the signature is recorded as withheld, never as ok, and no activation is issued."""
    gone = Caller(
        identity="CN=backoffice,O=Supplier",
        request_id="req-gone-0001",
        method="Resign",
        active=lambda: False,
    )
    start, _ = head(env.path)
    counted = signatures("z1-supplier-ds", "supplier-ds")
    with bound(gone), pytest.raises(Unavailable, match="before its signatures could be"):
        resign(env.svc, env.image_id, [RTDS_DEVICE], None)
    with bound(gone), pytest.raises(Unavailable, match="before its signatures could be"):
        build_activations(env.svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    records = rows(env.path, after=start)
    assert [(r["operation"], r["outcome"]) for r in records] == [
        ("resign", "failed"),
        ("activation-sign", "failed"),
    ]
    assert all("the call ended" in json.loads(r["details"])["withheld"] for r in records)
    assert all(r["call_id"] == "req-gone-0001" for r in records)
    assert signatures("z1-supplier-ds", "supplier-ds") == counted
    reserved = counters.last_issued(env.svc.db, Eui64.parse(SUPPLIER_EUI))
    assert reserved is not None
    assert activations.get(env.svc.db, Eui64.parse(SUPPLIER_EUI), reserved) is None
    assert_chain(env.path)


def test_a_failing_write_beside_the_records_withholds_the_signatures(env: Env) -> None:
    """Whatever fails at commit, a bug included, the signature is recorded as withheld."""
    key = env.svc.token.find(label="z1-supplier-ds")
    start, _ = head(env.path)

    def broken(_session: object) -> None:
        raise RuntimeError("a write beside the records failed")

    with pytest.raises(RuntimeError, match="beside the records"):
        with signing.batch(env.svc) as signer:
            signer.along(broken)
            signer.sign(
                key,
                hashlib.sha256(IMAGE).digest(),
                purpose=KeyPurpose.SUPPLIER_DS,
                operation=signing.RESIGN,
                image_id=env.image_id,
                device_count=1,
            )
    [r] = rows(env.path, after=start)
    assert r["outcome"] == "failed"
    assert "beside the records" in json.loads(r["details"])["withheld"]


def test_a_claim_whose_signer_died_expires_and_a_signed_one_never_does(env: Env) -> None:
    """A pre-command claimed by a signer that died (or could not release it) is refused
    while the lease runs, then signed; once signed and recorded, it is never signed again."""
    svc, supplier = env.svc, Eui64.parse(SUPPLIER_EUI)
    with bound(BACKOFFICE):
        built, _ = build_activations(svc, ActivationSpec(env.image_id), [RTDS_DEVICE])
    counter = built[0].request_id.counter
    t0 = svc.clock()
    assert activations.claim_pre_commands(svc.db, supplier, [counter], t0) == {counter}
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=counter,
        firmware_hash=bytes.fromhex(env.image_id),
    )

    def at(delta: dt.timedelta) -> Services:
        return dataclasses.replace(svc, clock=fixed_clock(t0 + delta))

    with bound(BACKOFFICE), pytest.raises(PolicyRefused, match="being signed by another"):
        sign_pre_command_for(
            at(activations.CLAIM_LEASE - dt.timedelta(seconds=1)),
            pre_command=pre,
            accept_unauthenticated=True,
        )
    start, _ = head(env.path)
    with bound(BACKOFFICE):
        signed = sign_pre_command_for(
            at(activations.CLAIM_LEASE), pre_command=pre, accept_unauthenticated=True
        )
    assert signed.request_id == built[0].request_id
    assert [r["operation"] for r in rows(env.path, after=start)] == [
        "precommand-sign",
        "precommand-duis-sign",
    ]
    issued = activations.get(svc.db, supplier, counter)
    assert issued is not None and issued.pre_command_signed_at == t0 + activations.CLAIM_LEASE
    with bound(BACKOFFICE), pytest.raises(PolicyRefused, match="was already signed"):
        sign_pre_command_for(
            at(3 * activations.CLAIM_LEASE), pre_command=pre, accept_unauthenticated=True
        )
