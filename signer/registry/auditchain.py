"""The audit trail's hash chain, as pure functions: sealing records into it.

Each record carries the hash of the one before it and its own hash covers every other field,
so an edited, deleted or reordered record breaks the chain where it happened. Storage is
``signer.registry.audit``, checking ``signer.registry.auditcheck``. The hashed form (what an
outside verifier reimplements) is in the README, section "Audit trail"; ``AuditRecord``'s
field order below is that form.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

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
        out: dict[str, Any] = {}
        for name in RECORD_FIELDS:
            out[name] = getattr(self, name)
            if name == "details":
                out[name] = details
                out["details_text"] = self.details
        return out


#: The record's fields, in the order of the hashed array (which leaves out ``hash``).
RECORD_FIELDS: Final = tuple(f.name for f in dataclasses.fields(AuditRecord))
HASHED_FIELDS: Final = RECORD_FIELDS[:-1]
#: The fields copied from the entry verbatim: all but seq, at, details, prev_hash and hash.
ENTRY_FIELDS: Final = RECORD_FIELDS[2:-3]
_hashed_values: Final = operator.attrgetter(*HASHED_FIELDS)
_entry_values: Final = operator.attrgetter(*ENTRY_FIELDS)
#: an entry's ``ENTRY_FIELDS`` values, in that order
entry_values: Final = _entry_values
#: The entry fields a signing batch's records share: all but the digest and the RequestID.
_SHARED: Final = tuple(f for f in ENTRY_FIELDS if f not in ("digest", "duis_request_id"))
_shared_values: Final = operator.attrgetter(*_SHARED)
_DIGEST_AT: Final = ENTRY_FIELDS.index("digest")
_REQUEST_ID_AT: Final = ENTRY_FIELDS.index("duis_request_id")
if not _DIGEST_AT < _REQUEST_ID_AT == len(ENTRY_FIELDS) - 1:  # the layout _pieces writes
    raise AssertionError(f"unexpected audit entry fields {ENTRY_FIELDS}")
_new, _set = object.__new__, object.__setattr__


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
#: the function _CANONICAL writes each string with (ensure_ascii)
_encode_string: Final = json.encoder.encode_basestring_ascii


def details_text(details: Mapping[str, Any]) -> str:
    return _DETAILS.encode(dict(details))


def canonical(r: AuditRecord) -> bytes:
    """The bytes a record's hash covers: every field but the hash, in a fixed order."""
    return _canonical_json([VERSION, *_hashed_values(r)])


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
    # A batch's entries share their time, details and every other field object but the
    # digest and the RequestID (``entries_like``): the JSON of what they share is written
    # once per batch (keyed by identity, which is stable while `entries` holds them), and
    # per entry only those two strings. ``_middle`` is the general form, which the pieces
    # equal byte for byte (tests/registry/test_audit_chain.py, differential).
    texts: dict[int, str] = {}
    shared: dict[tuple[int, ...], tuple[bytes, bytes, bytes]] = {}
    for e in list(entries):  # held: no id is reused while the memos are in use
        values = _shared_values(e)
        key = (id(e.at), id(e.details), *map(id, values))
        pieces = shared.get(key)
        if pieces is None:
            if e.outcome not in OUTCOMES:
                raise ValueError(f"audit outcome {e.outcome!r} is not one of {OUTCOMES}")
            at = texts.get(id(e.at))
            if at is None:
                at = texts[id(e.at)] = time_text(e.at)
            details = texts.get(id(e.details))
            if details is None:
                details = texts[id(e.details)] = details_text(e.details)
            pieces = shared[key] = _pieces(at, values, details)
        at, details = texts[id(e.at)], texts[id(e.details)]
        digest, request_id = e.digest, e.duis_request_id
        if (digest is None or type(digest) is str) and (
            request_id is None or type(request_id) is str
        ):
            head, mid, tail = pieces
            middle = b"".join((head, _json_text(digest), mid, _json_text(request_id), tail))
        else:  # not a string: the encoder's own rules
            middle = _middle(at, e, details)
        out.append(Sealable(e, at, details, middle))
    return out


