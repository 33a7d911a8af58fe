"""Checking the audit trail's hash chain: the first record that was edited, deleted or moved.

Pure functions over records as ``signer.registry.auditchain`` seals them; no I/O here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from signer.registry.auditchain import GENESIS, AuditRecord, Head, record_hash


@dataclass(frozen=True)
class Finding:
    """The first thing wrong with a chain: which record and what happened to it."""

    seq: int  # the first bad record (for a truncated tail: the first missing one)
    kind: str  # edited | deleted | reordered | truncated | head | anchor
    detail: str


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    checked: int  # records read
    head: Head | None  # as stored (None: the head row is missing)
    last: Head  # the last record read: its seq and hash (GENESIS when there is none)
    finding: Finding | None = None
    anchor: str | None = None  # the anchor checked, if any
    anchor_seq: int | None = None  # where it was found in the chain (None: not found)


# The stored record with this hash, if any: lets a record that fails its hash be told apart
# as moved (reordered) rather than edited. Only called once something is wrong.
Locate = Callable[[str], AuditRecord | None]
MOVE_DEPTH = 4  # how many moved records in a row are traced back
RENUMBER_SPAN = 10_000  # how far back a record renumbered to close a deletion gap is traced


class ChainChecker:
    """Feed records in seq order, then ``finish`` with the head: the first finding, if any.

    Streaming, constant memory: it keeps only the previous record's seq and hash.
    """

    def __init__(self, locate: Locate | None = None, anchor: str | None = None) -> None:
        self._can_locate = locate is not None
        self._locate = locate or (lambda _h: None)
        self.anchor = anchor.lower() if anchor else None
        self.anchor_seq: int | None = None
        self.checked = 0
        self.last = Head(0, GENESIS)
        self.finding: Finding | None = None

    def feed(self, r: AuditRecord) -> Finding | None:
        """Check one record against its own hash and the record before it."""
        if self.finding is not None:
            return self.finding
        self.checked += 1
        prev = self.last
        self.finding = self._check(r, prev)
        if self.finding is None:
            self.last = Head(r.seq, r.hash)
            if self.anchor is not None and r.hash == self.anchor and self.anchor_seq is None:
                self.anchor_seq = r.seq
        return self.finding

    def _check(self, r: AuditRecord, prev: Head) -> Finding | None:
        expected = prev.seq + 1
        if r.seq != expected:
            missing = (
                f"record {expected}"
                if r.seq == expected + 1
                else f"records {expected}..{r.seq - 1}"
            )
            return Finding(
                expected,
                "deleted",
                f"{missing} missing: the chain jumps from {prev.seq or 'its start'} to {r.seq}",
            )
        recomputed = record_hash(r)
        if recomputed != r.hash:
            moved = self._moved_from(r)
            if moved is not None:
                return Finding(
                    r.seq,
                    "reordered",
                    f"record {r.seq} holds the record that was sealed as {moved} "
                    f"(it links to record {moved - 1}): records were reordered",
                )
            sealed = self._renumbered_from(r)
            if sealed is not None:
                gone = (
                    f"record {r.seq} was"
                    if sealed == r.seq + 1
                    else f"records {r.seq}..{sealed - 1} were"
                )
                return Finding(
                    r.seq,
                    "deleted",
                    f"record {r.seq} holds the record that was sealed as {sealed}: "
                    f"{gone} deleted and the records after renumbered to close "
                    "the gap",
                )
            return Finding(
                r.seq,
                "edited",
                f"record {r.seq} does not match its hash: its "
                f"contents were changed (stored {r.hash[:16]}…, contents hash to "
                f"{recomputed[:16]}…)",
            )
        if r.prev_hash != prev.hash:
            linked = self._locate(r.prev_hash)
            if linked is not None and linked.seq != prev.seq:
                return Finding(
                    r.seq,
                    "reordered",
                    f"record {r.seq} links to record {linked.seq}, not to record "
                    f"{prev.seq}: records were reordered",
                )
            if prev.seq == 0:
                return Finding(
                    r.seq,
                    "edited",
                    f"record {r.seq} is the first record but does "
                    "not link to the genesis hash: earlier records were removed or "
                    "it was changed",
                )
            return Finding(
                prev.seq,
                "edited",
                f"record {prev.seq} is not the record that record {r.seq} links to: "
                f"it was changed and its hash recomputed, or replaced",
            )
        return None

    def _moved_from(self, r: AuditRecord, depth: int = MOVE_DEPTH) -> int | None:
        """The seq a record was sealed with, if it verifies there: it was moved, not edited.

        Its predecessor is found by the hash it links to; if that one was moved too, its
        own sealed seq is traced the same way (a swap moves two records).
        """
        if r.prev_hash == GENESIS:
            original = 1
        else:
            p = self._locate(r.prev_hash)
            if p is None or depth == 0:
                return None
            if record_hash(p) == p.hash:
                original = p.seq + 1
            else:
                before = self._moved_from(p, depth - 1)
                if before is None:
                    return None
                original = before + 1
        if original == r.seq:
            return None
        return original if record_hash(_with_seq(r, original)) == r.hash else None

    def _renumbered_from(self, r: AuditRecord) -> int | None:
        """The later seq a record was sealed with, if the record it links to is gone.

        Deleting records and lowering the seqs after them hides the gap, but each record's
        hash covers the seq it was sealed with: re-sealed at seq + n it verifies again,
        which no edit can bring about. Only claimed when the linked-to record is not stored
        anywhere (otherwise it was moved, not deleted), so a lookup is needed.
        """
        if not self._can_locate or r.prev_hash == GENESIS or self._locate(r.prev_hash) is not None:
            return None
        for sealed in range(r.seq + 1, r.seq + 1 + RENUMBER_SPAN):
            if record_hash(_with_seq(r, sealed)) == r.hash:
                return sealed
        return None

    def finish(self, head: Head | None, beyond: int | None = None) -> ChainReport:
        """Compare the last record with the head row.

        ``beyond``: the highest seq stored, read in one statement with the head, so records
        appended without moving the head are found too.
        """
        f = self.finding
        if f is None:
            f = self._check_head(head, beyond)
        anchor_found = self.anchor_seq
        if f is None and self.anchor is not None and anchor_found is None:
            f = Finding(
                self.last.seq,
                "anchor",
                f"the anchor {self.anchor[:16]}… is not the hash of any record of this "
                "chain: the chain was rewritten since the anchor was taken, or the "
                "anchor belongs to another database",
            )
        return ChainReport(
            intact=f is None,
            checked=self.checked,
            head=head,
            last=self.last,
            finding=f,
            anchor=self.anchor,
            anchor_seq=anchor_found,
        )

    def _check_head(self, head: Head | None, beyond: int | None) -> Finding | None:
        last = self.last
        if head is None:
            return Finding(last.seq + 1, "head", "the audit head row is missing")
        if head.seq > last.seq:
            missing = (
                f"record {head.seq}"
                if head.seq == last.seq + 1
                else f"records {last.seq + 1}..{head.seq}"
            )
            return Finding(
                last.seq + 1,
                "truncated",
                f"{missing} missing: the head says the "
                f"chain ends at {head.seq}, the last record is {last.seq}",
            )
        if head.seq < last.seq:
            return Finding(
                head.seq + 1,
                "head",
                f"records after {head.seq} are not covered by "
                f"the head (it says {head.seq}, records go to {last.seq}): they were "
                "added outside the service, or the head was rolled back",
            )
        if head.hash != last.hash:
            return Finding(
                last.seq,
                "edited",
                f"record {last.seq} is not the record the head "
                "names: it was changed and its hash recomputed, or the head was "
                "changed",
            )
        if beyond is not None and beyond > head.seq:
            return Finding(
                head.seq + 1,
                "head",
                f"records {head.seq + 1}..{beyond} are beyond "
                "the head: they were added outside the service",
            )
        return None


def _with_seq(r: AuditRecord, seq: int) -> AuditRecord:
    return dataclasses.replace(r, seq=seq)


def check_chain(
    records: Iterable[AuditRecord],
    head: Head | None,
    *,
    locate: Locate | None = None,
    anchor: str | None = None,
    beyond: int | None = None,
) -> ChainReport:
    """Check a whole chain, given in seq order; stops reading at the first finding."""
    checker = ChainChecker(locate, anchor)
    for r in records:
        if checker.feed(r) is not None:
            break
    return checker.finish(head, beyond)
