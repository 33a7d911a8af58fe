"""Apply: exactly the planned artifacts (checked by independent verifiers), nothing for a
plan whose registry drifted, every artifact through the pre-flight (a failed one withheld,
its SR 11.3 never answerable by a pre-command), resumable without signing anything twice;
and the direct calls refuse runs that need a campaign."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import signer.preflight
from signer.errors import CampaignRefused
from signer.gbcs import delivery as deliveries
from signer.gbcs.eui import Eui64
from signer.registry import activations
from signer.registry import devices as device_registry
from signer.registry import keys as ledger
from signer.registry.keys import Operation
from signer.service.activation import ActivationSpec, build_activations, stream_activations
from signer.service.campaigns import (
    AlreadyIssued,
    CampaignSpec,
    Issued,
    PlanView,
    Product,
    Refused,
    ResultItem,
    Withheld,
    apply,
    apply_campaign,
    approve_campaign,
    campaign_devices,
    get_campaign,
    plan_campaign,
)
from signer.service.cplops import import_cpl
from signer.service.duis import build_duis
from signer.service.keys.operations import audit_entry
from signer.service.precommand_signing import SignedPreCommand
from signer.service.precommands import (
    PRE_COMMAND_WITHHELD,
    PreCommandRefusal,
    sign_pre_command_batch,
)
from signer.service.resign import resign
from signer.service.verify import verify_manufacturer
from signer.smki.lifecycle import KeyState
from tests.support import fleet
from tests.support.campaigns import REQUESTER, World, add_fleet, audited, device, operations
from tests.support.constants import PINNED, SUPPLIER_EUI
from tests.support.devices import add_device, credentials
from tests.support.independent import (
    assert_schema_valid,
    cs06_pre_command,
    duis_fields,
    firmware_image_of,
    ota_header,
    raw_signature_verifies,
    split_upgrade_image,
    xmlsec1_verify,
)
from tests.support.manufacturer import Manufacturer

ANN = "CN=ann"
SIGNATURES = ("resign", "duis-sign", "activation-sign")


def approved(world: World, devices: list[str], product: Product = Product.UPDATE) -> PlanView:
    spec = CampaignSpec(world.image_id, product, firmware_version="00000200")
    plan = plan_campaign(world.svc, spec, [devices], REQUESTER)
    return approve_campaign(world.svc, plan.plan_id, ANN)


def run(world: World, plan: PlanView) -> list[ResultItem]:
    return [i for batch in apply_campaign(world.svc, plan.plan_id, "CN=operator") for i in batch]


def signatures(world: World) -> list[str]:
    return [op for op in operations(world.db) if op in SIGNATURES]


def xml_certificate(world: World) -> x509.Certificate:
    cert = world.svc.token.find(label="xml-sign").certificate
    assert cert is not None
    return cert


def test_apply_produces_exactly_the_planned_artifacts(
    world: World, vectors: Path, tmp_path: Path
) -> None:
    z1 = add_fleet(world, 1, 3)
    two = add_fleet(world, 2, 2, second_key=True)
    behind = add_fleet(world, 3, 1, entry="T-1")
    plan = approved(world, [*z1, *behind, *two])
    items = run(world, plan)
    issued = [i for i in items if isinstance(i, Issued)]
    assert {i.device_ids for i in issued} == {tuple(z1), tuple(two)}
    assert [str(i.refusal.device) for i in items if isinstance(i, Refused)] == behind
    assert not [i for i in items if isinstance(i, Withheld | AlreadyIssued)]
    keys = {tuple(z1): "z1-supplier-ds", tuple(two): "campaign-two"}
    for item in issued:
        assert item.kind == "update" and item.upgrade_image and item.update_request
        key = world.svc.token.find(label=keys[item.device_ids])
        assert key.certificate is not None and item.upgrade_image.group.key.label == key.label
        # the ARP signature, by the key those devices trust, over the Manufacturer Image
        _, image, _, signature = split_upgrade_image(item.upgrade_image.upgrade_image)
        assert image == fleet.IMAGE
        assert raw_signature_verifies(key.certificate, image, signature)
        document = item.update_request.document
        assert xmlsec1_verify(document, xml_certificate(world), tmp_path).returncode == 0
        assert_schema_valid(document, vectors / "xsd")
        assert firmware_image_of(document) == item.upgrade_image.upgrade_image
        fields = duis_fields(document)
        assert fields["DeviceIDList"].split(",") == list(item.device_ids)
        assert fields["ServiceReference"] == "11.1"
        assert fields["RequestID"] == str(item.update_request.request_id)
    view = get_campaign(world.svc, plan.plan_id)
    assert (view.state, view.issued, view.withheld) == ("applied", 5, 0)
    records = {r.device_id: r for b in campaign_devices(world.svc, plan.plan_id) for r in b}
    for item in issued:
        assert item.update_request is not None
        for d in item.device_ids:
            assert records[d].outcome == "issued"
            assert records[d].request_ids == (str(item.update_request.request_id),)
    assert signatures(world) == ["resign", "duis-sign"] * 2
    phases = [d["phase"] for _, d in audited(world.db, "campaign-apply")]
    assert phases == ["start", "end"]
    # applied once: never again
    with pytest.raises(CampaignRefused) as info:
        apply_campaign(world.svc, plan.plan_id, ANN)
    assert info.value.reason == "PLAN_APPLIED"


def test_activations_one_per_device_verified_independently(world: World, tmp_path: Path) -> None:
    devices = add_fleet(world, 1, 3)
    plan = approved(world, devices, Product.ACTIVATION)
    items = run(world, plan)
    assert [i.device_ids for i in items if isinstance(i, Issued)] == [(d,) for d in devices]
    for item in items:
        assert isinstance(item, Issued) and item.activation is not None
        document = item.activation.document
        assert xmlsec1_verify(document, xml_certificate(world), tmp_path).returncode == 0
        fields = duis_fields(document)
        assert fields["ServiceReference"] == "11.3"
        issued = activations.get(
            world.db, item.activation.request_id.originator, item.activation.request_id.counter
        )
        assert issued is not None and issued.withheld_at is None
    assert signatures(world) == ["activation-sign"] * 3


def _retire(world: World, label: str) -> None:
    key = world.svc.token.find(label=label)
    record = ledger.get(world.db, world.svc.token.token_label, key.key_id)
    assert record is not None
    op = Operation("tests", "retire", world.svc.token.token_label, label, key.key_id)
    ledger.transition(
        world.db, record, KeyState.RETIRED, now=PINNED, op=op, entry=audit_entry(op, PINNED)
    )


def _change_cpl(world: World) -> None:
    csv = world.tmp / "cpl2.csv"
    csv.write_text(fleet.cpl_csv(other_models=True).replace(",T-2,,,\n", ",T-1;T-2,,,\n"))
    import_cpl(world.db, csv, PINNED)


def _change_cells(world: World) -> None:
    assert world.second.ski is not None
    creds = credentials(device(1, 0), ski=world.second.ski)
    device_registry.store_credentials(world.db, creds, PINNED)


CHANGES: dict[str, tuple[Callable[[World], None], str]] = {
    "cpl": (_change_cpl, "CPL"),
    "cells": (_change_cells, "trust anchor cells or inventory"),
    "retired key": (lambda w: _retire(w, "campaign-two"), "key"),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_after_approval_makes_the_plan_stale(world: World, change: str) -> None:
    plan = approved(world, [*add_fleet(world, 1, 2), *add_fleet(world, 2, 1, second_key=True)])
    make, named = CHANGES[change]
    make(world)
    with pytest.raises(CampaignRefused, match="stale") as info:
        apply_campaign(world.svc, plan.plan_id, ANN)
    assert info.value.reason == "PLAN_STALE"
    view = get_campaign(world.svc, plan.plan_id)
    assert view.state == "stale" and named in view.stale_reason
    assert signatures(world) == []  # nothing was signed
    with pytest.raises(CampaignRefused) as again:
        approve_campaign(world.svc, plan.plan_id, "CN=bob")
    assert again.value.reason == "PLAN_STALE"


def test_an_unrelated_change_still_applies(world: World) -> None:
    plan = approved(world, add_fleet(world, 1, 2))
    add_device(world.db, device(8, 1))  # another device: the registry generation moves
    add_device(world.db, device(1, 0), entry="T-2")  # the same facts written again
    items = run(world, plan)
    assert len([i for i in items if isinstance(i, Issued)]) == 1
    assert get_campaign(world.svc, plan.plan_id).state == "applied"


def test_an_interrupted_apply_resumes_without_signing_anything_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(apply, "BATCH", 2)
    devices = add_fleet(world, 1, 5)
    plan = approved(world, devices, Product.ACTIVATION)
    first = apply_campaign(world.svc, plan.plan_id, "CN=operator")
    got = next(first)  # the first batch, committed; then the client goes away
    first.close()
    assert [i.device_ids for i in got if isinstance(i, Issued)] == [(d,) for d in devices[:2]]
    assert get_campaign(world.svc, plan.plan_id).state == "applying"
    assert signatures(world) == ["activation-sign"] * 2
    items = run(world, plan)  # no new approval needed to finish
    already = [i for i in items if isinstance(i, AlreadyIssued)]
    assert [i.device_ids for i in already] == [(devices[0],), (devices[1],)]
    assert {i.request_id for i in already} == {
        str(i.activation.request_id) for i in got if isinstance(i, Issued) and i.activation
    }
    assert [i.device_ids for i in items if isinstance(i, Issued)] == [(d,) for d in devices[2:]]
    assert signatures(world) == ["activation-sign"] * 5  # the first two never again
    view = get_campaign(world.svc, plan.plan_id)
    assert (view.state, view.issued) == ("applied", 5)
    phases = [d["phase"] for _, d in audited(world.db, "campaign-apply")]
    assert phases == ["start", "resume", "end"]


def test_a_failed_pre_flight_withholds_the_artifact_and_its_pre_command(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 2)
    bad = devices[1]
    real = signer.preflight.check_activation

    def meter_refuses(document: bytes, **kw: Any) -> None:
        real(document, **kw)  # the real checks pass; this meter refuses anyway (injected)
        if kw["device_id"] == bad:
            raise signer.preflight.PreflightFailed("originator_counter", "injected fault")

    monkeypatch.setattr(signer.preflight, "check_activation", meter_refuses)
    plan = approved(world, devices, Product.ACTIVATION)
    items = run(world, plan)
    withheld = [i for i in items if isinstance(i, Withheld)]
    assert [(i.device_ids, i.check, i.detail) for i in withheld] == [
        ((bad,), "originator_counter", "injected fault")
    ]
    issued = [i for i in items if isinstance(i, Issued)]
    assert [i.device_ids for i in issued] == [(devices[0],)]
    view = get_campaign(world.svc, plan.plan_id)
    assert (view.issued, view.withheld) == (1, 1)
    records = {r.device_id: r for b in campaign_devices(world.svc, plan.plan_id) for r in b}
    assert (records[bad].outcome, records[bad].withheld_check) == ("withheld", "originator_counter")
    # the withheld request's pre-command is refused; the issued one's is signed
    counters = {d: int(records[d].request_ids[0].rsplit(":", 1)[1]) for d in devices}
    payloads = [
        cs06_pre_command(
            originator=SUPPLIER_EUI,
            recipient=d,
            counter=counters[d],
            firmware_hash=fleet.IMAGE_HASH,
        )
        for d in (bad, devices[0])
    ]
    refusal, signed = sign_pre_command_batch(world.svc, payloads, accept_unauthenticated=True)
    assert isinstance(refusal, PreCommandRefusal) and refusal.code == PRE_COMMAND_WITHHELD
    assert isinstance(signed, SignedPreCommand)


@pytest.mark.parametrize("world", ["direct_limit = 2"], indirect=True)
def test_direct_calls_above_the_limit_need_a_campaign(world: World) -> None:
    devices = add_fleet(world, 1, 3)
    calls: list[Callable[[], object]] = [
        lambda: resign(world.svc, world.image_id, devices, None),
        lambda: build_duis(
            world.svc,
            image_id=world.image_id,
            upgrade_image=None,
            device_ids=devices,
            firmware_version="00000200",
            service="11.1",
        ),
        lambda: build_activations(world.svc, ActivationSpec(world.image_id), devices),
    ]
    for call in calls:
        with pytest.raises(CampaignRefused, match="signer campaign plan") as info:
            call()
        assert info.value.reason == "CAMPAIGN_REQUIRED"
    assert signatures(world) == []
    assert len(resign(world.svc, world.image_id, devices[:2], None).images) == 1  # at the limit
    # a stream: refused before the batch that crosses the limit is signed
    stream = stream_activations(
        world.svc, ActivationSpec(world.image_id), [devices[:2], devices[2:]]
    )
    assert len(next(stream)) == 2
    with pytest.raises(CampaignRefused) as info:
        next(stream)
    assert info.value.reason == "CAMPAIGN_REQUIRED"
    assert signatures(world) == ["resign", "activation-sign", "activation-sign"]


def test_the_image_is_checked_against_the_supplier_cell_the_registry_holds_now(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices = add_fleet(world, 1, 2)
    real = signer.preflight.check_upgrade_image
    seen: list[signer.preflight.MeterFacts] = []

    def spy(data: bytes, digest: bytes, meter: signer.preflight.MeterFacts, **kw: Any) -> None:
        seen.append(meter)
        real(data, digest, meter, **kw)

    monkeypatch.setattr(signer.preflight, "check_upgrade_image", spy)
    items = run(world, approved(world, devices))
    assert [type(i) for i in items] == [Issued]
    cells = device_registry.supplier_signing_skis(world.db, [Eui64.parse(d) for d in devices])
    assert {m.supplier_ski for m in seen} == set(cells.values()) != {None}


def test_a_supplier_cell_changed_after_the_key_was_chosen_withholds_the_update(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the key selection still sees the planned cell; the registry read at apply time (for
    # the pre-flight) sees another key there: the meter would refuse the ARP signature
    devices = add_fleet(world, 1, 2)
    real = device_registry.device_facts
    other = world.second.ski
    assert other is not None

    def moved(db: Any, euis: Any) -> dict[Eui64, device_registry.DeviceFacts]:
        return {e: f._replace(supplier_ski=other) for e, f in real(db, euis).items()}

    plan = approved(world, devices)
    monkeypatch.setattr("signer.service.campaigns.apply.device_facts", moved)
    items = run(world, plan)
    withheld = [i for i in items if isinstance(i, Withheld)]
    assert [(i.check, set(i.device_ids)) for i in withheld] == [("arp_signature", set(devices))]
    assert other.hex() in withheld[0].detail


def test_a_ppmid_update_is_applied_through_the_tail_less_checks(
    world: World, manufacturer: Manufacturer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a tail-less (SR 11.4) image, T-3 of the CPL then
    image = b"ppmid test firmware " * 50
    header = ota_header(len(image), file_version=0x00000200, tail=False)
    csv = world.tmp / "ppmid-cpl.csv"
    csv.write_text(fleet.cpl_csv(hashlib.sha256(image).digest()))
    import_cpl(world.db, csv, PINNED)
    verdict = verify_manufacturer(
        world.svc,
        deliveries.from_separate(
            ota_header=header,
            manufacturer_image=image,
            signature=manufacturer.sign(header + image),
            hash=hashlib.sha256(image).digest(),
        ),
    )
    assert verdict.verified, verdict.checks
    devices = add_fleet(world, 1, 2)
    real = signer.preflight.check_upgrade_image
    calls: list[dict[str, Any]] = []

    def spy(data: bytes, digest: bytes, meter: signer.preflight.MeterFacts, **kw: Any) -> None:
        calls.append(kw)
        real(data, digest, meter, **kw)

    monkeypatch.setattr(signer.preflight, "check_upgrade_image", spy)
    spec = CampaignSpec(
        verdict.image_id, Product.UPDATE, service_reference="11.4", firmware_version="00000200"
    )
    plan = plan_campaign(world.svc, spec, [devices], REQUESTER)
    items = run(world, approve_campaign(world.svc, plan.plan_id, ANN))
    assert [type(i) for i in items] == [Issued], items
    assert calls and all(kw == {"with_tail": False} for kw in calls)
