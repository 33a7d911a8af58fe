"""Screening and key selection decided once per kind of device give each device the outcome
its construction calls for: a fleet is made segment by segment, each segment with the one
outcome the documented rules give it (a key's group, or a refusal's reason and upgrade
path), and ``screen`` / ``select_eligible`` are held to those expectations, in the order
the devices were given, whatever that order. Nothing of the code under test computes the
expectations. The kinds read is also held to the row-by-row read of the registry."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from sqlalchemy import text

from signer.errors import NotFound
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.hsm.token import Token, TokenKey
from signer.registry import devices as registry
from signer.registry.db import Database
from signer.service import pathways
from signer.service.cplops import import_cpl
from signer.service.images import verified_image
from signer.service.keys.selection import Selection, select_keys
from signer.service.refusal import DeviceRefusal
from signer.smki.certificate import smki_extensions, smki_name
from signer.smki.issuance import issue_certificate
from signer.smki.lifecycle import KeyPurpose
from tests.support import fleet
from tests.support.campaigns import SECOND_KEY, World, add_fleet, device, verify_fleet_image
from tests.support.constants import PINNED, SUPPLIER_EUI
from tests.support.devices import Z1_SKI, add_device
from tests.support.hsm import Hsm
from tests.support.ledger import force_active, services_for
from tests.support.manufacturer import Manufacturer
from tests.support.preflight import DEVICE_HW, header_with_hardware_versions
from tests.support.preflight import verified_image as verify_image
from tests.support.server import prepare

Z1 = "z1-supplier-ds"
NO_KEY_SKI = bytes.fromhex("0102030405060708")
PENDING = "eligibility-pending"  # certified, never activated: not in the key ledger
WRONG_ROLE = "eligibility-network-operator"  # active, its certificate a Network Operator's


@dataclass(frozen=True)
class Expected:
    """One device's outcome by construction: signed with ``key`` (a label), or refused."""

    key: str | None = None
    reason: str | None = None
    path: tuple[str, ...] | None = None
    screened: bool = True  # refused by screening (else: by key selection only)


def _group(label: str) -> Expected:
    return Expected(key=label)


def _pathway(reason: str, path: tuple[str, ...] | None = None) -> Expected:
    return Expected(reason=reason, path=path)


def _key(reason: str) -> Expected:
    return Expected(reason=reason, screened=False)


def _certified(token: Token, label: str, role: RemotePartyRole) -> TokenKey:
    """A token key certified by a test CA for ``role`` (made once per session)."""
    try:
        return token.find(label=label)
    except NotFound:
        key = token.generate_key(label)
        cert = issue_certificate(
            subject=smki_name(int(role), Eui64.parse(SUPPLIER_EUI), label),
            issuer=smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, "TEST"),
            public_key=key.public_key,
            serial=x509.random_serial_number(),
            not_before=PINNED - dt.timedelta(days=30),
            not_after=PINNED + dt.timedelta(days=30),
            extensions=smki_extensions(public_key=key.public_key, key_usage="digitalSignature"),
            sign_digest=lambda digest: token.sign_digest(key, digest),
        )
        return token.store_certificate(key, cert)


def _second_cell(db: Database, eui: str, ski: bytes) -> None:
    """A second Supplier management cell for ``eui``, naming ``ski`` (a state no 6.24.1
    import writes: the readers refuse such a response)."""
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trust_anchor_cells (device_eui, role, key_usage, cell_usage, "
                "subject_eui, ski) SELECT device_eui, role, key_usage, cell_usage, "
                "subject_eui, :ski FROM trust_anchor_cells WHERE device_eui = :eui"
            ),
            {"ski": ski.hex(), "eui": Eui64.parse(eui).hex},
        )


