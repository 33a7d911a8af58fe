"""A withheld artifact's signatures read ``failed`` in the audit trail, naming the failed
check, committed with the batch (the HSM signed, nobody got them); the issued ones read
``ok``; the chain still verifies, and a resume reports the withheld devices as before
without signing them again."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

import signer.preflight
from signer.gbcs.eui import Eui64
from signer.registry import audit
from signer.registry import devices as device_registry
from signer.registry.auditchain import AuditRecord
from signer.service.audit import verify_chain
from signer.service.campaigns import (
    CampaignSpec,
    Issued,
    PlanView,
    Product,
    ResultItem,
    Withheld,
    apply,
    apply_campaign,
    approve_campaign,
    campaign_devices,
    get_campaign,
    plan_campaign,
)
from tests.support.campaigns import REQUESTER, World, add_fleet

SIGNATURES = ("resign", "duis-sign", "activation-sign")


def approved(world: World, devices: list[str], product: Product) -> PlanView:
    spec = CampaignSpec(world.image_id, product, firmware_version="00000200")
    plan = plan_campaign(world.svc, spec, [devices], REQUESTER)
    return approve_campaign(world.svc, plan.plan_id, "CN=ann")


def run(world: World, plan: PlanView) -> list[ResultItem]:
    return [i for batch in apply_campaign(world.svc, plan.plan_id, "CN=operator") for i in batch]


def signature_records(world: World) -> list[AuditRecord]:
    return [r for r in audit.records(world.db) if r.operation in SIGNATURES]


def assert_chain_intact(world: World) -> None:
    report = verify_chain(world.db)
    assert report.intact, report.finding


def impostor_for(world: World, forged: list[bytes]) -> Callable[..., list[bytes]]:
    """The token's ``sign_digests``, answering the XML-signing key's last digest of each
    batch with another key's signature (recorded in ``forged``)."""
    real = world.svc.token.sign_digests
    impostor = ec.generate_private_key(ec.SECP256R1())

    def sign_digests(key: Any, digests: list[bytes], **kw: Any) -> list[bytes]:
        out = real(key, digests, **kw)
        if key.label == "xml-sign" and len(digests) > 1:
            der = impostor.sign(digests[-1], ec.ECDSA(Prehashed(hashes.SHA256())))
            r, s = decode_dss_signature(der)
            out[-1] = r.to_bytes(32, "big") + s.to_bytes(32, "big")
            forged.append(digests[-1])
        return out

    return sign_digests


def test_withheld_activations_are_recorded_failed_with_their_check(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 4)
    refused_by_meter = devices[0]
    real = signer.preflight.check_activation

    def meter_refuses(document: bytes, **kw: Any) -> None:
        real(document, **kw)
        if kw["device_id"] == refused_by_meter:
            raise signer.preflight.PreflightFailed("originator_counter", "injected fault")

    monkeypatch.setattr(signer.preflight, "check_activation", meter_refuses)
    forged: list[bytes] = []
    monkeypatch.setattr(world.svc.token, "sign_digests", impostor_for(world, forged))
    plan = approved(world, devices, Product.ACTIVATION)
    items = run(world, plan)

    withheld = {i.device_ids[0]: i.check for i in items if isinstance(i, Withheld)}
    assert len(forged) == 1 and len(withheld) == 2
    assert withheld[refused_by_meter] == "originator_counter"
    assert set(withheld.values()) == {"originator_counter", "xml_signature"}
    issued = [i.device_ids[0] for i in items if isinstance(i, Issued)]
    assert sorted([*issued, *withheld]) == sorted(devices)

    rows = {r.device_id: r for b in campaign_devices(world.svc, plan.plan_id) for r in b}
    by_request = {r.duis_request_id: r for r in signature_records(world)}
    assert len(by_request) == len(devices)  # one record per device, none signed twice
    for d in devices:
        [rid] = rows[d].request_ids
        record = by_request[rid]
        details = json.loads(record.details)
        if d in withheld:
            assert (record.outcome, details["withheld"]) == ("failed", withheld[d])
            assert details["purpose"] == "xml-sign"  # the rest of the details stand
        else:
            assert record.outcome == "ok" and "withheld" not in details
    # the forged signature's record is the one withheld for its XML signature
    [forged_record] = [r for r in by_request.values() if r.digest == forged[0].hex()]
    assert json.loads(forged_record.details)["withheld"] == "xml_signature"
    assert_chain_intact(world)
    view = get_campaign(world.svc, plan.plan_id)
    assert (view.issued, view.withheld) == (2, 2)


