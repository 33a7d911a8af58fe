"""``device_kinds`` (one row per kind of device, its members aggregated by the database)
agrees with the row-by-row read on both backends: unknown devices, devices without a
Supplier cell or inventory, several kinds, repeats in the input, batches, and a device
with two Supplier management cells (the row-by-row read decides then: ambiguous when they
name different keys, one cell when they name the same)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from signer.gbcs.eui import Eui64
from signer.registry import devices
from signer.registry.db import Database, open_database
from tests.support.constants import PINNED
from tests.support.devices import Z1_SKI, add_device

OTHER_SKI = bytes.fromhex("0102030405060708")
THIRD_SKI = bytes.fromhex("F0F1F2F3F4F5F6F7")


def _eui(i: int) -> str:
    return f"00-DB-00-00-00-00-{i >> 8:02X}-{i & 0xFF:02X}"


@pytest.fixture
def db(db_url: str) -> Database:
    db = open_database(db_url)
    for i in range(40):
        if i % 7 == 3:
            add_device(db, _eui(i), ski=None)  # inventory, no Supplier cell
        elif i % 7 == 4:
            add_device(db, _eui(i), entry=None)  # a cell, no inventory
        elif i % 7 == 5:
            add_device(db, _eui(i), ski=OTHER_SKI, entry="T-1", device_type="GSME")
        else:
            add_device(db, _eui(i))
    return db


def _euis(numbers: list[int]) -> list[Eui64]:
    return [Eui64.parse(_eui(i)) for i in numbers]


def test_kinds_agree_with_the_row_by_row_read(db: Database) -> None:
    euis = _euis([*range(45), 2, 9, 44, 0])  # 40..44 unknown; repeats
    kinds = devices.device_kinds(db, euis)
    by_row = devices.device_facts_by_row(db, euis)
    assert len(kinds.kind_of) == len(euis)
    assert len(set(kinds.kinds)) == len(kinds.kinds) == 4
    for e, k in zip(euis, kinds.kind_of, strict=True):
        assert (None if k is None else kinds.kinds[k]) == by_row.get(e), e
    assert devices.device_facts(db, euis) == by_row
    assert [k is None for k in kinds.kind_of] == [e not in by_row for e in euis]
    assert devices.device_kinds(db, _euis([41, 42])) == devices.DeviceKinds((), [None, None])
    assert devices.device_kinds(db, []) == devices.DeviceKinds((), [])


def test_batches_give_the_same_kinds(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    euis = _euis(list(range(44)))
    whole = devices.device_kinds(db, euis)
    monkeypatch.setattr(devices, "_BATCH", 3)
    batched = devices.device_kinds(db, euis)
    assert [batched.kinds[k] if k is not None else None for k in batched.kind_of] == [
        whole.kinds[k] if k is not None else None for k in whole.kind_of
    ]
    assert devices.device_facts(db, euis) == devices.device_facts_by_row(db, euis)


def _add_cell(db: Database, eui: str, ski: bytes) -> None:
    """One more Supplier management cell for ``eui`` (a copy of its cell naming ``ski``):
    a state a 6.24.1 import never writes (the readers refuse such a response)."""
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO trust_anchor_cells (device_eui, role, key_usage, cell_usage, "
                "subject_eui, ski) SELECT device_eui, role, key_usage, cell_usage, "
                "subject_eui, :ski FROM trust_anchor_cells WHERE device_eui = :eui "
                "AND ski = :first"
            ),
            {"ski": ski.hex(), "eui": Eui64.parse(eui).hex, "first": Z1_SKI.hex()},
        )


def test_a_device_whose_cells_name_two_keys_is_ambiguous(db: Database) -> None:
    """Both SKIs, sorted, never the one the database happens to return last; the device
    keeps its own kind, its inventory as it stands."""
    before = devices.device_facts(db, _euis([0]))[Eui64.parse(_eui(0))]
    _add_cell(db, _eui(0), OTHER_SKI)  # OTHER_SKI < Z1_SKI: sorted is not insertion order
    _add_cell(db, _eui(1), OTHER_SKI)
    _add_cell(db, _eui(1), THIRD_SKI)
    euis = _euis(list(range(10)))
    by_row = devices.device_facts_by_row(db, euis)
    assert devices.device_facts(db, euis) == by_row
    assert by_row[euis[0]] == before._replace(supplier_ski=None, ambiguous_skis=(OTHER_SKI, Z1_SKI))
    assert by_row[euis[1]].ambiguous_skis == (OTHER_SKI, Z1_SKI, THIRD_SKI)
    assert by_row[euis[1]].supplier_ski is None
    assert [by_row[e].ambiguous_skis for e in euis[2:]] == [()] * 8
    assert devices.supplier_signing_skis(db, euis[:2]) == {euis[0]: None, euis[1]: None}
    kinds = devices.device_kinds(db, [*euis, euis[0]])
    assert kinds.kind_of[0] == kinds.kind_of[-1] != kinds.kind_of[1]


def test_a_device_with_the_same_cell_twice_has_that_cell(db: Database) -> None:
    """Two cells naming the same SKI name one key: the device is not ambiguous."""
    euis = _euis(list(range(10)))
    before = devices.device_facts(db, euis)
    _add_cell(db, _eui(0), Z1_SKI)
    assert devices.device_facts_by_row(db, euis) == before
    assert devices.device_facts(db, euis) == before
    assert before[euis[0]].supplier_ski == Z1_SKI and before[euis[0]].ambiguous_skis == ()


def test_kinds_follow_a_change_of_inventory(db: Database) -> None:
    eui = Eui64.parse(_eui(0))
    before = devices.device_facts(db, [eui])[eui]
    devices.set_inventory(
        db, eui, device_type=None, hardware_version=7, current_entry_id="T-9", now=PINNED
    )
    after = devices.device_facts(db, [eui])[eui]
    assert (before.hardware_version, after.hardware_version) == (1, 7)
    assert after.current_entry_id == "T-9" and after == devices.device_facts_by_row(db, [eui])[eui]