def _fleet(world: World) -> dict[Eui64, Expected]:
    token = world.svc.token
    pending = _certified(token, PENDING, RemotePartyRole.SUPPLIER)
    wrong = _certified(token, WRONG_ROLE, RemotePartyRole.NETWORK_OPERATOR)
    force_active(world.svc, wrong, KeyPurpose.SUPPLIER_DS)
    assert pending.ski is not None and wrong.ski is not None and world.second.ski is not None
    made: dict[str, Expected] = {}

    def segment(devices: list[str], expected: Expected) -> None:
        made.update(dict.fromkeys(devices, expected))

    forward = ("T-1", "T-2", "T-3")
    segment(add_fleet(world, 1, 6), _group(Z1))
    segment(add_fleet(world, 2, 4, second_key=True), _group(SECOND_KEY))
    segment(add_fleet(world, 3, 3, entry="T-3"), _pathway("already_on_target", ("T-3",)))
    segment(add_fleet(world, 4, 3, entry="T-1"), _pathway("not_permitted_predecessor", forward))
    segment(add_fleet(world, 5, 2, entry="X-1"), _pathway("not_permitted_predecessor"))
    segment(add_fleet(world, 6, 2, entry="G-1", device_type="GSME"), _pathway("wrong_device_type"))
    segment(add_fleet(world, 7, 2, entry="NOT-ON-CPL"), _pathway("unknown_current_entry"))
    segment(add_fleet(world, 8, 2, entry=None), _pathway("no_inventory"))
    for i in range(2):
        add_device(world.db, device(9, i), ski=None)
        add_device(world.db, device(10, i), ski=NO_KEY_SKI)
        add_device(world.db, device(12, i), ski=pending.ski)
        add_device(world.db, device(13, i), ski=wrong.ski)
        for prefix in (14, 15):  # cells naming Z1 and the second key
            add_device(world.db, device(prefix, i), entry="T-2" if prefix == 14 else "X-1")
            _second_cell(world.db, device(prefix, i), world.second.ski)
    segment([device(9, i) for i in range(2)], _key("no_supplier_cell"))
    segment([device(10, i) for i in range(2)], _key("no_key_for_cell"))
    segment([device(11, i) for i in range(2)], _pathway("unknown_device"))  # not registered
    segment([device(12, i) for i in range(2)], _key("key_not_active"))
    segment([device(13, i) for i in range(2)], _key("certificate_rejected"))
    # ambiguous before anything else, a pathway refusal (15: on X-1) included
    segment([device(p, i) for p in (14, 15) for i in range(2)], _pathway(AMBIGUOUS))
    return {Eui64.parse(d): e for d, e in made.items()}


AMBIGUOUS = "ambiguous_supplier_cells"


def _check_ambiguous(world: World, refusals: Sequence[DeviceRefusal]) -> None:
    """Each ambiguous refusal names its own device and both SKIs, sorted."""
    second = world.second.ski
    assert second is not None
    first, then = sorted((Z1_SKI, second))
    ambiguous = [r for r in refusals if r.reason == AMBIGUOUS]
    assert ambiguous
    for r in ambiguous:
        assert f"device {r.device} has 2 " in r.detail
        assert f"(SKIs {first.hex()}, {then.hex()})" in r.detail
        assert r.path is None and not r.no_path


def _hold(
    world: World, image_id: str, devices: Sequence[Eui64], expected: dict[Eui64, Expected]
) -> Selection:
    """``screen`` and ``select_eligible`` give every device its expected outcome."""
    image = verified_image(world.svc, image_id)
    screening = pathways.screen(world.svc, image, devices)
    assert screening.accepted == [d for d in devices if not expected[d].screened or expected[d].key]
    assert [(r.device, r.reason, r.path) for r in screening.refused] == [
        (d, expected[d].reason, expected[d].path)
        for d in devices
        if expected[d].screened and not expected[d].key
    ]
    for r in screening.refused:
        assert r.no_path == (r.path is None and r.reason not in _NOT_PATHWAY), r
    assert screening.facts == registry.device_facts_by_row(world.db, devices)
    got = pathways.select_eligible(world.svc, image, devices)
    assert [(r.device, r.reason, r.path) for r in got.refused] == [
        (d, expected[d].reason, expected[d].path) for d in devices if not expected[d].key
    ]
    want: dict[str, list[Eui64]] = {}  # groups in the order their first device comes
    for d in devices:
        label = expected[d].key
        if label is not None:
            want.setdefault(label, []).append(d)
    assert [(g.key.label, list(g.devices)) for g in got.groups] == list(want.items())
    for g in got.groups:
        assert g.key.ski == g.certificate.ski
    if any(e.reason == AMBIGUOUS for e in expected.values()):
        _check_ambiguous(world, got.refused)
    return got


