"""The devices a request names, as the wire gives them: checked before anything is looked up."""

from __future__ import annotations

from collections.abc import Sequence

from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64

# DUIS DeviceIDList holds at most 1,199,999 characters: 50,000 dashed EUI-64s.
MAX_DEVICES = 50_000


def parse_devices(device_ids: Sequence[str], *, field: str = "device_ids") -> list[Eui64]:
    """Parse a device list: non-empty, bounded, no duplicates, every EUI well-formed."""
    if not device_ids:
        raise InvalidInput("at least one device is needed", field=field)
    if len(device_ids) > MAX_DEVICES:
        raise InvalidInput(
            f"{len(device_ids)} devices exceed the DUIS limit of {MAX_DEVICES}", field=field
        )
    parse = Eui64.parse
    try:
        out = [parse(text, field=field) for text in device_ids]
    except InvalidInput as exc:  # named with its index only when one is wrong
        bad = next(i for i, text in enumerate(device_ids) if not _parses(text))
        raise InvalidInput(exc.message, field=f"{field}[{bad}]") from None
    if len({e.value for e in out}) != len(out):
        seen: set[bytes] = set()
        for i, eui in enumerate(out):
            if eui.value in seen:
                raise InvalidInput(f"device {eui} is listed twice", field=f"{field}[{i}]")
            seen.add(eui.value)
    return out


def _parses(text: str) -> bool:
    try:
        Eui64.parse(text)
    except InvalidInput:
        return False
    return True
