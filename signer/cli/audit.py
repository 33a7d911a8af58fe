"""`signer audit`: check and export the tamper-evident audit trail.

Both read the service's database only (no token, no PIN), so an auditor can run them. The
database code is imported when a command runs, not for `--help`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from signer.cli.common import config_option, load, reports_errors
from signer.cli.output import ExitCode, emit_json, exit_with, json_option

if TYPE_CHECKING:
    from signer.service.audit import ChainReport


@click.group()
def audit() -> None:
    """The audit trail: every signature and key operation, hash-chained.

    \b
    Each record holds the time, the client identity, the call's request ID, the operation,
    image ID, digest signed, key label, SKI and certificate serial, device count, DUIS
    RequestID and outcome, plus the hash of the record before it. `verify` finds the first
    record that was edited, deleted or reordered; `export` writes JSON lines.
    """


@audit.command("verify")
@click.option(
    "--anchor",
    metavar="[SEQ:]HASH",
    help="A head hash printed by an earlier verify and kept outside this database: "
    "checks it is still a record of the chain (a rewritten chain fails).",
)
@json_option
@config_option
@reports_errors
def audit_verify(anchor: str | None, as_json: bool, config_path: Path | None) -> None:
    """Check the whole chain; exit 0 when intact, 3 naming the first bad record.

    Every record's hash is recomputed from its fields and its link to the record before
    it is checked, in seq order, up to the head row (which must name the last record).
    The chain proves that nothing was changed since a hash you hold: keep the head it
    prints somewhere the database's administrators cannot write, and pass it as --anchor
    next time.
    """
    from signer.service import audit as trail
    from signer.service.database import registry_database

    with registry_database(load(config_path)) as db:
        report = trail.verify_chain(db, trail.Anchor.parse(anchor) if anchor else None)
    if as_json:
        emit_json(_report_json(report))
    else:
        _print_report(report)
    exit_with(ExitCode.OK if report.intact else ExitCode.NOT_VERIFIED)


@audit.command("export")
@click.option(
    "--out",
    type=click.File("w"),
    default="-",
    show_default="stdout",
    help="Where to write the JSON lines.",
)
@click.option(
    "--since",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    metavar="SEQ",
    help="Only records after this seq (the last one exported before).",
)
@config_option
@reports_errors
def audit_export(out: TextIO, since: int, config_path: Path | None) -> None:
    """Write the records as JSON lines, oldest first: every field, hashes in hex.

    `details` is an object; `details_text` is the text the hash covers, verbatim, so the
    chain can be checked from an export too (the README gives the hashed form).
    """
    from signer.service import audit as trail
    from signer.service.database import registry_database

    with registry_database(load(config_path)) as db:
        n = trail.export(db, out, since=since)
    click.echo(f"{n} record(s) exported", err=True)


def _report_json(r: ChainReport) -> dict[str, Any]:
    f = r.finding
    return {
        "intact": r.intact,
        "checked": r.checked,
        "head": {"seq": r.head.seq, "hash": r.head.hash} if r.head else None,
        "last_good": {"seq": r.last.seq, "hash": r.last.hash},
        "first_bad": {"seq": f.seq, "kind": f.kind, "detail": f.detail} if f else None,
        "anchor": {"hash": r.anchor, "seq": r.anchor_seq} if r.anchor else None,
    }


def _print_report(r: ChainReport) -> None:
    f = r.finding
    if f is None:
        assert r.head is not None
        click.echo(f"audit trail intact: {r.checked} record(s) checked")
        if r.anchor is not None:
            click.echo(f"anchor found: record {r.anchor_seq}")
        click.echo(f"head: seq {r.head.seq} hash {r.head.hash}")
        click.echo(
            f"keep it outside this database; next time: signer audit verify "
            f"--anchor {r.head.seq}:{r.head.hash}"
        )
        return
    click.echo(f"audit trail BROKEN at record {f.seq} ({f.kind}): {f.detail}")
    click.echo(
        f"{r.checked} record(s) read; the chain is good up to record {r.last.seq}"
        + (f" (hash {r.last.hash})" if r.last.seq else "")
    )
