"""Read CPL/FIR entries from CSV or JSON, one entry or one complaint at a time.

Both readers are generators so a 100,000-row file never sits in memory as entries: they keep
only the set of entry IDs seen (to report duplicates). They yield a ``RowError`` for every bad
cell rather than stopping at the first, so one pass tells the user everything to fix; the
caller imports nothing when any error came out (the registry's "nothing half-imported").
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from signer.cpl.model import (
    NOT_APPLICABLE,
    BandJoinOption,
    CplEntry,
    DeviceType,
    check_entry_id,
)
from signer.errors import FormatError, InvalidInput

COLUMNS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "entry_id": "CPL entry ID, which identifies the firmware: 1-64 printable ASCII characters",
        "manufacturer_code": (
            "ZigBee manufacturer code, 4 hex digits (= OTA header manufacturer code)"
        ),
        "device_type": (
            "ESME, GSME, Comms Hub, PPMID, HCALCS or SAPC (MP231 names accepted, any case)"
        ),
        "model": "device model as the CPL writes it",
        "image_type": (
            "OTA image type of the model, 4 hex digits; may be empty (then not verifiable)"
        ),
        "hardware_version": "hardware version, 4 hex digits as the OTA header counts it",
        "firmware_version": (
            "firmware version as the CPL writes it; 8 hex digits = OTA file version"
        ),
        "image_hash": "SHA-256 of the Manufacturer Image, 64 hex digits",
        "upgrade_from": "entry IDs this entry may be upgraded from, ';'-separated; N/A for none; "
        "empty = not recorded",
        "zigbee_chipset_vendor": "ZigBee chipset vendor; may be empty (MP231: SSC-only data)",
        "zigbee_stack_version": "ZigBee stack version; may be empty (MP231: SSC-only data)",
        "band_join_option": "one of the six MP231 §3 join options; may be empty for old entries",
    }
)
"""The columns of a CPL file (CSV header / JSON keys), in the order we write them."""

OPTIONAL_COLUMNS: Final = frozenset(
    {
        "image_type",
        "upgrade_from",
        "zigbee_chipset_vendor",
        "zigbee_stack_version",
        "band_join_option",
    }
)
"""Columns whose cell may be empty, and which a CSV header or a JSON object may leave out
(extracts often lack them)."""

UPGRADE_FROM_SEPARATOR: Final = ";"
MAX_TEXT_CHARS: Final = 128
_HEX4 = re.compile(r"(?:0[xX])?([0-9A-Fa-f]{4})")
_HEX = re.compile(r"[0-9A-Fa-f]*")


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row or cell.

    ``line``: for CSV the physical line where the row starts (the header is line 1; a quoted
    cell spanning lines counts them all, as long as the input yields one physical line per
    item, as a text file opened with ``newline=""`` does). For JSON the 0-based index of the
    object in the entries list (``unit`` says which). ``column`` is None when the fault is the
    row as a whole.
    """

    line: int
    column: str | None
    message: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.unit} {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


def read_csv(lines: Iterable[str]) -> Iterator[CplEntry | RowError]:
    """Entries of a CSV file whose first non-blank row is a header naming the ``COLUMNS``.

    Columns may come in any order and their names in any case. Quoting is strict (text after
    a closing quote is an error, not glued on). Blank rows (also rows of empty cells, as
    spreadsheets export) are skipped. A header that misses or repeats a column, or
    names one we do not know, is one error and ends the file: no row could be read safely.
    """
    reader = csv.reader(lines, strict=True)
    seen: set[str] = set()
    header: list[str] | None = None
    end = 0  # physical line where the previous row ended
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if reader.line_num == end:  # the reader did not advance: give up, do not spin
                yield RowError(start, None, f"unreadable CSV: {exc}")
                return
            end = reader.line_num
            yield RowError(start, None, f"unreadable CSV: {exc}")
            continue
        end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip().lstrip("\ufeff").strip().lower() for c in cells]
            problem = _header_problem(header)
            if problem:
                yield RowError(start, None, problem)
                return
            continue
        if len(cells) != len(header):
            yield RowError(start, None, f"the row has {len(cells)} cells, the header {len(header)}")
            continue
        row = dict.fromkeys(OPTIONAL_COLUMNS, "") | dict(zip(header, cells, strict=True))
        yield from _row(row, start, seen, "line")
    if header is None:
        yield RowError(1, None, "no header line: the file is empty")


def absent_optional_columns(lines: Iterable[str]) -> tuple[str, ...]:
    """The optional columns a CSV file's header leaves out: empty in every entry it holds,
    which a re-import writes over what was stored (an importer should say so)."""
    try:
        for cells in csv.reader(lines, strict=True):
            if any(c.strip() for c in cells):
                header = {c.strip().lstrip("\ufeff").strip().lower() for c in cells}
                return tuple(c for c in COLUMNS if c in OPTIONAL_COLUMNS and c not in header)
    except csv.Error:
        pass  # read_csv reports it
    return ()


