"""CPL import from CSV and JSON: good files, every kind of bad row, and streaming.

The files are written out by hand; line numbers are counted in the text below, not taken
from the parser.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from signer.cpl.model import BandJoinOption, CplEntry, DeviceType
from signer.cpl.parse import COLUMNS, OPTIONAL_COLUMNS, RowError, read_csv, read_json
from signer.errors import FormatError

HEADER = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option"
)
H1 = hashlib.sha256(b"manufacturer image 1").hexdigest()
H2 = hashlib.sha256(b"manufacturer image 2").hexdigest()


def lines(text: str) -> io.StringIO:
    """What ``open(path, newline="")`` would give the reader."""
    return io.StringIO(text, newline="")


def split(results: Iterable[CplEntry | RowError]) -> tuple[list[CplEntry], list[RowError]]:
    entries: list[CplEntry] = []
    errors: list[RowError] = []
    for r in results:
        if isinstance(r, CplEntry):
            entries.append(r)
        else:
            errors.append(r)
    return entries, errors


def where(errors: list[RowError]) -> list[tuple[int, str | None]]:
    return [(e.line, e.column) for e in errors]


GOOD = (
    f"{HEADER}\n"
    f"CPL-1,121D,ESME,AcmeMeter 3,0001,0100,01000000,{H1},N/A,Silicon Labs,EmberZNet 6.7,"
    "2.4 GHz Only\n"
    "CPL-2,0x121d,Electricity Smart Metering Equipment,AcmeMeter 3,,0x0100,01000000,"
    f"{H2.upper()},CPL-1;OLD-9,,,\n"
)


def test_good_rows_give_entries_with_the_written_values() -> None:
    entries, errors = split(read_csv(lines(GOOD)))
    assert errors == []
    one, two = entries
    assert one.entry_id == "CPL-1"
    assert one.manufacturer_code == 0x121D
    assert one.device_type is DeviceType.ESME
    assert one.model == "AcmeMeter 3"
    assert one.image_type == 0x0001
    assert one.hardware_version == 0x0100
    assert one.firmware_version == "01000000"
    assert one.image_hash == hashlib.sha256(b"manufacturer image 1").digest()
    assert one.upgrade_from == frozenset() and one.pathway_known and one.is_root
    assert one.zigbee_chipset_vendor == "Silicon Labs"
    assert one.zigbee_stack_version == "EmberZNet 6.7"
    assert one.band_join_option is BandJoinOption.GHZ_2_4_ONLY
    # same version string, other hash: a second entry in its own right
    assert two.firmware_version == one.firmware_version
    assert two.image_hash == hashlib.sha256(b"manufacturer image 2").digest()
    assert two.image_type is None
    assert two.upgrade_from == {"CPL-1", "OLD-9"}
    assert (two.zigbee_chipset_vendor, two.zigbee_stack_version, two.band_join_option) == (
        "",
        "",
        None,
    )


def test_empty_upgrade_from_is_not_recorded_rather_than_na() -> None:
    text = f"{HEADER}\nCPL-1,121D,ESME,M,0001,0100,01000000,{H1},,,,\n"
    [e] = read_csv(lines(text))
    assert isinstance(e, CplEntry)
    assert e.upgrade_from == frozenset() and not e.pathway_known and not e.is_root


def test_header_in_any_order_and_case_with_a_bom_and_blank_lines() -> None:
    cols = HEADER.split(",")
    order = list(reversed(cols))
    row = dict(
        zip(
            cols,
            [
                "CPL-1",
                "121D",
                "gsme",
                "G",
                "0002",
                "0200",
                "00000002",
                H1,
                "n/a",
                "",
                "",
                "sub-ghz only",
            ],
            strict=True,
        )
    )
    text = (
        "\ufeff"
        + ",".join(c.upper() for c in order)
        + "\r\n\r\n"
        + ",".join(row[c] for c in order)
        + "\r\n,,,,,,,,,,,\r\n"
    )
    [e] = read_csv(lines(text))
    assert isinstance(e, CplEntry)
    assert (e.device_type, e.band_join_option, e.is_root) == (
        DeviceType.GSME,
        BandJoinOption.SUB_GHZ_ONLY,
        True,
    )


def good_row(entry_id: str, **cells: str) -> str:
    values = {
        "entry_id": entry_id,
        "manufacturer_code": "121D",
        "device_type": "ESME",
        "model": "M",
        "image_type": "0001",
        "hardware_version": "0100",
        "firmware_version": "01000000",
        "image_hash": H1,
        "upgrade_from": "N/A",
        "zigbee_chipset_vendor": "",
        "zigbee_stack_version": "",
        "band_join_option": "2.4 GHz Only",
    }
    values.update(cells)
    return ",".join(values[c] for c in HEADER.split(","))


BAD = (
    "\n".join(
        [
            HEADER,  # 1
            good_row("CPL-1"),  # 2
            good_row("CPL-2", upgrade_from="CPL-1"),  # 3
            good_row("CPL-3", manufacturer_code="12G4"),  # 4  bad hex
            good_row("CPL-4", image_hash=H1[:62]),  # 5  short hash
            good_row("CPL-5", device_type="IHD"),  # 6
            good_row("CPL-6", band_join_option="Tri Band"),  # 7
            good_row("CPL-1"),  # 8  duplicate
            good_row("CPL-7", upgrade_from='"CPL-1,CPL-2"'),  # 9  wrong separator
            good_row("CPL-8", upgrade_from="N/A;CPL-1"),  # 10
            good_row("CPL-9").rsplit(",", 1)[0],  # 11 a cell short
            'CPL-10,121D,ESME,"Meter',  # 12 a quoted
            'X"' + good_row("CPL-10").split(",M", 1)[1],  # 13 ... line break
            "",  # 14 blank
            good_row("CPL-11", upgrade_from="CPL-11"),  # 15 itself
            good_row("CPL-12", device_type="Comms Hub", band_join_option="Dual Band"),  # 16 fine
            good_row("CPL-13", band_join_option="Dual Band"),  # 17 ESME: no
            good_row("CPL-14", image_hash="zz" * 32),  # 18 not hex
            good_row("CPL-15", hardware_version=""),  # 19 missing value
            good_row("CPL-16", upgrade_from="CPL-1;;CPL-2"),  # 20
            good_row("CPL-17", zigbee_chipset_vendor="Silicon\tLabs"),  # 21
            good_row("CPL-18", upgrade_from="CPL-1;CPL-1"),  # 22
        ]
    )
    + "\n"
)


def test_every_bad_row_is_reported_with_line_and_column() -> None:
    entries, errors = split(read_csv(lines(BAD)))
    assert [e.entry_id for e in entries] == ["CPL-1", "CPL-2", "CPL-12"]
    assert where(errors) == [
        (4, "manufacturer_code"),
        (5, "image_hash"),
        (6, "device_type"),
        (7, "band_join_option"),
        (8, "entry_id"),
        (9, "upgrade_from"),
        (10, "upgrade_from"),
        (11, None),
        (12, "model"),  # the quoted model holds a line break: a row starts where it starts
        (15, "upgrade_from"),
        (17, "band_join_option"),
        (18, "image_hash"),
        (19, "hardware_version"),
        (20, "upgrade_from"),
        (21, "zigbee_chipset_vendor"),
        (22, "upgrade_from"),
    ]
    by_line = {e.line: e.message for e in errors}
    assert "12G4" in by_line[4]
    assert "62" in by_line[5] and "64" in by_line[5]
    assert "IHD" in by_line[6] and "PPMID" in by_line[6]
    assert "Tri Band" in by_line[7] and "Sub-GHz Only" in by_line[7]
    assert "duplicate" in by_line[8] and "CPL-1" in by_line[8]
    assert "';'" in by_line[9]
    assert "N/A" in by_line[10]
    assert "12" in by_line[11] and "11" in by_line[11]
    assert "Comms Hub" in by_line[17]
    assert str(errors[0]).startswith("line 4, column manufacturer_code: ")


def test_a_row_with_several_faults_reports_each() -> None:
    text = HEADER + "\n" + good_row("", manufacturer_code="XYZ", image_hash="00") + "\n"
    _, errors = split(read_csv(lines(text)))
    assert where(errors) == [(2, "entry_id"), (2, "manufacturer_code"), (2, "image_hash")]


def test_quoted_cell_over_two_lines_keeps_the_count() -> None:
    text = (
        HEADER
        + "\n"
        + good_row("CPL-1", model='"two\nlines"')
        + "\n"  # lines 2-3: a control character
        + good_row("CPL-2", device_type="toaster")
        + "\n"
    )  # line 4
    _, errors = split(read_csv(lines(text)))
    assert where(errors) == [(2, "model"), (4, "device_type")]


def test_optional_columns_may_be_left_out_of_the_header() -> None:
    """As a JSON object may leave their keys out: CPL extracts often lack them."""
    required = [c for c in COLUMNS if c not in OPTIONAL_COLUMNS]
    text = ",".join(required) + "\n" + f"CPL-9,121D,ESME,M-1,0101,00000009,{H1}\n"
    [entry] = list(read_csv(lines(text)))
    assert isinstance(entry, CplEntry), entry
    assert (entry.entry_id, entry.model, entry.image_hash.hex()) == ("CPL-9", "M-1", H1)
    assert entry.image_type is None and entry.band_join_option is None
    assert not entry.upgrade_from


@pytest.mark.parametrize(
    ("header", "named"),
    [
        (HEADER.replace(",hardware_version", ""), ["hardware_version"]),
        (HEADER + ",colour", ["colour"]),
        (HEADER + ",model", ["model"]),
        (HEADER.replace("image_hash", "hash"), ["'hash'", "image_hash"]),
    ],
)
def test_header_problems_are_one_error_at_line_1(header: str, named: list[str]) -> None:
    text = header + "\n" + good_row("CPL-1") + "\n" + good_row("CPL-1") + "\n"
    results = list(read_csv(lines(text)))
    assert len(results) == 1
    [err] = results
    assert isinstance(err, RowError)
    assert (err.line, err.column) == (1, None)
    for name in named:
        assert name in err.message


def test_unreadable_rows_are_reported_and_reading_goes_on() -> None:
    text = (
        "\n".join(
            [
                HEADER,  # 1
                good_row("CPL-1", model='"x"y'),  # 2 text after a closing quote
                good_row("CPL-2", model="m" * 200_000),  # 3 beyond the csv module's field limit
                good_row("CPL-3"),  # 4 fine
                good_row("CPL-4", model='"never closed'),  # 5
            ]
        )
        + "\n"
    )
    entries, errors = split(read_csv(lines(text)))
    assert [e.entry_id for e in entries] == ["CPL-3"]
    assert where(errors) == [(2, None), (3, None), (5, None)]


def test_empty_file_is_an_error() -> None:
    assert where(split(read_csv(lines("")))[1]) == [(1, None)]


def test_csv_streams() -> None:
    """An endless file still yields its first entries: nothing waits for the end."""

    def endless() -> Iterator[str]:
        yield HEADER + "\n"
        for i in itertools.count():
            yield good_row(f"E{i}") + "\n"

    first = list(itertools.islice(read_csv(endless()), 3))
    assert [e.entry_id for e in first if isinstance(e, CplEntry)] == ["E0", "E1", "E2"]


def chain_rows(n: int) -> Iterator[str]:
    yield HEADER + "\n"
    for i in range(n):
        yield good_row(f"E{i}", upgrade_from=f"E{i - 1}" if i else "N/A") + "\n"


def test_100k_rows() -> None:
    count = 0
    for r in read_csv(chain_rows(100_000)):
        assert isinstance(r, CplEntry)
        count += 1
    assert count == 100_000


def test_memory_does_not_grow_with_the_entries() -> None:
    # 10,000 entries held measure ~6.7 MB here; streaming keeps only the seen IDs (~1 MB).
    tracemalloc.start()
    try:
        for _ in read_csv(chain_rows(10_000)):
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3_000_000, peak


# --- JSON -----------------------------------------------------------------------------------


def obj(entry_id: str, **values: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "entry_id": entry_id,
        "manufacturer_code": "121D",
        "device_type": "PPMID",
        "model": "P",
        "image_type": "0084",
        "hardware_version": "0001",
        "firmware_version": "00000003",
        "image_hash": H2,
        "upgrade_from": "N/A",
        "zigbee_chipset_vendor": "Silicon Labs",
        "zigbee_stack_version": "6.7",
        "band_join_option": "Multi MAC Selection - Either",
    }
    out.update(values)
    return out


def test_json_list_and_entries_object_give_the_same_entries() -> None:
    items = [
        obj("J-1"),
        obj("J-2", upgrade_from=["J-1", "OLD"]),
        obj("J-3", upgrade_from="J-1;J-2"),
    ]
    a = list(read_json(json.dumps(items)))
    b = list(read_json(json.dumps({"entries": items})))
    assert a == b
    assert all(isinstance(e, CplEntry) for e in a)
    assert [e.upgrade_from for e in a] == [  # type: ignore[union-attr]
        frozenset(),
        {"J-1", "OLD"},
        {"J-1", "J-2"},
    ]
    assert a[0].device_type is DeviceType.PPMID  # type: ignore[union-attr]
    assert a[0].band_join_option is BandJoinOption.MULTI_MAC_EITHER  # type: ignore[union-attr]


def test_json_optional_keys_may_be_absent_or_null() -> None:
    item = obj("J-1", image_type=None)
    for key in (
        "upgrade_from",
        "zigbee_chipset_vendor",
        "zigbee_stack_version",
        "band_join_option",
    ):
        del item[key]
    [e] = read_json(json.dumps([item]))
    assert isinstance(e, CplEntry)
    assert e.image_type is None and not e.pathway_known and e.band_join_option is None
    assert set(OPTIONAL_COLUMNS) <= set(COLUMNS)


def test_json_errors_name_the_object_index_and_key() -> None:
    items: list[Any] = [
        obj("J-0"),  # 0 fine
        "not an object",  # 1
        obj("J-2", colour="red"),  # 2
        {k: v for k, v in obj("J-3").items() if k != "image_hash"},  # 3
        obj("J-4", manufacturer_code=0x121D),  # 4 a number
        obj("J-0"),  # 5 duplicate
        obj("J-6", upgrade_from=[]),  # 6
        obj("J-7", image_hash=H1[:-1] + "g"),  # 7
        obj("J-8", band_join_option="Single Band (2.4GHz)"),  # 8
    ]
    entries, errors = split(read_json(json.dumps(items)))
    assert [e.entry_id for e in entries] == ["J-0"]
    assert where(errors) == [
        (1, None),
        (2, "colour"),
        (3, "image_hash"),
        (4, "manufacturer_code"),
        (5, "entry_id"),
        (6, "upgrade_from"),
        (7, "image_hash"),
        (8, "band_join_option"),
    ]
    assert all(e.unit == "entry index" for e in errors)
    assert str(errors[1]).startswith("entry index 2, column colour")
    assert "pre-MP231" in errors[-1].message


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"rows": []}', '{"entries": [], "extra": 1}', '"x"', '[{"a": 1, "a": 2}]'],
)
def test_json_that_is_not_a_cpl_file_is_a_format_error(text: str) -> None:
    with pytest.raises(FormatError):
        read_json(text)
