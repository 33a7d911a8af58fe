"""Why a device was left out of a request: every refusal carries its reason."""

from __future__ import annotations

from dataclasses import dataclass

from signer.gbcs.eui import Eui64


@dataclass(frozen=True)
class DeviceRefusal:
    device: Eui64
    reason: str  # machine-readable code
    detail: str  # for people
    # pathway refusals: the shortest permitted path (CPL entry IDs, current .. target), or
    # None with no_path=True when the target cannot be reached from where the device is
    path: tuple[str, ...] | None = None
    no_path: bool = False

    def as_tuple(self) -> tuple[str, str, str]:
        return (str(self.device), self.reason, self.detail)
