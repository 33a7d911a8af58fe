"""Why a device was left out of a request: every refusal carries its reason."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.gbcs.eui import Eui64

# A device ID of a streamed batch that is not one (StreamActivation refuses it on its own).
INVALID_DEVICE_ID = "invalid_device_id"
DUPLICATE_DEVICE = "duplicate_device_in_batch"  # the same device earlier in its batch
# The device's Supplier digital-signing management cells name different keys: which one it
# trusts is unknown, so none is chosen (checked before anything else about the device).
AMBIGUOUS_SUPPLIER_CELLS = "ambiguous_supplier_cells"


@dataclass(frozen=True)
class DeviceRefusal:
    # the device; for INVALID_DEVICE_ID the ID as given (a short prefix of it)
    device: Eui64 | str
    reason: str  # machine-readable code
    detail: str  # for people
    # pathway refusals: the shortest permitted path (CPL entry IDs, current .. target), or
    # None with no_path=True when the target cannot be reached from where the device is
    path: tuple[str, ...] | None = None
    no_path: bool = False

    def as_tuple(self) -> tuple[str, str, str]:
        return (str(self.device), self.reason, self.detail)


def ambiguous_supplier_cells(device: Eui64, skis: Sequence[bytes]) -> DeviceRefusal:
    """The refusal of a device whose Supplier digital-signing management cells name the
    SKIs ``skis`` (two or more, different): the device decides the key, never a guess."""
    named = ", ".join(s.hex() for s in skis)
    return DeviceRefusal(
        device,
        AMBIGUOUS_SUPPLIER_CELLS,
        f"device {device} has {len(skis)} Supplier digital-signing management trust anchor "
        f"cells naming different keys (SKIs {named}), so which key it trusts is unknown; "
        "re-import its SR 6.24.1 security credentials",
    )