def test_a_withheld_update_records_its_arp_and_request_signatures_failed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Supplier cell moved after the key was chosen: the update is withheld, and the
    # activations that would run it with it
    withheld_devices = add_fleet(world, 1, 2)
    issued_devices = add_fleet(world, 2, 1, second_key=True)
    real = device_registry.device_facts
    other = world.second.ski
    assert other is not None
    moved = {Eui64.parse(d) for d in withheld_devices}

    def facts(db: Any, euis: Any) -> dict[Eui64, device_registry.DeviceFacts]:
        got = real(db, euis)
        return {e: f._replace(supplier_ski=other) if e in moved else f for e, f in got.items()}

    plan = approved(world, [*withheld_devices, *issued_devices], Product.BOTH)
    monkeypatch.setattr(apply, "device_facts", facts)
    items = run(world, plan)
    assert {(i.kind, i.check) for i in items if isinstance(i, Withheld)} == {
        ("update", "arp_signature"),
        ("activation", "arp_signature"),
    }
    assert {d for i in items if isinstance(i, Issued) for d in i.device_ids} == set(issued_devices)
    records = signature_records(world)
    outcomes = sorted(
        (r.operation, r.outcome, json.loads(r.details).get("withheld"), r.device_count)
        for r in records
    )
    assert outcomes == sorted(
        [
            ("resign", "failed", "arp_signature", 2),
            ("duis-sign", "failed", "arp_signature", 2),
            ("activation-sign", "failed", "arp_signature", 1),
            ("activation-sign", "failed", "arp_signature", 1),
            ("resign", "ok", None, 1),
            ("duis-sign", "ok", None, 1),
            ("activation-sign", "ok", None, 1),
        ]
    )
    # the failed records are exactly the withheld devices' requests
    rows = {r.device_id: r for b in campaign_devices(world.svc, plan.plan_id) for r in b}
    failed_ids = {r.duis_request_id for r in records if r.outcome == "failed"} - {None}
    assert failed_ids == {rid for d in withheld_devices for rid in rows[d].request_ids}
    assert_chain_intact(world)


def test_a_resume_reports_withheld_devices_and_signs_nothing_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 2)
    devices = add_fleet(world, 1, 4)
    bad = devices[1]
    real = signer.preflight.check_activation

    def meter_refuses(document: bytes, **kw: Any) -> None:
        real(document, **kw)
        if kw["device_id"] == bad:
            raise signer.preflight.PreflightFailed("firmware_hash", "injected fault")

    monkeypatch.setattr(signer.preflight, "check_activation", meter_refuses)
    plan = approved(world, devices, Product.ACTIVATION)
    first = apply_campaign(world.svc, plan.plan_id, "CN=operator")
    got = next(first)  # the first batch, committed with its records; then the client goes
    first.close()
    assert [i for i in got if isinstance(i, Withheld)] == [
        Withheld("activation", (bad,), "firmware_hash", "injected fault")
    ]
    before = [(r.outcome, json.loads(r.details).get("withheld")) for r in signature_records(world)]
    assert sorted(before, key=str) == sorted([("ok", None), ("failed", "firmware_hash")], key=str)

    items = run(world, plan)  # the resume: reported as before, not signed again
    assert [i for i in items if isinstance(i, Withheld)] == [
        Withheld("activation", (bad,), "firmware_hash", "injected fault")
    ]
    records = signature_records(world)
    assert len(records) == 4
    assert [r.outcome for r in records].count("failed") == 1
    assert_chain_intact(world)
    view = get_campaign(world.svc, plan.plan_id)
    assert (view.state, view.issued, view.withheld) == ("applied", 3, 1)


def test_the_failed_records_stand_or_fall_with_the_batchs_outcomes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marked in the batch's one transaction: when it cannot commit, no device's outcome
    is written and every signature is recorded failed, the withheld one still naming its
    check."""
    from signer.errors import Unavailable
    from signer.registry import campaigns as store

    devices = add_fleet(world, 1, 2)
    bad = devices[0]
    real = signer.preflight.check_activation

    def meter_refuses(document: bytes, **kw: Any) -> None:
        real(document, **kw)
        if kw["device_id"] == bad:
            raise signer.preflight.PreflightFailed("originator_counter", "injected fault")

    def outcomes_fail(*_a: Any, **_kw: Any) -> None:
        raise Unavailable("the outcomes could not be written")

    monkeypatch.setattr(signer.preflight, "check_activation", meter_refuses)
    plan = approved(world, devices, Product.ACTIVATION)
    monkeypatch.setattr(store, "record_outcomes", outcomes_fail)
    with pytest.raises(Unavailable, match="outcomes could not be written"):
        run(world, plan)
    rows = {r.device_id: r for b in campaign_devices(world.svc, plan.plan_id) for r in b}
    assert {r.outcome for r in rows.values()} == {"pending"}
    withheld = [json.loads(r.details)["withheld"] for r in signature_records(world)]
    assert [r.outcome for r in signature_records(world)] == ["failed", "failed"]
    [other] = [w for w in withheld if w != "originator_counter"]
    assert withheld.count("originator_counter") == 1
    assert "the outcomes could not be written" in other  # the commit's own failure
    assert_chain_intact(world)
