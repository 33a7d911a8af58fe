"""Device inventory files: what each device is and which CPL entry it runs.

CSV with a header naming ``INVENTORY_COLUMNS`` (any order, any case). Like the CPL reader,
every bad row is reported with its line and column, and nothing is read past a bad header.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from signer.cpl.model import DeviceType, check_entry_id
from signer.cpl.parse import RowError
from signer.errors import InvalidInput, excerpt
from signer.gbcs.eui import Eui64

INVENTORY_COLUMNS: Final = MappingProxyType(
    {
        "device_id": "the device's EUI-64, e.g. 00-DB-12-34-56-78-90-A0",
        "device_type": "ESME, GSME, Comms Hub, PPMID, HCALCS or SAPC",
        "hardware_version": "hardware version, 4 hex digits as the OTA header counts it",
        "current_entry_id": "the CPL entry ID of the firmware the device runs now",
    }
)


@dataclass(frozen=True)
class InventoryRow:
    device: Eui64
    device_type: DeviceType
    hardware_version: int
    current_entry_id: str


def read_inventory_csv(lines: Iterable[str]) -> Iterator[InventoryRow | RowError]:
    reader = csv.reader(lines, strict=True)
    header: list[str] | None = None
    seen: set[Eui64] = set()
    end = 0
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            if header is None:
                yield RowError(1, None, "no header line: the file is empty")
            return
        except csv.Error as exc:
            yield RowError(start, None, f"unreadable CSV: {exc}")
            return
        end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lstrip("\ufeff").lower() for c in cells]
            if sorted(header) != sorted(INVENTORY_COLUMNS):
                yield RowError(
                    start,
                    None,
                    f"the header must name exactly the columns {', '.join(INVENTORY_COLUMNS)}",
                )
                return
            continue
        if len(cells) != len(header):
            yield RowError(start, None, f"the row has {len(cells)} cells, the header {len(header)}")
            continue
        row = dict(zip(header, (c.strip() for c in cells), strict=True))
        try:
            parsed = _row(row)
        except InvalidInput as exc:
            yield RowError(start, exc.field, exc.message)
            continue
        if parsed.device in seen:
            yield RowError(start, "device_id", f"device {parsed.device} is listed twice")
            continue
        seen.add(parsed.device)
        yield parsed


def _row(row: dict[str, str]) -> InventoryRow:
    device = Eui64.parse(row["device_id"], field="device_id")
    device_type = DeviceType.parse(row["device_type"], field="device_type")
    text = row["hardware_version"].removeprefix("0x").removeprefix("0X")
    if len(text) != 4:
        raise InvalidInput(
            f"hardware version {excerpt(row['hardware_version'])} is not 4 hex digits",
            field="hardware_version",
        )
    if not all(c in "0123456789abcdefABCDEF" for c in text):  # int() would take "1_2 "
        raise InvalidInput(
            f"hardware version {excerpt(row['hardware_version'])} is not hexadecimal",
            field="hardware_version",
        )
    hardware_version = int(text, 16)
    entry = check_entry_id(row["current_entry_id"], field="current_entry_id")
    return InventoryRow(device, device_type, hardware_version, entry)
