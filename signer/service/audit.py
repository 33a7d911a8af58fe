"""Checking and exporting the audit trail, streamed: millions of records, one page in memory.

``verify_chain`` reads the head first and checks the records up to it (records appended
while it runs are left for the next check), so it can run beside a working service.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TextIO

from signer.errors import InvalidInput
from signer.registry import audit
from signer.registry.auditcheck import ChainChecker, Finding
from signer.registry.auditcheck import ChainReport as ChainReport  # what the CLI prints
from signer.registry.db import Database

HASH_LENGTH = 64


@dataclass(frozen=True)
class Anchor:
    """A head hash recorded elsewhere earlier, optionally with its seq (``SEQ:HASH``)."""

    hash: str
    seq: int | None = None

    @classmethod
    def parse(cls, text: str) -> Anchor:
        seq_text, _, hash_text = text.strip().rpartition(":")
        hash_text = hash_text.lower()
        if len(hash_text) != HASH_LENGTH or any(c not in "0123456789abcdef" for c in hash_text):
            raise InvalidInput(
                "an anchor is a record hash (64 hex digits), optionally "
                "preceded by its seq and a colon",
                field="anchor",
            )
        if not seq_text:
            return cls(hash_text)
        if not seq_text.isdigit():
            raise InvalidInput(f"anchor seq {seq_text[:20]!r} is not a number", field="anchor")
        return cls(hash_text, int(seq_text))


def verify_chain(db: Database, anchor: Anchor | None = None) -> ChainReport:
    """Check every record up to the head; the report names the first bad record, if any.

    Needs the database only, not the token: an auditor runs it without the HSM PIN.
    """
    head, _ = audit.head(db)
    checker = ChainChecker(
        locate=lambda h: audit.find_by_hash(db, h), anchor=anchor.hash if anchor else None
    )
    upto = head.seq if head is not None else None
    try:
        for record in audit.records(db, upto=upto):
            if checker.feed(record) is not None:
                break
    except (ValueError, TypeError, KeyError) as exc:  # a value no append could have written
        report = checker.finish(head)
        if report.finding is not None:
            return report
        bad = checker.last.seq + 1
        return ChainReport(
            intact=False,
            checked=checker.checked,
            head=head,
            last=checker.last,
            finding=Finding(
                bad,
                "edited",
                f"the record after {checker.last.seq} "
                f"cannot be read ({type(exc).__name__}: {exc}): "
                "it was changed",
            ),
        )
    # the head again, with the highest seq, in one statement: records past a head that did
    # not move were not appended by the service
    now_head, beyond = audit.head(db)
    if head is not None and now_head is not None and now_head.seq != head.seq:
        beyond = None  # appended meanwhile, through the head: checked next time
    report = checker.finish(head, beyond)
    if (
        report.intact
        and anchor is not None
        and anchor.seq is not None
        and report.anchor_seq != anchor.seq
    ):
        return _with_finding(
            report,
            Finding(
                anchor.seq,
                "anchor",
                f"the anchor's hash is record {report.anchor_seq}'s, not "
                f"record {anchor.seq}'s: the chain was rewritten since the anchor was taken",
            ),
        )
    return report


def _with_finding(report: ChainReport, finding: Finding) -> ChainReport:
    return ChainReport(
        intact=False,
        checked=report.checked,
        head=report.head,
        last=report.last,
        finding=finding,
        anchor=report.anchor,
        anchor_seq=report.anchor_seq,
    )


def export(db: Database, out: TextIO, *, since: int = 0) -> int:
    """Write the records after seq ``since`` as JSON lines, every field; returns the count."""
    if since < 0:
        raise InvalidInput("since is a seq, 0 or more", field="since")
    n = 0
    for record in audit.records(db, after=since):
        out.write(json.dumps(record.as_json(), ensure_ascii=True) + "\n")
        n += 1
    return n
