"""The audit trail's hash chain: sealing, checking, and appending from many writers at once."""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from signer.errors import InvalidInput, Unavailable
from signer.registry import audit
from signer.registry.auditchain import (
    ENTRY_FIELDS,
    GENESIS,
    HASHED_FIELDS,
    AuditEntry,
    AuditRecord,
    Head,
    canonical,
    seal,
)
from signer.registry.auditcheck import check_chain
from signer.registry.db import open_database
from signer.service.audit import Anchor, verify_chain
from tests.support.audit_rows import (
    FIELDS,
    allow_inserts,
    assert_chain,
    execute,
    expected_hash,
    fail_inserts,
    rows,
)

T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)


def entry(i: int, **kw: object) -> AuditEntry:
    base = AuditEntry(
        at=T0 + dt.timedelta(seconds=i),
        client=f"CN=client-{i % 3}",
        operation="resign",
        call_id=f"call-{i}",
        method="/signer.v1/Resign",
        image_id="ab" * 32,
        digest=f"{i:064x}",
        key_label="supplier-ds",
        key_ski="44899792d196f4b8",
        certificate_serial="12345",
        device_count=i + 1,
        details={"n": i, "é": "ü"},
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def chain(n: int = 6) -> list[AuditRecord]:
    return seal([entry(i) for i in range(n)], Head(0, GENESIS))


def as_row(r: AuditRecord) -> dict[str, object]:
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


def locate_in(records: list[AuditRecord]):
    by_hash = {r.hash: r for r in records}
    return by_hash.get


def test_entries_made_on_the_fly_keep_their_own_time_and_details() -> None:
    """Sealing formats each time and details object once; entries generated (and dropped)
    one by one must still each get their own, never a recycled object's."""
    records = seal((entry(i) for i in range(50)), Head(0, GENESIS))
    assert [r.at for r in records] == [f"2024-06-01T12:00:{i:02d}.000000Z" for i in range(50)]
    assert [r.details for r in records] == [f'{{"n":{i},"\\u00e9":"\\u00fc"}}' for i in range(50)]
    for r in records:
        assert expected_hash(as_row(r)) == r.hash


def test_sealed_records_hash_as_documented_from_a_zero_genesis() -> None:
    records = chain()
    assert records[0].prev_hash == "0" * 64
    assert [r.seq for r in records] == [1, 2, 3, 4, 5, 6]
    for before, r in zip([None, *records], records, strict=False):
        assert expected_hash(as_row(r)) == r.hash  # the README's form, reimplemented
        if before is not None:
            assert r.prev_hash == before.hash
    assert records[0].at == "2024-06-01T12:00:00.000000Z"
    assert records[0].details == '{"n":0,"\\u00e9":"\\u00fc"}'
    report = check_chain(records, Head(6, records[-1].hash))
    assert report.intact and report.checked == 6 and report.finding is None


def test_the_hashed_fields_are_the_documented_ones_and_cover_every_entry_field() -> None:
    assert HASHED_FIELDS == FIELDS  # the documented form, as the independent check spells it
    entry_fields = {f.name for f in dataclasses.fields(AuditEntry)}
    assert set(ENTRY_FIELDS) == entry_fields - {"at", "details"}
    r = chain(1)[0]
    assert canonical(r).startswith(b'["signer-audit/1",1,"2024-06-01T12:00:00.000000Z",')
    assert canonical(r).endswith(b',"' + GENESIS.encode() + b'"]')


def test_an_export_lists_every_field_with_the_details_text_beside_the_details() -> None:
    r = chain(1)[0]
    exported = r.as_json()
    assert list(exported) == [*HASHED_FIELDS[:-1], "details_text", "prev_hash", "hash"]
    assert exported["details"] == {"n": 0, "é": "ü"}
    assert exported["details_text"] == r.details
    assert {k: v for k, v in exported.items() if k not in ("details", "details_text")} == {
        k: v for k, v in as_row(r).items() if k != "details"
    }


def test_a_sealed_batch_continues_the_head() -> None:
    first = chain(3)
    more = seal([entry(9)], Head(3, first[-1].hash))
    assert more[0].seq == 4 and more[0].prev_hash == first[-1].hash
    assert check_chain(first + more, Head(4, more[0].hash)).intact


def test_an_empty_chain_with_a_genesis_head_is_intact() -> None:
    assert check_chain([], Head(0, GENESIS)).intact
    assert not check_chain([], None).intact


def test_a_time_in_another_zone_is_stored_as_utc() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    r = seal([entry(0, at=dt.datetime(2024, 6, 1, 13, 0, 0, 5, tzinfo=cet))], Head(0, GENESIS))
    assert r[0].at == "2024-06-01T12:00:00.000005Z"


@pytest.mark.parametrize(
    "field, value",
    [
        ("client", "CN=someone-else"),
        ("digest", "00" * 32),
        ("outcome", "refused"),
        ("device_count", 99),
        ("details", '{"n":2}'),
        ("at", "2024-06-01T12:00:00Z"),
        ("prev_hash", "1" * 64),
    ],
)
def test_an_edited_field_names_its_record(field: str, value: object) -> None:
    records = chain()
    records[2] = dataclasses.replace(records[2], **{field: value})  # type: ignore[arg-type]
    report = check_chain(records, Head(6, records[-1].hash))
    assert not report.intact
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (3, "edited")
    assert report.last.seq == 2


def test_an_edit_with_its_hash_recomputed_is_named_by_the_next_link() -> None:
    records = chain()
    forged = dataclasses.replace(records[2], client="CN=forger", hash="")
    records[2] = dataclasses.replace(forged, hash=expected_hash(as_row(forged)))
    report = check_chain(records, Head(6, records[-1].hash))
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (3, "edited")


def test_a_deleted_record_is_named() -> None:
    records = chain()
    del records[3]
    report = check_chain(records, Head(6, records[-1].hash))
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (4, "deleted")
    first = chain()[1:]
    report = check_chain(first, Head(6, first[-1].hash))
    assert report.finding is not None and report.finding.seq == 1


@pytest.mark.parametrize("deleted", [[3], [3, 4], [1], [2, 3, 4, 5]])
def test_deleted_records_with_the_rest_renumbered_are_named_as_deleted(deleted: list[int]) -> None:
    """Closing the gap by lowering the later seqs does not hide a deletion."""
    records = [r for r in chain(8) if r.seq not in deleted]
    records = [dataclasses.replace(r, seq=n) for n, r in enumerate(records, start=1)]
    head = Head(len(records), records[-1].hash)
    report = check_chain(records, head, locate=locate_in(records))
    assert report.finding is not None
    first = deleted[0]
    assert (report.finding.seq, report.finding.kind) == (first, "deleted")
    assert f"sealed as {first + len(deleted)}" in report.finding.detail
    assert report.last.seq == first - 1
    # without a way to look records up, a record that was moved cannot be told from one
    # whose predecessor was deleted: the same record, as edited
    blind = check_chain(records, head)
    assert blind.finding is not None and (blind.finding.seq, blind.finding.kind) == (
        first,
        "edited",
    )


def test_a_renumbered_record_whose_predecessor_is_stored_is_not_called_deleted() -> None:
    """Record 3 moved to the end (renumbered): it was reordered, nothing was deleted."""
    original = chain()
    moved = [*original[:2], *original[3:], original[2]]
    records = [dataclasses.replace(r, seq=n) for n, r in enumerate(moved, start=1)]
    report = check_chain(records, Head(6, records[-1].hash), locate=locate_in(records))
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (3, "reordered")


def test_two_swapped_records_are_named_as_reordered() -> None:
    records = chain()
    a, b = records[2], records[3]
    records[2], records[3] = (dataclasses.replace(b, seq=3), dataclasses.replace(a, seq=4))
    report = check_chain(records, Head(6, records[-1].hash), locate=locate_in(records))
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (3, "reordered")
    # without a way to look records up, still the same record, as edited
    blind = check_chain(records, Head(6, records[-1].hash))
    assert blind.finding is not None and blind.finding.seq == 3


def test_a_truncated_tail_is_found_through_the_head() -> None:
    records = chain()
    report = check_chain(records[:4], Head(6, records[-1].hash))
    assert report.finding is not None
    assert (report.finding.seq, report.finding.kind) == (5, "truncated")


def test_a_head_that_disagrees_is_reported() -> None:
    records = chain()
    report = check_chain(records, Head(6, "f" * 64))
    assert report.finding is not None and report.finding.seq == 6
    report = check_chain(records, Head(4, records[3].hash))
    assert report.finding is not None and report.finding.kind == "head"
    report = check_chain(records, Head(6, records[-1].hash), beyond=7)
    assert report.finding is not None and report.finding.seq == 7


def test_an_anchor_must_be_a_record_of_the_chain() -> None:
    records = chain()
    found = check_chain(records, Head(6, records[-1].hash), anchor=records[3].hash)
    assert found.intact and found.anchor_seq == 4
    # someone rewrote the whole chain consistently: only the anchor tells
    rewritten = seal([entry(i, client="CN=forger") for i in range(6)], Head(0, GENESIS))
    report = check_chain(rewritten, Head(6, rewritten[-1].hash), anchor=records[3].hash)
    assert not report.intact
    assert report.finding is not None and report.finding.kind == "anchor"


def test_anchor_text_forms() -> None:
    h = "ab" * 32
    assert Anchor.parse(h) == Anchor(h)
    assert Anchor.parse(f"17:{h.upper()}") == Anchor(h, 17)
    with pytest.raises(InvalidInput, match="64 hex"):
        Anchor.parse("17:abc")


# -- stored -------------------------------------------------------------------------------


def test_stored_records_verify_independently_and_through_the_service(db_url: str) -> None:
    db = open_database(db_url)
    with db.session() as s:
        assert audit.append(s, [entry(i) for i in range(3)]).seq == 3
    audit.record(db, [entry(5)])
    assert assert_chain(db_url) == 4
    report = verify_chain(db)
    assert report.intact and report.checked == 4 and report.head is not None
    assert report.head.seq == 4
    assert [r.seq for r in audit.records(db, after=1, page=2)] == [2, 3, 4]
    assert verify_chain(db, Anchor(rows(db_url)[1]["hash"], 2)).intact
    assert not verify_chain(db, Anchor(rows(db_url)[1]["hash"], 3)).intact
    db.dispose()


def test_records_appended_past_the_head_are_found(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    db = open_database(f"sqlite:///{path}")
    audit.record(db, [entry(0), entry(1)])
    execute(
        path, "UPDATE audit_head SET seq = 1, hash = (SELECT hash FROM audit_records WHERE seq = 1)"
    )
    report = verify_chain(db)
    assert report.finding is not None and report.finding.seq == 2


def test_a_failing_insert_writes_nothing_and_says_unavailable(db_url: str) -> None:
    path = db_url
    db = open_database(db_url)
    audit.record(db, [entry(0)])
    fail_inserts(path, "audit_records", "fail", "disk full")
    with pytest.raises(Unavailable, match="audit trail unavailable"):
        audit.record(db, [entry(1), entry(2)])
    assert len(rows(path)) == 1 and assert_chain(path) == 1
    execute(path, "DELETE FROM audit_head")
    allow_inserts(path, "audit_records", "fail")
    with pytest.raises(Unavailable, match="head row is missing"):
        audit.record(db, [entry(1)])


def test_concurrent_appends_from_threads_keep_one_chain(db_url: str) -> None:
    path = db_url
    db = open_database(db_url)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(25):
                audit.record(db, [entry(t * 100 + i, client=f"thread-{t}")] * (1 + i % 3))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert assert_chain(path) == 8 * sum(1 + i % 3 for i in range(25))
    assert verify_chain(db).intact


WRITER = """
import datetime as dt, sys
from signer.registry import audit
from signer.registry.auditchain import AuditEntry
from signer.registry.db import open_database
db = open_database(sys.argv[1])
for i in range(60):
    audit.record(db, [AuditEntry(at=dt.datetime.now(dt.UTC), client=sys.argv[2],
                                 operation="resign", details={"i": i})] * (1 + i % 2))
"""


def test_concurrent_appends_from_processes_keep_one_chain(db_url: str) -> None:
    """Two replicas (or the CLI beside a server) on one database take turns at the head."""
    path = url = db_url
    open_database(url).dispose()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, f"process-{n}"]) for n in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert assert_chain(path) == 2 * 90
    assert {r["client"] for r in rows(path)} == {"process-0", "process-1"}
