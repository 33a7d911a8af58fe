"""The audit trail's hash chain, as pure functions: sealing records and checking a chain.

Each record carries the hash of the one before it, and its own hash covers every field but
itself (its sequence number and that previous hash included), so an edited, deleted or
reordered record breaks the chain where it happened. No I/O here: storage is
``signer.registry.audit``, and these functions are what a test or an outside verifier
reimplements.

The hashed form (version 1) is the JSON array::

    ["signer-audit/1", seq, at, client, call_id, method, operation, outcome, image_id,
     digest, key_label, key_ski, certificate_serial, device_count, duis_request_id,
     details, prev_hash]

encoded as Python's ``json.dumps(..., ensure_ascii=True, separators=(",", ":"))``, where
``at`` is UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, absent values are ``null``, ``details`` is
the stored JSON text itself (a string: ``json.dumps(details, sort_keys=True,
separators=(",", ":"), ensure_ascii=True, default=str)`` when sealed, exported verbatim as
``details_text``), and hashes are lower-case hex. The record's hash is the SHA-256 of those
bytes; the first record's ``prev_hash`` is 64 zeros.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VERSION = "signer-audit/1"
GENESIS = "0" * 64
OUTCOMES = ("ok", "refused", "failed")


@dataclass(frozen=True)
class AuditEntry:
    """What happened, as the appender knows it: sealing adds seq, prev_hash and hash."""

    at: dt.datetime
    client: str  # who asked: certificate subject, "cli:ann@host", "unauthenticated", ...
    operation: str  # resign, duis-sign, activation-sign, precommand-sign, key-retire, ...
    outcome: str = "ok"  # ok | refused | failed
    call_id: str = "-"  # the request ID of the gRPC call or CLI command
    method: str = ""  # the RPC or command that was served
    image_id: str | None = None  # SHA-256 of the Manufacturer Image, hex
    digest: str | None = None  # the SHA-256 digest given to the HSM, hex
    key_label: str | None = None
    key_ski: str | None = None  # of the key's certificate, hex
    certificate_serial: str | None = None  # decimal, as the key ledger writes it
    device_count: int | None = None
    duis_request_id: str | None = None  # originator:target:counter
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """A record as stored: every field of the entry, its place in the chain and its hash."""

    seq: int
    at: str  # UTC as hashed: "2024-06-01T12:00:00.000000Z"
    client: str
    call_id: str
    method: str
    operation: str
    outcome: str
    image_id: str | None
    digest: str | None
    key_label: str | None
    key_ski: str | None
    certificate_serial: str | None
    device_count: int | None
    duis_request_id: str | None
    details: str  # canonical JSON text, hashed as stored
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        """Every field, for export. ``details`` is parsed (text when it does not parse), and
        ``details_text`` is the stored text verbatim, as hashed: the chain can be checked
        from an export without re-serialising anything."""
        try:
            details: Any = json.loads(self.details)
        except ValueError:
            details = self.details
        return {
            "seq": self.seq,
            "at": self.at,
            "client": self.client,
            "call_id": self.call_id,
            "method": self.method,
            "operation": self.operation,
            "outcome": self.outcome,
            "image_id": self.image_id,
            "digest": self.digest,
            "key_label": self.key_label,
            "key_ski": self.key_ski,
            "certificate_serial": self.certificate_serial,
            "device_count": self.device_count,
            "duis_request_id": self.duis_request_id,
            "details": details,
            "details_text": self.details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Head:
    """The last record's seq and hash, kept in their own row (seq 0 and GENESIS when empty)."""

    seq: int
    hash: str


def time_text(at: dt.datetime) -> str:
    """UTC to the microsecond; a naive time (SQLite hands those back) is taken as UTC."""
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.isoformat(timespec="microseconds") + "Z"


# Made once: json.dumps would build an encoder per call, on the signing path.
_CANONICAL = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"))
_DETAILS = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def details_text(details: Mapping[str, Any]) -> str:
    return _DETAILS.encode(dict(details))