#: refusals that are not about a path (so carry neither a path nor no_path)
_NOT_PATHWAY = {"unknown_device", AMBIGUOUS}


def test_a_mixed_fleet_gets_the_outcomes_it_was_built_for(world: World) -> None:
    expected = _fleet(world)
    fleet_devices = list(expected)
    reasons = {e.reason for e in expected.values()} - {None}
    for seed in range(3):
        devices = list(fleet_devices)
        random.Random(seed).shuffle(devices)
        got = _hold(world, world.image_id, devices, expected)
        assert {r.reason for r in got.refused} == reasons
        assert sorted(len(g.devices) for g in got.groups) == [4, 6]
    assert len(reasons) == 11


def test_select_keys_refuses_an_ambiguous_device_like_selection(world: World) -> None:
    """The pre-command path (``select_keys``, no pathway): the same key refusals and groups."""
    expected = _fleet(world)
    keyed = [d for d, e in expected.items() if e.key or not e.screened]
    ambiguous = [d for d, e in expected.items() if e.reason == AMBIGUOUS]
    unknown = Eui64.parse(device(11, 0))
    devices = [*ambiguous, *keyed, unknown]
    got = select_keys(world.svc, devices)
    assert [(r.device, r.reason) for r in got.refused] == [
        *((d, AMBIGUOUS) for d in ambiguous),
        *((d, expected[d].reason) for d in keyed if not expected[d].key),
        (unknown, "unknown_device"),
    ]
    assert [(g.key.label, len(g.devices)) for g in got.groups] == [(Z1, 6), (SECOND_KEY, 4)]
    _check_ambiguous(world, got.refused)


def test_one_kind_takes_the_shortcut_and_agrees(world: World) -> None:
    for made, outcome in (
        (add_fleet(world, 1, 5), _group(Z1)),
        (add_fleet(world, 3, 4, entry="T-3"), _pathway("already_on_target", ("T-3",))),
    ):
        devices = [Eui64.parse(d) for d in made]
        assert pathways._one_kind(registry.device_kinds(world.db, devices))
        expected = dict.fromkeys(devices, outcome)
        _hold(world, world.image_id, devices, expected)
        # the same devices with one unknown one after them: the per-device loop
        unknown = Eui64.parse(device(11, 9))
        expected[unknown] = _pathway("unknown_device")
        longer = _hold(world, world.image_id, [*devices, unknown], expected)
        assert longer.refused[-1].device == unknown
    # one kind, ambiguous: the shortcut gives each device a refusal naming it
    ambiguous = [device(14, i) for i in range(3)]
    for d in ambiguous:
        add_device(world.db, d)
        assert world.second.ski is not None
        _second_cell(world.db, d, world.second.ski)
    devices = [Eui64.parse(d) for d in ambiguous]
    assert pathways._one_kind(registry.device_kinds(world.db, devices))
    _hold(world, world.image_id, devices, dict.fromkeys(devices, _pathway(AMBIGUOUS)))


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


