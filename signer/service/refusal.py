"""Why a device was left out of a request: every refusal carries its reason."""

from __future__ import annotations

from dataclasses import dataclass

from signer.gbcs.eui import Eui64

# A device ID of a streamed batch that is not one (StreamActivation refuses it on its own).
INVALID_DEVICE_ID = "invalid_device_id"
DUPLICATE_DEVICE = "duplicate_device_in_batch"  # the same device earlier in its batch


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
