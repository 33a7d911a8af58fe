"""Issue 13: an import is all or nothing, and names every bad row (file, line, field, why).

CPL (CSV and JSON) and inventory files with a line that is not UTF-8, rows of the wrong type,
EUIs that are not hex, duplicates, empty files, JSON nested too deeply or holding huge
numbers: nothing is imported and each fault is a row error or an `InvalidInput`, never a
library exception.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from signer.errors import InvalidInput, Unavailable
from signer.gbcs.eui import Eui64
from signer.registry import cpl, devices
from signer.registry.db import Database, open_database
from signer.service import admin, cplops
from tests.support.audit_rows import execute, query
from tests.support.constants import PINNED, RTDS_DEVICE

HEAD = (
    "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
    "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,zigbee_stack_version,"
    "band_join_option\n"
)
INVENTORY_HEAD = "device_id,device_type,hardware_version,current_entry_id\n"


def _row(entry: str, *, code: str = "121D", previous: str = "N/A") -> str:
    digest = hashlib.sha256(entry.encode()).hexdigest()
    return f"{entry},{code},ESME,M,0001,0001,00000001,{digest},{previous},,,\n"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'signer.db'}")


def test_a_cpl_line_that_is_not_utf8_is_a_bad_row_and_nothing_is_imported(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "cpl.csv"
    path.write_bytes(
        (HEAD + _row("A-1")).encode()
        + _row("A-2").replace(",M,", ",caf\xe9,").encode("latin-1")
        + (_row("A-3", code="XYZ") + _row("A-1") + _row("A-4")).encode()
    )
    done = cplops.import_cpl(db, path, PINNED)
    where = sorted((e.line, e.column or "") for e in done.report.errors)
    assert where == [(3, ""), (4, "manufacturer_code"), (5, "entry_id")]
    assert done.bad_rows == 3
    assert "not UTF-8" in next(str(e) for e in done.report.errors if e.line == 3)
    assert list(cpl.all_entries(db)) == []


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[" * 100_000, "nested too deeply"),
        ('[{"entry_id": ' + "9" * 100_000 + "}]", "100000 digits"),
        ("", "not JSON"),
    ],
    ids=["nested", "huge-integer", "empty"],
)
def test_json_a_parser_would_choke_on_is_refused_naming_the_file(
    db: Database, tmp_path: Path, text: str, words: str
) -> None:
    path = tmp_path / "cpl.json"
    path.write_text(text)
    with pytest.raises(InvalidInput) as refused:
        cplops.import_cpl(db, path, PINNED)
    assert words in str(refused.value) and len(str(refused.value)) < 300


def test_json_that_is_not_utf8_or_holds_huge_floats(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "cpl.json"
    path.write_bytes(b'[{"entry_id": "caf\xe9"}]')
    with pytest.raises(InvalidInput) as refused:
        cplops.import_cpl(db, path, PINNED)
    assert refused.value.field == str(path) and "not UTF-8" in refused.value.message
    path.write_text('[{"entry_id": 1e999999}]')
    done = cplops.import_cpl(db, path, PINNED)
    assert any(e.column == "entry_id" and "float" in e.message for e in done.report.errors)
    assert list(cpl.all_entries(db)) == []


def test_a_directory_is_refused_by_name(db: Database, tmp_path: Path) -> None:
    for fmt in ("csv", "json"):
        with pytest.raises(InvalidInput) as refused:
            cplops.import_cpl(db, tmp_path, PINNED, fmt=fmt)
        assert refused.value.field == str(tmp_path) and "directory" in refused.value.message


def test_many_bad_rows_are_counted_but_only_the_first_kept(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "cpl.csv"
    path.write_text(HEAD + "".join(_row(f"B-{i}", code="XYZ") for i in range(1500)))
    done = cplops.import_cpl(db, path, PINNED)
    assert done.bad_rows == 1500
    assert len(done.report.errors) == cplops.MAX_KEPT_ERRORS
    assert list(cpl.all_entries(db)) == []


def test_every_bad_inventory_row_is_named_and_nothing_is_recorded(
    db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "inventory.csv"
    path.write_bytes(
        (
            INVENTORY_HEAD
            + "00-DB-00-00-00-00-00-01,ESME,0001,E-1\n"  # good
            + "00-DB-00-00-00-00-00-GG,ESME,0001,E-1\n"  # EUI not hex
            + "00-DB-00-00-00-00-00-01,ESME,0001,E-1\n"  # duplicate
            + "00-DB-00-00-00-00-00-03,TOASTER,0001,E-1\n"  # wrong type
            + "00-DB-00-00-00-00-00-04,ESME,1_23,E-1\n"  # int() would take it
            + "00-DB-00-00-00-00-00-05,ESME,0001\n"  # a cell short
        ).encode()
        + b"00-DB-00-00-00-00-00-06,ESME,0001,caf\xe9\n"
    )
    count, errors, bad = cplops.import_inventory(db, path, PINNED)
    # line 8 has two errors (not UTF-8, and its entry ID) and is one bad row
    assert count == 0 and len(errors) == 7 and bad == 6
    assert [(e.line, e.column) for e in errors][:5] == [
        (3, "device_id"),
        (4, "device_id"),
        (5, "device_type"),
        (6, "hardware_version"),
        (7, None),
    ]
    assert {e.line for e in errors} == {3, 4, 5, 6, 7, 8}
    assert devices.get_device(db, Eui64.parse("00-DB-00-00-00-00-00-01")) is None


def test_an_empty_inventory_is_a_bad_file_not_zero_devices(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "inventory.csv"
    path.write_text("")
    count, errors, bad = cplops.import_inventory(db, path, PINNED)
    assert count == 0 and bad == 1 and "empty" in errors[0].message


def test_devices_are_imported_all_or_nothing_when_a_write_fails(
    db: Database, tmp_path: Path, vectors: Path
) -> None:
    """Every file parsed and authenticated first, then one transaction: a store that fails
    at the second device's audit record leaves neither device imported."""
    payload = (vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_bytes()
    store = tmp_path / "signer.db"
    execute(
        store,
        "CREATE TRIGGER second_import BEFORE INSERT ON audit_records "
        "WHEN NEW.operation = 'device-import' AND "
        "(SELECT count(*) FROM audit_records WHERE operation = 'device-import') >= 1 "
        "BEGIN SELECT RAISE(ABORT, 'disk full'); END",
    )
    with pytest.raises(Unavailable, match="disk full"):
        admin.import_devices(
            db, [payload, payload], PINNED, dcc_certificates=(), accept_unauthenticated=True
        )
    assert admin.show_device(db, RTDS_DEVICE) is None
    assert query(store, "SELECT count(*) FROM audit_records") == [(0,)]