def test_hardware_versions_outside_the_header_range_are_refused(
    world: World, manufacturer: Manufacturer
) -> None:
    """An image whose OTA header names hardware versions 0x0100..0x0200 (CPL entry H-1,
    over T-2): a device's recorded version decides, and an unrecorded one is refused."""
    image = b"hardware range firmware " * 40
    csv = world.tmp / "cpl-hw.csv"
    csv.write_text(
        fleet.cpl_csv(other_models=True)
        + f"H-1,121D,ESME,M1,0001,0001,01020304,{hashlib.sha256(image).hexdigest()},T-2,,,\n"
    )
    import_cpl(world.db, csv, PINNED)
    image_id = verify_image(
        world.svc, manufacturer, image, header_with_hardware_versions(len(image))
    )
    inside, outside, unknown = device(1, 0), device(1, 1), device(1, 2)
    for d in (inside, outside):
        add_device(world.db, d)  # hardware version 1
    registry.set_inventory(
        world.db,
        Eui64.parse(inside),
        device_type=None,
        hardware_version=DEVICE_HW,
        current_entry_id=None,
        now=PINNED,
    )
    registry.set_inventory(  # type and entry, no hardware version, no cell
        world.db,
        Eui64.parse(unknown),
        device_type="ESME",
        hardware_version=None,
        current_entry_id="T-2",
        now=PINNED,
    )
    expected = {
        Eui64.parse(inside): _group(Z1),
        Eui64.parse(outside): _pathway("hardware_version_out_of_range"),
        Eui64.parse(unknown): _pathway("hardware_version_unknown"),
    }
    got = _hold(world, image_id, list(expected), expected)
    details = {r.reason: r.detail for r in got.refused}
    assert details["hardware_version_out_of_range"] == (
        "hardware version 0x0001 is outside 0x0100..0x0200"
    )
    assert "0x0100..0x0200" in details["hardware_version_unknown"]


def test_advisory_mode_refuses_only_unknown_and_ambiguous_devices(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    """No CPL entry records the image: no pathway to enforce, so a device on any entry, or
    none, takes it; the key is still the device's own, and an ambiguous device refused."""
    config, db, _ = prepare(hsm, vectors, manufacturer, tmp_path, cpl_mode="advisory")
    try:
        svc = services_for(hsm.token(), db, config)
        image_id = verify_fleet_image(svc, manufacturer)
        assert pathways.target_entry(svc, verified_image(svc, image_id)) is None
        on_x, no_inventory, no_cell, ambiguous = (device(p, 0) for p in (5, 8, 9, 14))
        add_device(db, on_x, entry="X-1")
        add_device(db, no_inventory, entry=None)
        add_device(db, no_cell, ski=None)
        add_device(db, ambiguous)
        _second_cell(db, ambiguous, NO_KEY_SKI)
        expected = {
            Eui64.parse(on_x): _group(Z1),
            Eui64.parse(no_inventory): _group(Z1),
            Eui64.parse(no_cell): _key("no_supplier_cell"),
            Eui64.parse(device(11, 0)): _pathway("unknown_device"),
            Eui64.parse(ambiguous): _pathway(AMBIGUOUS),
        }
        image = verified_image(svc, image_id)
        got = pathways.select_eligible(svc, image, list(expected))
        assert [(r.device, r.reason) for r in got.refused] == [
            (d, e.reason) for d, e in expected.items() if e.reason
        ]
        assert [(g.key.label, len(g.devices)) for g in got.groups] == [(Z1, 2)]
        refusal = next(r for r in got.refused if r.reason == AMBIGUOUS)
        first, then = sorted((Z1_SKI, NO_KEY_SKI))
        assert refusal.detail.startswith(f"device {ambiguous} has 2 ")
        assert f"(SKIs {first.hex()}, {then.hex()})" in refusal.detail
        screening = pathways.screen(svc, image, list(expected))
        assert [r.reason for r in screening.refused] == ["unknown_device", AMBIGUOUS]
    finally:
        db.dispose()


@pytest.mark.parametrize("order", [0, 1])
def test_an_ambiguous_device_is_refused_whichever_cell_was_written_first(
    world: World, order: int
) -> None:
    """The outcome never depends on the order the database returns the cells in."""
    second = world.second.ski
    assert second is not None
    first_ski, other = (Z1_SKI, second) if order == 0 else (second, Z1_SKI)
    d = device(14, 0)
    add_device(world.db, d, ski=first_ski)
    _second_cell(world.db, d, other)
    eui = Eui64.parse(d)
    got = pathways.select_eligible(world.svc, verified_image(world.svc, world.image_id), [eui])
    assert got.groups == ()
    assert [(r.device, r.reason) for r in got.refused] == [(eui, AMBIGUOUS)]
    _check_ambiguous(world, got.refused)
