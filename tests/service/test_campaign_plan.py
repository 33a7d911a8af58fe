"""Plan: what a campaign would do, device by device, counted, stored and audited, with
nothing signed; its ID is its content's SHA-256, the same for the same content and
different when anything it depends on differs."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from signer.errors import InvalidInput, NotFound
from signer.gbcs.eui import Eui64
from signer.registry import devices as device_registry
from signer.registry import keys as ledger
from signer.registry.keys import Operation
from signer.service.campaigns import (
    CampaignSpec,
    Product,
    campaign_devices,
    get_campaign,
    plan_campaign,
)
from signer.service.cplops import import_cpl
from signer.service.keys.operations import audit_entry
from signer.service.manufacturers import revoke_manufacturer_certificate
from signer.smki.lifecycle import KeyState
from tests.support import fleet
from tests.support.campaigns import REQUESTER, World, add_fleet, audited, device, operations
from tests.support.constants import MANUFACTURER_CODE, PINNED
from tests.support.devices import add_device, credentials
from tests.support.manufacturer import Manufacturer


def spec(world: World, **kw: object) -> CampaignSpec:
    values: dict[str, object] = {
        "image_id": world.image_id,
        "product": Product.UPDATE,
        "firmware_version": "00000200",
    }
    values.update(kw)
    return CampaignSpec(**values)  # type: ignore[arg-type]


def test_a_plan_counts_per_key_model_and_reason_and_refuses_with_upgrade_paths(
    world: World,
) -> None:
    z1 = add_fleet(world, 1, 3)
    two = add_fleet(world, 2, 2, second_key=True)
    behind = add_fleet(world, 3, 1, entry="T-1")  # T-3 is not installed over T-1
    on_target = add_fleet(world, 4, 1, entry="T-3")
    gas = add_fleet(world, 5, 1, entry="G-1", device_type="GSME")
    unknown = device(9, 1)
    given = [*z1, *two, *behind, *on_target, *gas, unknown, z1[0], "not-an-eui"]
    before = operations(world.db)
    plan = plan_campaign(world.svc, spec(world), [given[:4], given[4:]], REQUESTER)
    assert (plan.devices, plan.eligible, plan.refused) == (len(given), 5, len(given) - 5)
    assert dict(plan.by_key) == {"z1-supplier-ds": 3, "campaign-two": 2}
    assert dict(plan.by_model) == {"121D/M1": 7, "121D/G1": 1}
    assert dict(plan.by_reason) == {
        "not_permitted_predecessor": 1,
        "already_on_target": 1,
        "wrong_device_type": 1,
        "unknown_device": 1,
        "duplicate_device_in_batch": 1,
        "invalid_device_id": 1,
    }
    assert plan.state == "planned" and plan.requester == REQUESTER
    assert plan.approvals_required == 1 and plan.approvals == ()
    records = [r for batch in campaign_devices(world.svc, plan.plan_id, batch=3) for r in batch]
    assert [r.device_id for r in records] == [*given[:-1], "not-an-eui"]
    by_id = {r.device_id: r for r in records[: len(given) - 2]}
    assert {by_id[d].key_label for d in z1} == {"z1-supplier-ds"}
    assert {by_id[d].key_ski for d in two} == {world.second.ski}
    assert all(by_id[d].outcome == "pending" and by_id[d].pathway == "eligible" for d in z1)
    refusal = by_id[behind[0]].refusal
    assert refusal is not None and refusal.reason == "not_permitted_predecessor"
    assert refusal.path == ("T-1", "T-2", "T-3")  # the upgrade path to take first
    assert by_id[on_target[0]].refusal is not None
    assert by_id[on_target[0]].refusal.path == ("T-3",)  # type: ignore[union-attr]
    gas_refusal = by_id[gas[0]].refusal
    assert gas_refusal is not None and gas_refusal.no_path
    assert (
        records[-2].refusal is not None
        and records[-2].refusal.reason == "duplicate_device_in_batch"
    )
    # stored and audited; nothing signed
    assert get_campaign(world.svc, plan.plan_id) == plan
    added = operations(world.db)[len(before) :]
    assert added == ["campaign-plan"]
    ((client, details),) = audited(world.db, "campaign-plan")
    assert client == REQUESTER and details["plan_id"] == plan.plan_id
    assert details["by_key"] == {"z1-supplier-ds": 3, "campaign-two": 2}


def test_a_plan_of_an_unknown_image_or_no_devices_is_refused(world: World) -> None:
    with pytest.raises(NotFound, match="not in the firmware library"):
        plan_campaign(world.svc, spec(world, image_id="ab" * 32), [[device(1, 0)]], REQUESTER)
    with pytest.raises(InvalidInput, match="at least one device"):
        plan_campaign(world.svc, spec(world), [[]], REQUESTER)
    with pytest.raises(InvalidInput, match="FirmwareVersion"):
        plan_campaign(world.svc, spec(world, firmware_version="00000100"), [[]], REQUESTER)
    with pytest.raises(NotFound):
        get_campaign(world.svc, "cd" * 32)


def _retire(world: World, label: str) -> None:
    """The ledger's record of a key retired (the token keeps it: other tests share it)."""
    key = world.svc.token.find(label=label)
    record = ledger.get(world.db, world.svc.token.token_label, key.key_id)
    assert record is not None
    op = Operation(
        actor="tests",
        operation="retire",
        token_label=world.svc.token.token_label,
        key_label=label,
        key_id=key.key_id,
    )
    ledger.transition(
        world.db, record, KeyState.RETIRED, now=PINNED, op=op, entry=audit_entry(op, PINNED)
    )


