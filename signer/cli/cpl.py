"""`signer cpl`: the Central Products List and its MP231 upgrade pathways.

The database code is imported when a command runs, not for `--help`.
"""

from __future__ import annotations

from pathlib import Path

import click

from signer.cli.common import config_option, load, reports_errors, short
from signer.cli.files import about, device_list, existing_file, refuse_bad_rows
from signer.cli.output import ExitCode, emit_json, emit_json_line, exit_with, json_option, table
from signer.cli.progress import Stopwatch, elapsed_text, progress
from signer.clock import system_clock


@click.group()
def cpl() -> None:
    """The Central Products List (CPL/FIR) and its upgrade pathways (MP231)."""


@cpl.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    help="Default: by the file's extension (.json, else CSV).",
)
@json_option
@config_option
@reports_errors
def cpl_import(file: Path, fmt: str | None, as_json: bool, config_path: Path | None) -> None:
    """Import CPL entries from CSV or JSON (columns in the README).

    Re-importing is harmless. Every bad row is reported with its line and column, and if
    there is any, nothing is imported (exit 1). A progress bar is drawn on stderr when it is
    a terminal; --json writes the summary (entries, models, added, updated, unchanged,
    bad_rows) as JSON.
    """
    from signer.service import cplops
    from signer.service.database import registry_database

    watch = Stopwatch()
    config = load(config_path)
    with (
        about(file, "cpl"),
        registry_database(config) as db,
        progress(_count_rows(file), "importing") as advance,
    ):
        done = cplops.import_cpl(db, file, system_clock(), fmt=fmt, progress=advance)
    report = done.report
    if as_json:
        emit_json(
            {
                "entries": done.entries,
                "models": done.models,
                "added": report.added,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "bad_rows": done.bad_rows,
                "absent_columns": list(done.absent_columns),
                "elapsed_seconds": round(watch.seconds, 3),
            }
        )
    if done.bad_rows:
        refuse_bad_rows(file, report.errors, done.bad_rows, "imported")
    if done.absent_columns:
        upgrade = (
            " (no upgrade_from: no upgrade to those entries is permitted)"
            if "upgrade_from" in done.absent_columns
            else ""
        )
        click.echo(
            f"Warning: {file}: the header has no {', '.join(done.absent_columns)}: empty for "
            f"every entry imported, replacing what was stored{upgrade}",
            err=True,
        )
    if not as_json:
        click.echo(
            f"{done.entries} entries of {done.models} model(s): {report.added} added, "
            f"{report.updated} updated, {report.unchanged} unchanged, "
            f"in {elapsed_text(watch.seconds)}"
        )


def _count_rows(file: Path) -> int:
    """Rows to expect, for the progress bar: lines of a CSV (an estimate for JSON)."""
    with file.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 1)


@cpl.command("path")
@click.option("--from", "from_id", help="CPL entry ID the device runs now.")
@click.option(
    "--devices-file",
    type=existing_file,
    help="Devices, one EUI-64 per line: each one's path from the CPL entry its inventory "
    "names (instead of --from).",
)
@click.option("--to", "to_id", required=True, help="Target CPL entry ID.")
@json_option
@config_option
@reports_errors
def cpl_path(
    from_id: str | None,
    devices_file: Path | None,
    to_id: str,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """The shortest permitted upgrade path to a CPL entry, from one entry or per device.

    With --from: the path, or exit 4 when there is none and 5 when an entry is not on the
    CPL. With --devices-file: one row per device (--json: one JSON line each); exit 0 when
    every device has a path, 4 when some have none (each with its reason), 5 when --to is
    not on the CPL.
    """
    from signer.service import cplops
    from signer.service.database import registry_database

    if (from_id is None) == (devices_file is None):
        raise click.UsageError("give exactly one of --from or --devices-file")
    if devices_file is not None:
        _device_paths(devices_file, to_id, as_json, config_path)
        return
    assert from_id is not None
    with registry_database(load(config_path)) as db:
        path = cplops.path_between(db, from_id, to_id)
    if as_json:
        emit_json({"from": from_id, "to": to_id, "path": path})
    elif path is not None:
        click.echo(" -> ".join(path))
    if path is None:
        click.echo(f"Error: no permitted upgrade path from {from_id} to {to_id}", err=True)
        exit_with(ExitCode.SOME_REFUSED)


def _device_paths(devices_file: Path, to_id: str, as_json: bool, config_path: Path | None) -> None:
    from signer.service import cplops
    from signer.service.database import registry_database
    from signer.service.devices import parse_devices

    with about(devices_file):
        euis = parse_devices(device_list((), devices_file), field=str(devices_file))
    with registry_database(load(config_path)) as db:
        found = cplops.paths_for_devices(db, euis, to_id)
    if as_json:
        for p in found:
            emit_json_line(
                {
                    "device": str(p.device),
                    "current_entry_id": p.current_entry_id,
                    "path": list(p.path) if p.path is not None else None,
                    "reason": p.reason,
                }
            )
    else:
        table(
            [
                (
                    str(p.device),
                    p.current_entry_id or "-",
                    " -> ".join(p.path) if p.path is not None else f"none ({_WHY[p.reason or '']})",
                )
                for p in found
            ],
            ("device", "current entry", f"path to {to_id}"),
        )
    missing = sum(1 for p in found if p.path is None)
    if missing:
        click.echo(f"{missing} of {len(found)} device(s) have no path to {to_id}", err=True)
        exit_with(ExitCode.SOME_REFUSED)


_WHY = {
    "not_registered": "not registered",
    "no_current_entry": "inventory names no current CPL entry",
    "no_path": "no permitted path",
    "": "no path",
}


@cpl.command("graph")
@click.option("--model", help="Only this model's entries (default: the whole CPL).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="DOT file to write; an SVG is written beside it when Graphviz is installed.",
)
@click.option("--target", help="CPL entry to mark as the target (drawn in red).")
@click.option(
    "--max-nodes",
    type=click.IntRange(min=1),
    default=400,
    show_default=True,
    help="Above this many nodes the graph is drawn one node per model (with a warning).",
)
@json_option
@config_option
@reports_errors
def cpl_graph(
    model: str | None,
    out: Path,
    target: str | None,
    max_nodes: int,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Draw the upgrade graph, marking the entries registered devices are on and the
    target, with a legend. A graph too large to draw entry by entry is drawn per model."""
    import shutil
    import subprocess

    from signer.service import cplops
    from signer.service.database import registry_database

    with registry_database(load(config_path)) as db:
        dot_text, warning = cplops.graph_dot(db, model, target=target, max_nodes=max_nodes)
    if warning is not None:
        click.echo(f"Warning: {warning}", err=True)
    out.write_text(dot_text, encoding="utf-8")
    say = (lambda _text: None) if as_json else click.echo
    say(f"wrote {out}")
    dot = shutil.which("dot")
    svg: Path | None = None
    if dot is None:
        click.echo("Graphviz `dot` is not installed: no SVG (apt-get install graphviz)", err=True)
    else:
        svg = out.with_suffix(".svg")
        drawn = subprocess.run(
            [dot, "-Tsvg", "-o", str(svg), str(out)], capture_output=True, text=True
        )
        if drawn.returncode != 0:
            raise click.ClickException(f"{out}: Graphviz `dot` failed: {short(drawn.stderr)}")
        say(f"wrote {svg}")
    if as_json:
        emit_json({"dot": str(out), "svg": str(svg) if svg else None, "warning": warning})