def read_json(text: str) -> Iterator[CplEntry | RowError]:
    """Entries of a JSON list of objects keyed like ``COLUMNS``, or of ``{"entries": [...]}``.

    Every value is a string (hex fields too: a JSON number would leave open whether 1234
    meant 0x1234) or null for an empty cell; ``upgrade_from`` may also be a list of entry
    IDs (``["N/A"]`` for none). Errors name the object by its 0-based index in the list.
    Text that is not JSON, or not one of those two shapes, raises ``FormatError`` at once;
    so does JSON nested too deeply for the parser or holding a number of thousands of digits
    (no value is a number, and converting one would cost quadratic time).
    """
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_int=_json_int)
    except json.JSONDecodeError as exc:
        raise FormatError(
            f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            field="cpl",
            offset=exc.pos,
        ) from None
    except _DuplicateKey as exc:
        raise FormatError(
            f"a JSON object repeats the key {_shown(exc.args[0])}", field="cpl"
        ) from None
    except _HugeNumber as exc:
        raise FormatError(
            f"a JSON number has {exc.args[0]} digits: CPL values are strings", field="cpl"
        ) from None
    except RecursionError:
        raise FormatError("the JSON is nested too deeply to read", field="cpl") from None
    if isinstance(doc, dict):
        extra = sorted(set(doc) - {"entries"})
        if extra or "entries" not in doc:
            keys = sorted(doc)
            shown = ", ".join(_shown(k) for k in keys[:_KEYS_SHOWN])
            more = f" and {len(keys) - _KEYS_SHOWN} more" if len(keys) > _KEYS_SHOWN else ""
            raise FormatError(
                'expected a list of entries or {"entries": [...]}, got an object with keys '
                f"[{shown}]{more}",
                field="cpl",
            )
        doc = doc["entries"]
    if not isinstance(doc, list):
        raise FormatError(f"expected a list of entries, got {type(doc).__name__}", field="cpl")
    return _json_rows(doc)


def _json_rows(items: list[Any]) -> Iterator[CplEntry | RowError]:
    seen: set[str] = set()
    unit = "entry index"
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            yield RowError(
                index, None, f"an entry must be an object, got {type(item).__name__}", unit
            )
            continue
        bad = False
        for key in sorted(set(item) - set(COLUMNS)):
            shown = key if len(key) <= 40 else key[:37] + "..."
            yield RowError(index, shown, f"unknown key; known: {', '.join(COLUMNS)}", unit)
            bad = True
        for key in COLUMNS:
            if key not in item and key not in OPTIONAL_COLUMNS:
                yield RowError(index, key, "missing", unit)
                bad = True
        cells: dict[str, str] = {}
        for key in COLUMNS:
            value = item.get(key)
            if value is None:
                cells[key] = ""
            elif isinstance(value, str):
                cells[key] = value
            elif key == "upgrade_from" and isinstance(value, list):
                if not value:
                    yield RowError(
                        index,
                        key,
                        'an empty list: write ["N/A"] for no '
                        "predecessor, or null when not recorded",
                        unit,
                    )
                    bad = True
                elif not all(isinstance(v, str) for v in value):
                    yield RowError(index, key, "the list must hold entry ID strings", unit)
                    bad = True
                elif any(UPGRADE_FROM_SEPARATOR in v for v in value):
                    yield RowError(index, key, "a list item holds ';': give one ID per item", unit)
                    bad = True
                else:
                    cells[key] = UPGRADE_FROM_SEPARATOR.join(value)
            else:
                hint = " (hex fields are strings of hex digits)" if isinstance(value, int) else ""
                yield RowError(
                    index, key, f"must be a string, got {type(value).__name__}{hint}", unit
                )
                bad = True
        if bad:
            entry_id = cells.get("entry_id", "").strip()
            if entry_id:
                seen.add(entry_id)
            continue
        yield from _row(cells, index, seen, unit)


class _DuplicateKey(ValueError):
    pass


class _HugeNumber(ValueError):
    pass


def _json_int(text: str) -> int:
    if len(text) > 40:  # beyond any 128-bit value: refused before int() spends time on it
        raise _HugeNumber(len(text))
    return int(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _header_problem(header: list[str]) -> str | None:
    problems = []
    unknown = [c for c in header if c not in COLUMNS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(c) for c in unknown)}")
    missing = [c for c in COLUMNS if c not in header and c not in OPTIONAL_COLUMNS]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:
        problems.append(f"repeated column(s) {', '.join(repeated)}")
    if not problems:
        return None
    return "; ".join(problems) + (
        f" (expected: {', '.join(COLUMNS)}; optional: {', '.join(sorted(OPTIONAL_COLUMNS))})"
    )


