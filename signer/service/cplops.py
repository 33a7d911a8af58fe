"""CPL and inventory administration: imports, paths, graphs (database only, no token)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

from signer.cpl.dot import MAX_NODES, models_dot, node_count, to_dot
from signer.cpl.inventory import read_inventory_csv
from signer.cpl.model import CplEntry, DeviceType, check_entry_id
from signer.cpl.parse import RowError, absent_optional_columns, read_csv, read_json
from signer.cpl.paths import PathEvaluator, UpgradeGraph
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
    ``report.errors`` holds the first ``MAX_KEPT_ERRORS`` errors of them. ``models``: how
    many models (manufacturer code and model) the file's good rows name."""

    report: ImportReport
    bad_rows: int
    models: int = 0
    #: optional columns the CSV header left out: empty in every entry imported
    absent_columns: tuple[str, ...] = ()

    @property
    def entries(self) -> int:
        return self.report.added + self.report.updated + self.report.unchanged


def read_cpl_file(path: Path, fmt: str | None = None) -> Iterable[CplEntry | RowError]:
    """CSV or JSON by extension (or ``fmt``); CSV is streamed line by line.

    A file that cannot be read, or JSON that is not UTF-8, is an `InvalidInput` naming the
    file; a CSV line that is not UTF-8 is a `RowError` of its line like any other bad row.
    """
    kind = _kind(path, fmt)
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
    absent: tuple[str, ...] = ()
    if _kind(path, fmt) == "csv" and not cap.count:
        with path.open(encoding="utf-8", errors="replace", newline="") as f:
            absent = absent_optional_columns(f)
    return FileImport(report, cap.count, len(cap.models), absent)


def _kind(path: Path, fmt: str | None) -> str:
    return fmt or ("json" if path.suffix.lower() == ".json" else "csv")


def import_inventory(
    db: Database, path: Path, now: dt.datetime, *, progress: Callable[[int], None] | None = None
) -> tuple[int, list[RowError], int]:
    """(devices recorded, the first bad rows, how many rows were bad): all or nothing.
    ``progress`` is told of every row read."""
    cap = _ErrorCap()
    rows = cap.rows(_with_decoding_errors(read_inventory_csv, path))
    if progress is not None:
        rows = _counted(rows, progress)
    count, errors = devices.import_inventory(db, rows, now)
    return count, errors, cap.count


def _counted(items: Iterator[_T], progress: Callable[[int], None]) -> Iterator[_T]:
    for item in items:
        progress(1)
        yield item


_T = TypeVar("_T")


class _ErrorCap:
    """Passes rows through, keeping only the first ``MAX_KEPT_ERRORS`` RowErrors (the rest
    are counted): there are enough to make the import refuse, and memory stays bounded.

    ``count`` is the number of bad ROWS, not of errors: a row with three bad cells is one
    bad row (its errors come one after the other, as the readers yield them)."""

    def __init__(self) -> None:
        self.count = 0  # bad rows
        self.errors = 0
        self.models: set[tuple[int, str]] = set()  # (manufacturer code, model) of good rows
        self._last: tuple[str, int] | None = None

    def rows(self, items: Iterable[_T | RowError]) -> Iterator[_T | RowError]:
        for item in items:
            if isinstance(item, RowError):
                row = (item.unit, item.line)
                if row != self._last:
                    self.count += 1
                    self._last = row
                self.errors += 1
                if self.errors > MAX_KEPT_ERRORS:
                    continue
            elif isinstance(item, CplEntry):
                self.models.add((item.manufacturer_code, item.model))
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


@dataclass(frozen=True)
class DevicePath:
    """One device's way to the target: ``path`` (ends included) or, without one, ``reason``:
    ``not_registered``, ``no_current_entry`` (its inventory names none), ``no_path``."""

    device: Eui64
    current_entry_id: str | None
    path: tuple[str, ...] | None
    reason: str | None = None


def paths_for_devices(db: Database, euis: Sequence[Eui64], to_id: str) -> list[DevicePath]:
    """Every device's shortest permitted path from the CPL entry its inventory names to
    ``to_id``, from one reverse search (``PathEvaluator``); ``NotFound`` when ``to_id`` is
    not on the CPL."""
    graph = UpgradeGraph(cpl.all_entries(db))
    if to_id not in graph:
        raise NotFound(f"CPL entry {to_id!r} is not on the CPL")
    evaluator = PathEvaluator(graph, to_id)
    facts = devices.device_facts(db, euis)
    out = []
    for eui in euis:
        known = facts.get(eui)
        if known is None:
            out.append(DevicePath(eui, None, None, "not_registered"))
            continue
        entry = known.current_entry_id
        if entry is None:
            out.append(DevicePath(eui, None, None, "no_current_entry"))
            continue
        path = evaluator.path_from(entry)
        out.append(
            DevicePath(
                eui, entry, tuple(path) if path is not None else None, None if path else "no_path"
            )
        )
    return out


def graph_dot(
    db: Database, model: str | None, *, target: str | None = None, max_nodes: int = MAX_NODES
) -> tuple[str, str | None]:
    """The upgrade graph as DOT, and a warning when it was too large to draw entry by
    entry (more than ``max_nodes`` nodes): then it is drawn one node per model."""
    graph = UpgradeGraph(cpl.all_entries(db))
    if model is not None and not any(e.model == model for e in graph.entries()):
        raise NotFound(f"no CPL entry has model {model!r}")
    if target is not None and target not in graph:
        raise NotFound(f"CPL entry {target!r} is not on the CPL")
    counts = devices.devices_per_entry(db)
    nodes = node_count(graph, model=model, device_counts=counts)
    if nodes <= max_nodes:
        return to_dot(graph, model=model, device_counts=counts, target=target), None
    text, left_out = models_dot(graph, device_counts=counts, target=target, max_nodes=max_nodes)
    warning = (
        f"{nodes} nodes are too many to draw entry by entry (limit {max_nodes}): drawn one "
        "node per model"
        + (f", {left_out} model(s) with the fewest devices left out" if left_out else "")
        + "; use --model M for one model's entries"
    )
    return text, warning


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
