"""CPL and inventory administration: imports, paths, graphs (database only, no token)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

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

MAX_KEPT_ERRORS = 1000
"""Bad rows an import keeps to report; beyond them it only counts (a file of garbage must
not fill memory with complaints)."""


@dataclass(frozen=True)
class FileImport:
    """What an import did (``report``: nothing, if ``bad_rows``) and how many rows were bad;
    ``report.errors`` holds the first ``MAX_KEPT_ERRORS`` of them."""

    report: ImportReport
    bad_rows: int


def read_cpl_file(path: Path, fmt: str | None = None) -> Iterable[CplEntry | RowError]:
    """CSV or JSON by extension (or ``fmt``); CSV is streamed line by line.

    A file that cannot be read, or JSON that is not UTF-8, is an `InvalidInput` naming the
    file; a CSV line that is not UTF-8 is a `RowError` of its line like any other bad row.
    """
    kind = fmt or ("json" if path.suffix.lower() == ".json" else "csv")
    if kind == "json":
        data = _read(path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"not UTF-8 text (byte {exc.start})", field=str(path)) from None
        return read_json(text)
    if kind != "csv":
        raise InvalidInput(f"unknown CPL format {kind!r}: csv or json", field="format")
    return _with_decoding_errors(read_csv, path)


def import_cpl(
    db: Database,
    path: Path,
    now: dt.datetime,
    *,
    fmt: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> FileImport:
    """Every entry of the file in one transaction, or, with any bad row, none."""
    cap = _ErrorCap()
    report = cpl.import_entries(db, cap.rows(read_cpl_file(path, fmt)), now, progress)
    return FileImport(report, cap.count)


def import_inventory(db: Database, path: Path, now: dt.datetime) -> tuple[int, list[RowError], int]:
    """(devices recorded, the first bad rows, how many rows were bad): all or nothing."""
    cap = _ErrorCap()
    rows = cap.rows(_with_decoding_errors(read_inventory_csv, path))
    count, errors = devices.import_inventory(db, rows, now)
    return count, errors, cap.count


_T = TypeVar("_T")


class _ErrorCap:
    """Passes rows through, keeping only the first ``MAX_KEPT_ERRORS`` RowErrors (the rest
    are counted): there are enough to make the import refuse, and memory stays bounded."""

    def __init__(self) -> None:
        self.count = 0

    def rows(self, items: Iterable[_T | RowError]) -> Iterator[_T | RowError]:
        for item in items:
            if isinstance(item, RowError):
                self.count += 1
                if self.count > MAX_KEPT_ERRORS:
                    continue
            yield item


def _with_decoding_errors(
    reader: Callable[[Iterable[str]], Iterator[_T | RowError]], path: Path
) -> Iterator[_T | RowError]:
    """``reader`` over the file's lines, decoded one at a time: a line that is not UTF-8 is
    reported as a bad row (with its line number) and read with U+FFFD in place of the bytes,
    so every other bad row is still found in the same pass."""
    bad: list[RowError] = []

    def lines(f: BinaryIO) -> Iterator[str]:
        for number, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad.append(RowError(number, None, f"not UTF-8 text (byte {exc.start} of the line)"))
                yield raw.decode("utf-8", errors="replace")

    with _open(path) as f:
        for item in reader(lines(f)):
            yield from bad
            bad.clear()
            yield item
        yield from bad


def _open(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except IsADirectoryError:
        raise InvalidInput("is a directory, not a file", field=str(path)) from None
    except OSError as exc:
        raise InvalidInput(f"cannot read it: {exc.strerror or exc}", field=str(path)) from None


def _read(path: Path) -> bytes:
    with _open(path) as f:
        return f.read()


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