def test_the_same_content_gives_the_same_id_and_any_change_another(
    world: World, manufacturer: Manufacturer
) -> None:
    z1 = add_fleet(world, 1, 2)
    two = add_fleet(world, 2, 1, second_key=True)
    devices = [*z1, *two]
    first = plan_campaign(world.svc, spec(world), [devices], REQUESTER)
    # planning again (in other batches, later) is idempotent: the stored plan
    world.at(PINNED + dt.timedelta(hours=1))
    again = plan_campaign(world.svc, spec(world), [devices[:1], devices[1:]], REQUESTER)
    assert again == first
    assert operations(world.db).count("campaign-plan") == 1
    ids = {"first": first.plan_id}

    def plan(name: str, **kw: object) -> None:
        requester = str(kw.pop("requester", REQUESTER))
        ids[name] = plan_campaign(world.svc, spec(world, **kw), [devices], requester).plan_id

    plan("requester", requester="CN=someone-else")
    plan("spec", force_replace=True)
    plan("product", product=Product.ACTIVATION)
    # a device's cells: z1[1] now trusts the second key
    assert world.second.ski is not None
    device_registry.store_credentials(world.db, credentials(z1[1], ski=world.second.ski), PINNED)
    plan("cells")
    # its inventory: another hardware version
    device_registry.set_inventory(
        world.db,
        Eui64.parse(z1[0]),
        device_type=None,
        hardware_version=7,
        current_entry_id=None,
        now=PINNED,
    )
    plan("inventory")
    # the CPL: T-3 may now also be installed over T-1 (the target entry changed)
    csv = world.tmp / "cpl2.csv"
    csv.write_text(fleet.cpl_csv(other_models=True).replace(",T-2,,,\n", ",T-1;T-2,,,\n"))
    import_cpl(world.db, csv, PINNED)
    plan("cpl")
    # a key's state: the second key retired
    _retire(world, "campaign-two")
    plan("key")
    # the manufacturer certificate that verified the image: revoked from next year
    revoke_manufacturer_certificate(
        world.db,
        f"{MANUFACTURER_CODE:04X}",
        now=world.now,
        reason="key compromise",
        serial=str(manufacturer.certificate.serial_number),
        at=PINNED + dt.timedelta(days=365),
    )
    plan("manufacturer")
    assert len(set(ids.values())) == len(ids), ids


def test_an_unrelated_change_keeps_the_id(world: World) -> None:
    devices = add_fleet(world, 1, 2)
    first = plan_campaign(world.svc, spec(world), [devices], REQUESTER)
    add_device(world.db, device(7, 1))  # a device the plan does not name
    plan = plan_campaign(world.svc, spec(world), [devices], REQUESTER)
    assert plan.plan_id == first.plan_id


def test_plan_view_fields_follow_the_spec(world: World) -> None:
    when = dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.UTC)
    s = spec(world, product=Product.ACTIVATION, execution_time=when, firmware_version="")
    plan = plan_campaign(world.svc, s, [add_fleet(world, 1, 1)], REQUESTER)
    assert plan.spec == dataclasses.replace(s)
    assert get_campaign(world.svc, plan.plan_id).spec.execution_time == when
