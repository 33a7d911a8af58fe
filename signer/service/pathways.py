"""Pathway enforcement (MP231, SECMP0009): only firmware a device may take, in order.

A device is excluded when its current CPL entry is not a permitted predecessor of the
target entry, when its device type or model differs from the target's, or when its hardware
version is outside the OTA header's min..max. Each refusal names the shortest permitted
path from where the device is, or says there is none.

Before any of that, a device whose Supplier digital-signing management cells name different
keys is refused (``ambiguous_supplier_cells``), in advisory mode too: its registry record
contradicts itself, and the device decides the key, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TypeVar

from signer.cpl.model import CplEntry, ota_matches_entry, same_model
from signer.cpl.paths import PathEvaluator
from signer.errors import InvalidInput, NotFound, PolicyRefused, excerpt
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import OtaHeader, parse_ota_header
from signer.registry.devices import DeviceFacts, DeviceKinds, device_facts, device_kinds
from signer.service.caches import VerifiedImage
from signer.service.images import verified_image
from signer.service.keys.selection import KeyChoice, KeyChooser, KeyGroup, Selection
from signer.service.refusal import DeviceRefusal, ambiguous_supplier_cells
from signer.service.services import Services

_T = TypeVar("_T")


@dataclass(frozen=True)
class Screening:
    accepted: list[Eui64]
    refused: list[DeviceRefusal]
    kinds: DeviceKinds  # of the devices screened, in their order
    target: CplEntry | None
    # for each kind: None (may take the image) or the refusal of its first device
    verdicts: tuple[DeviceRefusal | None, ...] = ()
    devices: Sequence[Eui64] = ()

    @cached_property
    def facts(self) -> dict[Eui64, DeviceFacts]:
        return self.kinds.facts(self.devices)


def target_entry(svc: Services, image: VerifiedImage) -> CplEntry | None:
    """The CPL entry recording this image whose fields agree with its OTA header."""
    header = parse_ota_header(image.record.header_bytes)
    matching = [
        e
        for e in svc.trust.current(svc.db).for_image(image.digest)
        if not ota_matches_entry(
            header.manufacturer_code, header.image_type, header.file_version, e
        )
    ]
    if len(matching) > 1:
        ids = ", ".join(e.entry_id for e in matching)
        raise PolicyRefused(f"image {image.record.image_id} matches several CPL entries ({ids})")
    return matching[0] if matching else None


def screen(svc: Services, image: VerifiedImage, devices: Sequence[Eui64]) -> Screening:
    """Split devices into those that may take the image and those refused, with reasons.

    An image that no CPL entry records (advisory mode) has no pathway to enforce: only
    unknown devices are refused then.
    """
    kinds = device_kinds(svc.db, devices)
    target = target_entry(svc, image)
    verdicts = _verdicts(svc, image, target, devices, kinds)
    per_kind: list[DeviceRefusal | _Accepted | _Ambiguous] = [
        _ACCEPTED if v is None else _refused_kind(v, f)
        for f, v in zip(kinds.kinds, verdicts, strict=True)
    ]
    accepted: list[Eui64] = []
    refused: list[DeviceRefusal] = []
    if _one_kind(kinds):  # the common case: no look-up per device
        if per_kind[0] is _ACCEPTED:
            accepted = list(devices)
        else:
            refused = [_refusal_of(per_kind[0], d) for d in devices]
    else:
        for d, o in _outcomes(devices, kinds.kind_of, per_kind):
            if o is _ACCEPTED:
                accepted.append(d)
            else:
                refused.append(_refusal_of(o, d))
    return Screening(accepted, refused, kinds, target, verdicts, devices)


def _verdicts(
    svc: Services,
    image: VerifiedImage,
    target: CplEntry | None,
    devices: Sequence[Eui64],
    kinds: DeviceKinds,
) -> tuple[DeviceRefusal | None, ...]:
    """Each kind's verdict: it depends on the device's inventory only, so it is decided once
    per kind of device (a campaign's 50,000 devices are a handful of kinds), with the first
    device of that kind named in its refusal. A kind whose Supplier cells name several keys
    is refused first, whatever the target (``ambiguous_supplier_cells``)."""
    if target is None:
        if not any(f.ambiguous_skis for f in kinds.kinds):
            return (None,) * len(kinds.kinds)
        first = _first_of_kinds(devices, kinds)
        return tuple(_ambiguity(first[k], f) for k, f in enumerate(kinds.kinds))
    header = parse_ota_header(image.record.header_bytes)
    trusted = svc.trust.current(svc.db)
    evaluator = trusted.evaluator(target.entry_id)
    first = _first_of_kinds(devices, kinds)
    by_inventory: dict[tuple[str | None, int | None, str | None], DeviceRefusal | None] = {}
    out = []
    for k, f in enumerate(kinds.kinds):
        if f.ambiguous_skis:
            out.append(_ambiguity(first[k], f))
            continue
        inventory = (f.device_type, f.hardware_version, f.current_entry_id)
        if inventory not in by_inventory:
            by_inventory[inventory] = _check(
                first[k], f, target, header, evaluator, trusted.entries
            )
        out.append(by_inventory[inventory])
    return tuple(out)


class _Accepted:
    """``screen``'s outcome for a kind of device that may take the image."""


_ACCEPTED = _Accepted()


@dataclass(frozen=True)
class _Ambiguous:
    """A kind of device whose Supplier digital-signing management cells name these SKIs
    (several): each of its devices is refused by a refusal naming that device."""

    skis: tuple[bytes, ...]


def _ambiguity(d: Eui64, f: DeviceFacts) -> DeviceRefusal | None:
    """The refusal of a device of a kind whose cells name several keys, else None."""
    return ambiguous_supplier_cells(d, f.ambiguous_skis) if f.ambiguous_skis else None


def _refused_kind(verdict: DeviceRefusal, f: DeviceFacts) -> DeviceRefusal | _Ambiguous:
    """A refused kind's outcome: its verdict, given as it stands to each of its devices, or
    for an ambiguous kind the SKIs each device's own refusal names."""
    return _Ambiguous(f.ambiguous_skis) if f.ambiguous_skis else verdict


_UNKNOWN_DETAIL = "the device is not registered"


def _one_kind(kinds: DeviceKinds) -> bool:
    """Every device registered and of one kind."""
    return len(kinds.kinds) == 1 and None not in kinds.kind_of


def _outcomes(
    devices: Sequence[Eui64], index: Sequence[int | None], per_kind: Sequence[_T]
) -> Iterator[tuple[Eui64, _T | DeviceRefusal]]:
    """Each device with its kind's outcome, in the order given; an unknown device with its
    refusal."""
    for d, k in zip(devices, index, strict=True):
        yield d, _unknown(d) if k is None else per_kind[k]


def _refusal_of(o: object, d: Eui64) -> DeviceRefusal:
    """A kind's refusal given to one of its devices (every other field as it stands)."""
    if isinstance(o, _Ambiguous):  # its detail names the device
        return ambiguous_supplier_cells(d, o.skis)
    assert isinstance(o, DeviceRefusal)
    if o.device is d or o.device == d:
        return o
    return replace(o, device=d)


def upgrade_path(svc: Services, from_id: str, to_id: str) -> list[str] | None:
    trusted = svc.trust.current(svc.db)
    for entry_id, field in ((from_id, "from"), (to_id, "to")):
        if entry_id not in trusted.graph:
            raise NotFound(f"CPL entry {excerpt(entry_id)} ({field}) is not on the CPL")
    return trusted.evaluator(to_id).path_from(from_id)


def _unknown(d: Eui64) -> DeviceRefusal:
    return DeviceRefusal(d, "unknown_device", _UNKNOWN_DETAIL)


def _check(
    d: Eui64,
    f: DeviceFacts,
    target: CplEntry,
    header: OtaHeader,
    evaluator: PathEvaluator,
    entries: Mapping[str, CplEntry],
) -> DeviceRefusal | None:
    if f.current_entry_id is None or f.device_type is None:
        return DeviceRefusal(
            d,
            "no_inventory",
            "the device's type and current CPL entry are not "
            "recorded, so no path can be given; import its inventory first",
            no_path=True,
        )
    if f.device_type != target.device_type.name:
        return DeviceRefusal(
            d,
            "wrong_device_type",
            f"the device is a {f.device_type}, the image "
            f"is for {target.device_type.name} (CPL entry {target.entry_id})",
            no_path=True,
        )
    current = entries.get(f.current_entry_id)
    if current is None:
        return DeviceRefusal(
            d,
            "unknown_current_entry",
            f"the device's current CPL entry {f.current_entry_id!r} is not on the CPL",
            no_path=True,
        )
    if current.device_type.name != f.device_type or not same_model(current, target):
        return DeviceRefusal(
            d,
            "wrong_model",
            f"the device runs {current.entry_id}, a "
            f"{current.device_type.value} {current.model!r} of manufacturer "
            f"{current.manufacturer_code:04X}; the image is for a "
            f"{target.device_type.value} {target.model!r} of "
            f"{target.manufacturer_code:04X}",
            no_path=True,
        )
    low, high = header.min_hardware_version, header.max_hardware_version
    if low is not None and high is not None:
        if f.hardware_version is None:
            return DeviceRefusal(
                d,
                "hardware_version_unknown",
                "the image is for hardware versions "
                f"{low:#06x}..{high:#06x} and the device's is not recorded",
                no_path=True,
            )
        if not low <= f.hardware_version <= high:
            return DeviceRefusal(
                d,
                "hardware_version_out_of_range",
                f"hardware version {f.hardware_version:#06x} is outside {low:#06x}..{high:#06x}",
                no_path=True,
            )
    if current.entry_id == target.entry_id:
        return DeviceRefusal(
            d,
            "already_on_target",
            f"the device already runs CPL entry {target.entry_id}",
            path=(target.entry_id,),
        )
    if evaluator.permitted(current.entry_id):
        return None
    path = evaluator.path_from(current.entry_id)
    if path is None:
        return DeviceRefusal(
            d,
            "not_permitted_predecessor",
            f"CPL entry {target.entry_id} may not be installed over "
            f"{current.entry_id}, and no permitted path leads there",
            no_path=True,
        )
    return DeviceRefusal(
        d,
        "not_permitted_predecessor",
        f"CPL entry {target.entry_id} may not be installed over {current.entry_id}; "
        f"permitted path: {' -> '.join(path)}",
        path=tuple(path),
    )


def upgrade_path_for(
    svc: Services,
    *,
    from_entry_id: str | None,
    device_id: str | None,
    to_entry_id: str | None,
    image_id: str | None,
) -> list[str] | None:
    """GetUpgradePath: from an entry or a device's current entry, to an entry or an image's."""
    if device_id is not None:
        eui = Eui64.parse(device_id, field="device_id")
        facts = device_facts(svc.db, [eui]).get(eui)
        if facts is None:
            raise NotFound(f"device {eui} is not registered")
        if facts.current_entry_id is None:
            raise PolicyRefused(f"device {eui} has no current CPL entry in the inventory")
        from_entry_id = facts.current_entry_id
    if image_id is not None:
        entry = target_entry(svc, verified_image(svc, image_id))
        if entry is None:
            raise PolicyRefused(f"image {image_id} is not recorded on the CPL")
        to_entry_id = entry.entry_id
    if not from_entry_id:
        raise InvalidInput("name a from_entry_id or a device_id", field="from")
    if not to_entry_id:
        raise InvalidInput("name a to_entry_id or an image_id", field="to")
    return upgrade_path(svc, from_entry_id, to_entry_id)


def select_eligible(svc: Services, image: VerifiedImage, devices: Sequence[Eui64]) -> Selection:
    """Pathway screening, then key selection: the groups to sign for and every refusal,
    refusals in the order the devices were given, each group's devices in that order.

    Both are decided once per kind of device (``screen``; ``KeyChooser``: the key depends
    on the Supplier cell's SKI only), then given to each device of the kind. A device whose
    cells name several keys is refused before either (``ambiguous_supplier_cells``)."""
    kinds = device_kinds(svc.db, devices)
    target = target_entry(svc, image)
    verdicts = _verdicts(svc, image, target, devices, kinds)
    chooser = KeyChooser(
        svc, [f.supplier_ski for f, v in zip(kinds.kinds, verdicts, strict=True) if v is None]
    )
    first = _first_of_kinds(devices, kinds)
    per_kind: list[DeviceRefusal | KeyChoice | _Ambiguous] = []
    for k, (f, verdict) in enumerate(zip(kinds.kinds, verdicts, strict=True)):
        if verdict is not None:
            per_kind.append(_refused_kind(verdict, f))
            continue
        choice = chooser.decide(f.supplier_ski)
        per_kind.append(
            choice if isinstance(choice, KeyChoice) else DeviceRefusal(first[k], *choice)
        )
    members: dict[int, tuple[KeyChoice, list[Eui64]]] = {}  # by id(): one per key
    refused: list[DeviceRefusal] = []
    if _one_kind(kinds):  # the common case: no look-up per device
        only = per_kind[0]
        if isinstance(only, KeyChoice):
            members[id(only)] = (only, list(devices))
        else:
            refused = [_refusal_of(only, d) for d in devices]
    else:
        for d, o in _outcomes(devices, kinds.kind_of, per_kind):
            if isinstance(o, KeyChoice):
                group = members.get(id(o))
                if group is None:
                    group = members[id(o)] = (o, [])
                group[1].append(d)
            else:
                refused.append(_refusal_of(o, d))
    groups = tuple(
        KeyGroup(key=c.key, certificate=c.certificate, devices=tuple(m))
        for c, m in members.values()
    )
    return Selection(groups=groups, refused=tuple(refused))


def _first_of_kinds(devices: Sequence[Eui64], kinds: DeviceKinds) -> dict[int, Eui64]:
    """The first device of each kind (a kind's refusal names it)."""
    first: dict[int, Eui64] = {}
    for d, k in zip(devices, kinds.kind_of, strict=True):
        if k is not None and k not in first:
            first[k] = d
            if len(first) == len(kinds.kinds):
                break
    return first
