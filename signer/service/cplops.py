"""CPL and inventory administration: imports, paths, graphs (database only, no token)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from signer.cpl.dot import to_dot
from signer.cpl.inventory import read_inventory_csv
from signer.cpl.model import CplEntry, DeviceType, check_entry_id
from signer.cpl.parse import RowError, read_csv, read_json
from signer.cpl.paths import UpgradeGraph
from signer.duis.request import RequestId
from signer.errors import InvalidInput, NotFound, PolicyRefused
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import parse_ota_header
from signer.registry import activations, cpl, devices, library
from signer.registry.cpl import ImportReport
from signer.registry.db import Database


def read_cpl_file(path: Path, fmt: str | None = None) -> Iterable[CplEntry | RowError]:
    """CSV or JSON by extension (or ``fmt``); CSV is streamed line by line."""
    kind = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    if kind == "json":
        return read_json(path.read_text(encoding="utf-8"))
    if kind != "csv":
        raise InvalidInput(f"unknown CPL format {kind!r}: csv or json", field="format")
    return _csv_lines(path)


def _csv_lines(path: Path) -> Iterable[CplEntry | RowError]:
    with path.open(encoding="utf-8", newline="") as f:
        yield from read_csv(f)


def import_cpl(
    db: Database,
    path: Path,
    now: dt.datetime,
    *,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    return cpl.import_entries(db, read_cpl_file(path, fmt), now, progress)


def import_inventory(db: Database, path: Path, now: dt.datetime) -> tuple[int, list[RowError]]:
    with path.open(encoding="utf-8", newline="") as f:
        return devices.import_inventory(db, read_inventory_csv(f), now)


def set_device_inventory(
    db: Database,
    eui_text: str,
    now: dt.datetime,
    *,
    device_type: str | None,
    hardware_version: str | None,
    current_entry: str | None,
) -> Eui64:
    """One device's inventory, as an operator types it (hardware version in hex); returns
    the device's EUI. What is not given stays as it was."""
    hw = None
    if hardware_version is not None:
        try:
            hw = int(hardware_version, 16)
        except ValueError:
            raise InvalidInput("not hexadecimal", field="hardware_version") from None
    eui = Eui64.parse(eui_text)
    devices.set_inventory(
        db,
        eui,
        now=now,
        hardware_version=hw,
        device_type=DeviceType.parse(device_type).name if device_type else None,
        current_entry_id=check_entry_id(current_entry) if current_entry else None,
    )
    return eui


def path_between(db: Database, from_id: str, to_id: str) -> list[str] | None:
    graph = UpgradeGraph(cpl.all_entries(db))
    for entry_id in (from_id, to_id):
        if entry_id not in graph:
            raise NotFound(f"CPL entry {entry_id!r} is not on the CPL")
    return graph.shortest_path(from_id, to_id)


def graph_dot(db: Database, model: str | None) -> str:
    graph = UpgradeGraph(cpl.all_entries(db))
    if model is not None and not any(e.model == model for e in graph.entries()):
        raise NotFound(f"no CPL entry has model {model!r}")
    return to_dot(graph, model=model, device_counts=devices.devices_per_entry(db))


def report_json(report: ImportReport) -> str:
    return json.dumps(
        {
            "added": report.added,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "errors": [str(e) for e in report.errors],
        }
    )


def record_activation_results(
    db: Database, supplier: Eui64, request_ids: Iterable[str], now: dt.datetime
) -> list[str]:
    """Devices whose 11.3 activation succeeded now run the image's CPL entry."""
    done = []
    for text in request_ids:
        rid = RequestId.parse(text)
        if rid.originator != supplier:
            raise InvalidInput(f"{rid} was not issued by {supplier}", field="request_id")
        issued = activations.get(db, supplier, rid.counter)
        if issued is None or issued.device != rid.target:
            raise NotFound(f"no SR 11.3 request {rid} was issued")
        if issued.pre_command_signed_at is None:
            raise PolicyRefused(
                f"the pre-command of {rid} was never signed: the activation cannot have been sent"
            )
        if issued.cancel:
            done.append(f"{rid.target}: cancellation, firmware unchanged")
            continue
        image = library.get(db, issued.image_id)
        entries = (
            []
            if image is None
            else cpl.matching(
                db, bytes.fromhex(issued.image_id), parse_ota_header(image.header_bytes)
            )
        )
        if len(entries) != 1:
            raise PolicyRefused(
                f"image {issued.image_id} has {len(entries)} CPL entries; "
                "cannot tell which one the device now runs"
            )
        devices.set_inventory(
            db,
            rid.target,
            device_type=None,
            hardware_version=None,
            current_entry_id=entries[0].entry_id,
            now=now,
        )
        done.append(f"{rid.target}: now runs CPL entry {entries[0].entry_id}")
    return done
