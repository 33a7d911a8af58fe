"""The audit chain's fast paths against their general forms (differential).

``entries_like`` copies one entry without the dataclass's ``__init__``; ``prepare`` writes the
JSON a batch's entries share once and per entry only the digest and the RequestID; ``link``
writes each new hash's JSON itself. Each must give exactly what the general code gives:
``dataclasses.replace``, the canonical encoder over the whole array, and the documented hash
form reimplemented in tests/support (``expected_hash``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signer.registry import auditchain
from signer.registry.auditchain import (
    GENESIS,
    AuditEntry,
    AuditRecord,
    Head,
    entries_like,
    link,
    prepare,
    record_hash,
    seal,
)
from tests.support.audit_rows import expected_hash

T0 = dt.datetime(2024, 6, 1, 12, 0, tzinfo=dt.UTC)

# every character JSON escapes or passes: quotes, backslash, controls, non-ASCII, surrogates
texts = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()),
    max_size=12,
)
maybe_text = st.none() | texts | st.sampled_from(["", '"', "\\", "\x00", "é", "\ud800", "😀"])
# what the fast path never takes (not a str): the encoder's own rules must still apply
odd = st.integers(-(2**70), 2**70) | st.booleans() | st.floats(allow_nan=False) | st.lists(texts)
counts = st.none() | st.integers(-(2**70), 2**70) | st.booleans()
details = st.dictionaries(texts, st.none() | st.integers() | texts | st.booleans(), max_size=3)


@st.composite
def shared_entry(draw: st.DrawFn) -> AuditEntry:
    return AuditEntry(
        at=T0 + dt.timedelta(microseconds=draw(st.integers(0, 10**9))),
        client=draw(texts),
        operation=draw(texts),
        outcome=draw(st.sampled_from(auditchain.OUTCOMES)),
        call_id=draw(texts),
        method=draw(texts),
        image_id=draw(maybe_text),
        digest=draw(maybe_text),
        key_label=draw(maybe_text),
        key_ski=draw(maybe_text),
        certificate_serial=draw(maybe_text),
        device_count=draw(counts),
        duis_request_id=draw(maybe_text),
        details=draw(details),
    )


def general_middle(e: AuditEntry) -> bytes:
    """The array's middle as the encoder writes it, from scratch (no memo, no pieces)."""
    values = [auditchain.time_text(e.at), *(getattr(e, f) for f in auditchain.ENTRY_FIELDS)]
    return auditchain._canonical_json([*values, auditchain.details_text(e.details)])[1:-1]


def as_row(r: AuditRecord) -> dict[str, Any]:
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}


@settings(max_examples=200, deadline=None)
@given(
    shared_entry(),
    st.lists(st.tuples(maybe_text | odd, maybe_text | odd), min_size=1, max_size=6),
)
def test_entries_like_equal_replace(shared: AuditEntry, pairs: list[tuple[Any, Any]]) -> None:
    digests, request_ids = [p[0] for p in pairs], [p[1] for p in pairs]
    made = entries_like(shared, digests, request_ids)
    want = [dataclasses.replace(shared, digest=d, duis_request_id=r) for d, r in pairs]
    assert made == want
    assert [dataclasses.astuple(m) for m in made] == [dataclasses.astuple(w) for w in want]
    assert all(type(m) is AuditEntry for m in made)
    for m in made:  # still frozen, and each its own object
        with pytest.raises(dataclasses.FrozenInstanceError):
            m.digest = "x"  # type: ignore[misc]
    assert len({id(m) for m in made}) == len(made)


def test_entries_like_wants_one_request_id_per_digest() -> None:
    base = AuditEntry(at=T0, client="c", operation="resign")
    with pytest.raises(ValueError, match="one request ID"):
        entries_like(base, ["a", "b"], ["r"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(shared_entry(), min_size=1, max_size=3),
    st.lists(
        st.tuples(st.integers(0, 2), maybe_text | odd, maybe_text | odd, st.booleans()),
        min_size=1,
        max_size=10,
    ),
    st.none() | texts,
)
def test_prepare_and_link_equal_the_general_form(
    shared: list[AuditEntry],
    picks: list[tuple[int, Any, Any, bool]],
    head_hash: str | None,
) -> None:
    """Batches mixing entries copied from shared templates (memo hits) with entries made
    afresh (equal values, other objects), strings with every escape and values that are
    not strings at all; a head whose hash is anything the database holds."""
    entries = []
    for which, digest, request_id, copied in picks:
        template = shared[which % len(shared)]
        if copied:
            entries += entries_like(template, [digest], [request_id])
        else:
            fields = {**template.__dict__, "digest": digest, "duis_request_id": request_id}
            fields["details"] = dict(template.details)  # another object, equal
            entries.append(AuditEntry(**fields))
    items = prepare(entries)
    assert [i.middle for i in items] == [general_middle(e) for e in entries]
    assert [i.at for i in items] == [auditchain.time_text(e.at) for e in entries]
    assert [i.details for i in items] == [auditchain.details_text(e.details) for e in entries]
    head = Head(7, GENESIS if head_hash is None else head_hash)
    records = seal(entries, head)
    assert [(r.seq, r.prev_hash, r.hash) for r in records] == link(items, head)
    for r in records:
        assert record_hash(r) == r.hash  # the general canonical form
    if all(_plain(e) for e in entries):  # what json.dumps can write as the README does
        for r in records:
            assert expected_hash(as_row(r)) == r.hash


def _plain(e: AuditEntry) -> bool:
    """Values the independent reimplementation encodes as the canonical encoder does
    (json.dumps writes floats and huge ints the same way, but keep it to the documented
    types: text, null, integers)."""
    values = [getattr(e, f) for f in auditchain.ENTRY_FIELDS]
    return all(v is None or type(v) in (str, int, bool) for v in values)


def test_an_invalid_outcome_is_refused_on_the_fast_path_too() -> None:
    good = AuditEntry(at=T0, client="c", operation="resign", digest="00")
    bad = dataclasses.replace(good, outcome="maybe")
    copies = entries_like(good, ["01", "02"], [None, None])
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        prepare([*copies, *entries_like(bad, ["03"], [None])])
    with pytest.raises(ValueError, match="'maybe' is not one of"):
        prepare([bad, good])