def entries_like(
    shared: AuditEntry, digests: Sequence[str | None], request_ids: Sequence[str | None]
) -> list[AuditEntry]:
    """``dataclasses.replace(shared, digest=d, duis_request_id=r)`` for each pair: a
    signing batch's records, which differ in those two fields only. The copies share every
    other field object with ``shared`` (``prepare`` writes their JSON once) and are made
    without the generated ``__init__`` (measured: 0.6 against 5.0 us an entry); they equal
    what ``replace`` makes (tests/registry/test_audit_chain.py)."""
    if len(digests) != len(request_ids):
        raise ValueError("one request ID (or None) per digest")
    fields = shared.__dict__
    out: list[AuditEntry] = []
    for digest, request_id in zip(digests, request_ids, strict=True):
        entry = _new(AuditEntry)
        _set(entry, "__dict__", {**fields, "digest": digest, "duis_request_id": request_id})
        out.append(entry)
    return out


def _middle(at: str, e: AuditEntry, details: str) -> bytes:
    """The hashed array's fields from ``at`` to ``details``, exactly as the encoder writes
    them between their neighbours: the general form of ``prepare``'s pieces."""
    return _canonical_json([at, *_entry_values(e), details])[1:-1]


def _pieces(at: str, values: tuple[Any, ...], details: str) -> tuple[bytes, bytes, bytes]:
    """``_middle`` of entries sharing ``values`` (``_SHARED`` order), around their digest
    and RequestID: (up to the digest's comma, between the two, from the RequestID's comma)."""
    before, between = values[:_DIGEST_AT], values[_DIGEST_AT : _REQUEST_ID_AT - 1]
    head = _canonical_json([at, *before, None])[1:-5]  # '"at",...,' without 'null'
    mid = _canonical_json([None, *between, None])[5:-5]  # ',...,'
    tail = _canonical_json([None, details])[5:-1]  # ',"details"'
    return head, mid, tail


def _json_text(value: str | None) -> bytes:
    """A string or None as the canonical encoder writes it (ASCII, escaped)."""
    if value is None:
        return b"null"
    return _encode_string(value).encode("ascii")


def link(items: Iterable[Sealable], head: Head) -> list[tuple[int, str, str]]:
    """(seq, prev_hash, hash) of each prepared entry, chained after ``head``."""
    out: list[tuple[int, str, str]] = []
    seq, prev = head.seq, head.hash
    prev_json = _canonical_json(prev)  # the stored head's: whatever it holds, encoded
    for item in items:
        seq += 1
        digest = hashlib.sha256(
            b"".join((_OPEN, str(seq).encode("ascii"), b",", item.middle, b",", prev_json, b"]"))
        ).hexdigest()
        out.append((seq, prev, digest))
        prev = digest
        prev_json = b'"' + digest.encode("ascii") + b'"'  # hex digits: JSON as they are
    return out


def seal(entries: Iterable[AuditEntry], head: Head) -> list[AuditRecord]:
    """Number and chain ``entries`` after ``head``: the records to store, in order."""
    items = prepare(entries)
    return [
        _record_of(item, seq, prev, digest)
        for item, (seq, prev, digest) in zip(items, link(items, head), strict=True)
    ]


def _record_of(item: Sealable, seq: int, prev: str, digest: str) -> AuditRecord:
    """Positional, in ``RECORD_FIELDS`` order."""
    values = (seq, item.at, *_entry_values(item.entry), item.details, prev, digest)
    return AuditRecord(*values)


def _canonical_json(value: Any) -> bytes:
    return _CANONICAL.encode(value).encode("ascii")


_OPEN = _canonical_json([VERSION])[:-1] + b","  # '["signer-audit/1",'