def canonical(r: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but the hash, in a fixed order."""
    return _canonical(
        r.seq,
        r.at,
        r.client,
        r.call_id,
        r.method,
        r.operation,
        r.outcome,
        r.image_id,
        r.digest,
        r.key_label,
        r.key_ski,
        r.certificate_serial,
        r.device_count,
        r.duis_request_id,
        r.details,
        r.prev_hash,
    )


def _canonical(*fields: Any) -> bytes:
    return _canonical_json([VERSION, *fields])


def record_hash(r: AuditRecord) -> str:
    return hashlib.sha256(canonical(r)).hexdigest()


@dataclass(frozen=True, slots=True)
class Sealable:
    """An entry with everything of its hashed form that does not depend on its place in the
    chain: made before the appender takes the trail's lock, so the lock is held only for
    numbering and hashing."""

    entry: AuditEntry
    at: str
    details: str
    middle: bytes  # the hashed array's fields from ``at`` to ``details``, JSON, comma-joined


def prepare(entries: Iterable[AuditEntry]) -> list[Sealable]:
    out: list[Sealable] = []
    # a batch's entries share their time and details objects: format each object once
    # (keyed by identity, which is stable while `entries` holds them)
    texts: dict[int, str] = {}
    for e in list(entries):  # held: no id is reused while the memo is in use
        if e.outcome not in OUTCOMES:
            raise ValueError(f"audit outcome {e.outcome!r} is not one of {OUTCOMES}")
        at = texts.get(id(e.at))
        if at is None:
            at = texts[id(e.at)] = time_text(e.at)
        details = texts.get(id(e.details))
        if details is None:
            details = texts[id(e.details)] = details_text(e.details)
        # the array's middle, exactly as the encoder writes it between its neighbours
        middle = _canonical_json(
            [
                at,
                e.client,
                e.call_id,
                e.method,
                e.operation,
                e.outcome,
                e.image_id,
                e.digest,
                e.key_label,
                e.key_ski,
                e.certificate_serial,
                e.device_count,
                e.duis_request_id,
                details,
            ]
        )[1:-1]
        out.append(Sealable(e, at, details, middle))
    return out


def link(items: Iterable[Sealable], head: Head) -> list[tuple[int, str, str]]:
    """(seq, prev_hash, hash) of each prepared entry, chained after ``head``."""
    out: list[tuple[int, str, str]] = []
    seq, prev = head.seq, head.hash
    for item in items:
        seq += 1
        digest = hashlib.sha256(
            b"".join(
                (
                    _OPEN,
                    str(seq).encode("ascii"),
                    b",",
                    item.middle,
                    b",",
                    _canonical_json(prev),
                    b"]",
                )
            )
        ).hexdigest()
        out.append((seq, prev, digest))
        prev = digest
    return out


def seal(entries: Iterable[AuditEntry], head: Head) -> list[AuditRecord]:
    """Number and chain ``entries`` after ``head``: the records to store, in order."""
    items = prepare(entries)
    return [
        _record_of(item, seq, prev, digest)
        for item, (seq, prev, digest) in zip(items, link(items, head), strict=True)
    ]


def _record_of(item: Sealable, seq: int, prev: str, digest: str) -> AuditRecord:
    e = item.entry
    return AuditRecord(
        seq=seq,
        at=item.at,
        client=e.client,
        call_id=e.call_id,
        method=e.method,
        operation=e.operation,
        outcome=e.outcome,
        image_id=e.image_id,
        digest=e.digest,
        key_label=e.key_label,
        key_ski=e.key_ski,
        certificate_serial=e.certificate_serial,
        device_count=e.device_count,
        duis_request_id=e.duis_request_id,
        details=item.details,
        prev_hash=prev,
        hash=digest,
    )


def _canonical_json(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode("ascii")


_OPEN = _canonical_json([VERSION])[:-1] + b","  # '["signer-audit/1",'


# -- checking ----------------------------------------------------------------------------


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
