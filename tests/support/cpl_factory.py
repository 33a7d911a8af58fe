"""Building CPL entries and graphs for the tests, without going through the parser."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from signer.cpl.model import BandJoinOption, CplEntry, DeviceType
from signer.cpl.paths import UpgradeGraph


def digest(label: str) -> bytes:
    """A distinct, recognisable SHA-256 per label (what a Manufacturer Image hash looks like)."""
    return hashlib.sha256(label.encode()).digest()


def entry(
    entry_id: str,
    upgrade_from: Iterable[str] | None = (),
    *,
    model: str = "M1",
    firmware_version: str | None = None,
    image_hash: bytes | None = None,
    manufacturer_code: int = 0x121D,
    device_type: DeviceType = DeviceType.ESME,
    image_type: int | None = 0x0001,
    hardware_version: int | None = 0x0100,
) -> CplEntry:
    """``upgrade_from=()`` is MP231's N/A, ``None`` an entry whose pathway is not recorded."""
    return CplEntry(
        entry_id=entry_id,
        manufacturer_code=manufacturer_code,
        device_type=device_type,
        model=model,
        image_type=image_type,
        hardware_version=hardware_version,
        firmware_version=firmware_version if firmware_version is not None else "00000001",
        image_hash=image_hash if image_hash is not None else digest(entry_id),
        upgrade_from=frozenset(upgrade_from or ()),
        zigbee_chipset_vendor="Silicon Labs",
        zigbee_stack_version="EmberZNet 6.7",
        band_join_option=BandJoinOption.GHZ_2_4_ONLY,
        pathway_known=upgrade_from is not None,
    )


def graph(edges: dict[str, Iterable[str]], **kwargs: object) -> UpgradeGraph:
    """``{"B": ["A"]}``: entry B may be upgraded from A; ``{"A": []}``: A is an N/A root."""
    return UpgradeGraph(entry(k, v, **kwargs) for k, v in edges.items())  # type: ignore[arg-type]
