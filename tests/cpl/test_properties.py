"""Properties of the CPL and inventory readers: every bad row or file is a RowError or a
FormatError, never an exception of the csv or json modules or of int()."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from signer.cpl.inventory import read_inventory_csv
from signer.cpl.parse import COLUMNS, read_csv, read_json
from tests.support.strategies import MAX_MESSAGE_CHARS, only_signer_errors, property_settings

SETTINGS = property_settings(100)
HEADER = ",".join(COLUMNS)
GOOD = ["E-1", "121D", "ESME", "M1", "0000", "0001", "ACDCACDC", "ab" * 32, "N/A", "", "", ""]
cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(("", "N/A", "0x121D", "-123", "1_23", "١٢٣٤", "E-1;E-1", "E-1,E-2", '"')),
    st.just("9" * 5000),
)


def _check(rows: object) -> None:
    for row in rows:  # type: ignore[attr-defined]
        assert len(str(row)) <= MAX_MESSAGE_CHARS


@st.composite
def cpl_rows(draw: st.DrawFn) -> list[str]:
    row = list(GOOD)
    for _ in range(draw(st.integers(0, 3))):
        row[draw(st.integers(0, len(row) - 1))] = draw(cell)
    return row


def _csv_line(cells: list[str]) -> str:
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells) + "\n"


@SETTINGS
@given(st.lists(cpl_rows(), max_size=4), st.booleans(), st.text(max_size=30))
def test_cpl_csv_raises_only_signer_errors(rows: list[list[str]], quote: bool, junk: str) -> None:
    text = HEADER + "\n" + "".join(_csv_line(r) if quote else ",".join(r) + "\n" for r in rows)
    only_signer_errors(lambda t: _check(read_csv(t.splitlines(keepends=True))), text + junk)


@SETTINGS
@given(
    st.lists(cpl_rows(), max_size=3),
    st.sampled_from(("list", "object", "deep", "number", "raw")),
    st.text(max_size=40),
)
def test_cpl_json_raises_only_signer_errors(rows: list[list[str]], shape: str, junk: str) -> None:
    entries = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
    text = {
        "list": json.dumps(entries),
        "object": json.dumps({"entries": entries}),
        "deep": "[" * 100_000 + "]" * 100_000,
        "number": '[{"entry_id": ' + "9" * 5000 + "}]",
        "raw": junk,
    }[shape]
    only_signer_errors(lambda t: _check(read_json(t)), text)


inventory_cell = st.one_of(
    cell, st.sampled_from(("00-DB-12-34-56-78-90-A0", "ESME", "0001", " 0 1", "+001", "0x01"))
)


@SETTINGS
@given(st.lists(st.lists(inventory_cell, min_size=4, max_size=5), max_size=4))
def test_inventory_raises_only_signer_errors(rows: list[list[str]]) -> None:
    text = "device_id,device_type,hardware_version,current_entry_id\n" + "".join(
        _csv_line(r) for r in rows
    )
    only_signer_errors(lambda t: _check(read_inventory_csv(t.splitlines(keepends=True))), text)


@SETTINGS
@given(st.text(alphabet="0123456789abcdefABCDEF_+- x", min_size=4, max_size=6))
def test_inventory_hardware_versions_are_four_hex_digits(version: str) -> None:
    text = (
        "device_id,device_type,hardware_version,current_entry_id\n"
        f"00-DB-12-34-56-78-90-A0,ESME,{version},E-1\n"
    )
    (row,) = list(read_inventory_csv(text.splitlines(keepends=True)))
    digits = version.removeprefix("0x").removeprefix("0X").strip()
    if hasattr(row, "hardware_version"):
        assert len(digits) == 4 and int(digits, 16) == row.hardware_version
        assert all(c in "0123456789abcdefABCDEF" for c in digits)
