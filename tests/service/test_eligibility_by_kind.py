"""Screening and key selection decided once per kind of device agree with deciding each
device on its own (the general path: its facts read row by row, ``pathways._check`` and
``select_keys`` per device): the same groups in the same order with the same devices, the
same refusals with their reasons, details and upgrade paths, in the order given."""

from __future__ import annotations

import random
from collections.abc import Sequence

from signer.gbcs.eui import Eui64
from signer.gbcs.ota import parse_ota_header
from signer.registry import devices as registry
from signer.service import pathways
from signer.service.images import verified_image
from signer.service.keys.selection import Selection, select_keys
from signer.service.refusal import DeviceRefusal
from signer.service.services import Services
from tests.support.campaigns import World, add_fleet, device
from tests.support.devices import add_device

NO_KEY_SKI = bytes.fromhex("0102030405060708")


def _per_device(
    svc: Services, image_id: str, devices: Sequence[Eui64]
) -> tuple[list[Eui64], list[DeviceRefusal], Selection]:
    """Screening and selection the general way, one device at a time."""
    image = verified_image(svc, image_id)
    facts = registry.device_facts_by_row(svc.db, devices)
    target = pathways.target_entry(svc, image)
    assert target is not None
    header = parse_ota_header(image.record.header_bytes)
    trusted = svc.trust.current(svc.db)
    evaluator = trusted.evaluator(target.entry_id)
    accepted, refused = [], []
    for d in devices:
        f = facts.get(d)
        verdict = (
            DeviceRefusal(d, "unknown_device", "the device is not registered")
            if f is None
            else pathways._check(d, f, target, header, evaluator, trusted.entries)
        )
        if verdict is None:
            accepted.append(d)
        else:
            refused.append(verdict)
    selection = select_keys(svc, accepted, {d: facts[d].supplier_ski for d in accepted})
    by_device = {r.device: r for r in (*refused, *selection.refused)}
    everything = tuple(by_device[d] for d in devices if d in by_device)
    return accepted, refused, Selection(selection.groups, everything)


def _shape(selection: Selection) -> tuple[object, ...]:
    return (
        [(g.key.label, g.certificate.serial, g.devices) for g in selection.groups],
        selection.refused,
    )


def _fleet(world: World) -> list[Eui64]:
    made = [
        *add_fleet(world, 1, 6),  # eligible, Z1
        *add_fleet(world, 2, 4, second_key=True),  # eligible, the second key
        *add_fleet(world, 3, 3, entry="T-3"),  # already on the target
        *add_fleet(world, 4, 3, entry="T-1"),  # a path through T-2
        *add_fleet(world, 5, 2, entry="X-1"),  # no path
        *add_fleet(world, 6, 2, entry="G-1", device_type="GSME"),  # another type
        *add_fleet(world, 7, 2, entry="NOT-ON-CPL"),
        *add_fleet(world, 8, 2, entry=None),  # no inventory
    ]
    for i in range(2):
        add_device(world.db, device(9, i), ski=None)  # no Supplier cell
        add_device(world.db, device(10, i), ski=NO_KEY_SKI)  # no key on the token
        made += [device(9, i), device(10, i)]
    made += [device(11, 0), device(11, 1)]  # not registered
    return [Eui64.parse(d) for d in made]


def test_a_mixed_fleet_is_decided_as_device_by_device(world: World) -> None:
    fleet = _fleet(world)
    for seed in range(3):
        devices = list(fleet)
        random.Random(seed).shuffle(devices)
        accepted, refused, expected = _per_device(world.svc, world.image_id, devices)
        image = verified_image(world.svc, world.image_id)
        screening = pathways.screen(world.svc, image, devices)
        assert (screening.accepted, screening.refused) == (accepted, refused)
        assert screening.facts == registry.device_facts_by_row(world.db, devices)
        got = pathways.select_eligible(world.svc, image, devices)
        assert _shape(got) == _shape(expected)
        reasons = {r.reason for r in got.refused}
        assert reasons == {
            "already_on_target",
            "not_permitted_predecessor",
            "wrong_device_type",
            "unknown_current_entry",
            "no_inventory",
            "no_supplier_cell",
            "no_key_for_cell",
            "unknown_device",
        }
        assert sorted(len(g.devices) for g in got.groups) == [4, 6]


def test_one_kind_takes_the_shortcut_and_agrees(world: World) -> None:
    image = verified_image(world.svc, world.image_id)
    for made in (add_fleet(world, 1, 5), add_fleet(world, 3, 4, entry="T-3")):
        devices = [Eui64.parse(d) for d in made]
        kinds = registry.device_kinds(world.db, devices)
        assert pathways._one_kind(kinds)
        accepted, refused, expected = _per_device(world.svc, world.image_id, devices)
        screening = pathways.screen(world.svc, image, devices)
        assert (screening.accepted, screening.refused) == (accepted, refused)
        assert _shape(pathways.select_eligible(world.svc, image, devices)) == _shape(expected)
        # the same devices with one unknown one after them: the per-device loop
        unknown = Eui64.parse(device(11, 9))
        longer = pathways.select_eligible(world.svc, image, [*devices, unknown])
        assert _shape(longer) == _shape(
            _per_device(world.svc, world.image_id, [*devices, unknown])[2]
        )
        assert longer.refused[-1].device == unknown


def test_a_refusal_names_each_device_of_its_kind(world: World) -> None:
    devices = [Eui64.parse(d) for d in add_fleet(world, 4, 3, entry="T-1")]
    got = pathways.select_eligible(world.svc, verified_image(world.svc, world.image_id), [])
    assert got.groups == () and got.refused == ()
    image = verified_image(world.svc, world.image_id)
    refused = pathways.screen(world.svc, image, devices).refused
    assert [r.device for r in refused] == devices
    assert {(r.reason, r.path) for r in refused} == {
        ("not_permitted_predecessor", ("T-1", "T-2", "T-3"))
    }