class _Row:
    """Collects the errors of one row while its cells are converted."""

    def __init__(self, cells: Mapping[str, str], line: int, unit: str):
        self.cells = cells
        self.line = line
        self.unit = unit
        self.errors: list[RowError] = []

    def fail(self, column: str, message: str) -> None:
        self.errors.append(RowError(self.line, column, message, self.unit))

    def text(self, column: str, *, optional: bool = False) -> str:
        value = self.cells[column].strip()
        if not value and not optional:
            self.fail(column, "empty")
        elif len(value) > MAX_TEXT_CHARS:
            self.fail(column, f"longer than {MAX_TEXT_CHARS} characters")
        elif not value.isprintable():
            self.fail(column, f"holds a control character: {value!r}")
        return value

    def hex16(self, column: str, *, optional: bool = False) -> int | None:
        value = self.cells[column].strip()
        if not value:
            if not optional:
                self.fail(column, "empty: 4 hex digits expected")
            return None
        m = _HEX4.fullmatch(value)
        if m is None:
            self.fail(column, f"{_shown(value)} is not 4 hex digits")
            return None
        return int(m.group(1), 16)

    def sha256(self, column: str) -> bytes | None:
        value = self.cells[column].strip()
        if not _HEX.fullmatch(value):
            self.fail(column, f"{_shown(value)} is not hex")
            return None
        if len(value) != 64:
            self.fail(column, f"{len(value)} hex digits; a SHA-256 hash has 64")
            return None
        return bytes.fromhex(value)

    def convert(self, column: str, parse: Any) -> Any:
        try:
            return parse(self.cells[column].strip(), field=column)
        except InvalidInput as exc:
            self.fail(column, exc.message)
            return None

    def predecessors(self, column: str, entry_id: str) -> frozenset[str] | None:
        """The IDs, an empty set for N/A, None when not recorded (empty) or wrong."""
        value = self.cells[column].strip()
        if not value:
            return None
        if value.upper() == NOT_APPLICABLE:
            return frozenset()
        if UPGRADE_FROM_SEPARATOR not in value and "," in value:
            self.fail(column, f"separate entry IDs with ';', not ',': {_shown(value)}")
            return None
        ids: list[str] = []
        for part in (p.strip() for p in value.split(UPGRADE_FROM_SEPARATOR)):
            if not part:
                self.fail(column, f"an empty entry ID in {_shown(value)}")
            elif part.upper() == NOT_APPLICABLE:
                self.fail(column, "'N/A' stands alone: it cannot be listed with entry IDs")
            elif part == entry_id:
                self.fail(column, f"entry {entry_id} lists itself")
            elif part in ids:
                self.fail(column, f"lists {part} twice")
            else:
                try:
                    ids.append(check_entry_id(part, field=column))
                except InvalidInput as exc:
                    self.fail(column, exc.message)
        return frozenset(ids)


def _row(
    cells: Mapping[str, str], line: int, seen: set[str], unit: str
) -> Iterator[CplEntry | RowError]:
    row = _Row(cells, line, unit)
    entry_id = row.convert("entry_id", check_entry_id)
    if entry_id is not None:
        if entry_id in seen:
            row.fail("entry_id", f"duplicate entry ID {entry_id}: it appeared earlier in the file")
        seen.add(entry_id)
    manufacturer_code = row.hex16("manufacturer_code")
    device_type = row.convert("device_type", DeviceType.parse)
    model = row.text("model")
    image_type = row.hex16("image_type", optional=True)
    hardware_version = row.hex16("hardware_version")
    firmware_version = row.text("firmware_version")
    image_hash = row.sha256("image_hash")
    upgrade_from = row.predecessors("upgrade_from", entry_id or "")
    vendor = row.text("zigbee_chipset_vendor", optional=True)
    stack = row.text("zigbee_stack_version", optional=True)
    band = None
    if cells["band_join_option"].strip():
        band = row.convert("band_join_option", BandJoinOption.parse)
        if band is BandJoinOption.DUAL_BAND and device_type not in (None, DeviceType.COMMS_HUB):
            row.fail(
                "band_join_option",
                f"'Dual Band' (both bands at once) is for Comms Hubs only (MP231 §3), "
                f"not a {device_type.value}; an old 'Dual Band' means a Multi MAC option",
            )
    if row.errors:
        yield from row.errors
        return
    assert entry_id is not None and manufacturer_code is not None and device_type is not None
    assert image_hash is not None
    try:
        yield CplEntry(
            entry_id=entry_id,
            manufacturer_code=manufacturer_code,
            device_type=device_type,
            model=model,
            image_type=image_type,
            hardware_version=hardware_version,
            firmware_version=firmware_version,
            image_hash=image_hash,
            upgrade_from=upgrade_from if upgrade_from is not None else frozenset(),
            zigbee_chipset_vendor=vendor,
            zigbee_stack_version=stack,
            band_join_option=band,
            pathway_known=upgrade_from is not None,
        )
    except InvalidInput as exc:  # a rule of the entry itself that the cells did not catch
        yield RowError(line, exc.field, exc.message, unit)


_KEYS_SHOWN = 5  # of an object's keys, in a message about them


def _shown(text: str) -> str:
    return repr(text if len(text) <= 70 else text[:70] + "...")
