"""`signer cpl`: the Central Products List and its MP231 upgrade pathways.

The database code is imported when a command runs, not for `--help`.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from signer.cli.common import config_option, load, reports_errors
from signer.cli.files import about, refuse_bad_rows
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
@config_option
@reports_errors
def cpl_import(file: Path, fmt: str | None, config_path: Path | None) -> None:
    """Import CPL entries from CSV or JSON (columns in the README).

    Re-importing is harmless. Every bad row is reported with its line and column, and if
    there is any, nothing is imported (exit 1).
    """
    from signer.service import cplops
    from signer.service.database import registry_database

    config = load(config_path)
    with (
        about(file, "cpl"),
        registry_database(config) as db,
        click.progressbar(
            length=_count_rows(file), label="importing", show_pos=True, file=sys.stderr
        ) as bar,
    ):
        progress: Any = bar  # click types the bar by its iterable, which we do not use
        done = cplops.import_cpl(db, file, system_clock(), fmt=fmt, progress=progress.update)
    report = done.report
    if done.bad_rows:
        refuse_bad_rows(file, report.errors, done.bad_rows, "imported")
    click.echo(f"{report.added} added, {report.updated} updated, {report.unchanged} unchanged")


def _count_rows(file: Path) -> int:
    """Rows to expect, for the progress bar: lines of a CSV (an estimate for JSON)."""
    with file.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 1)


@cpl.command("path")
@click.option("--from", "from_id", required=True, help="CPL entry ID the device runs now.")
@click.option("--to", "to_id", required=True, help="Target CPL entry ID.")
@config_option
@reports_errors
def cpl_path(from_id: str, to_id: str, config_path: Path | None) -> None:
    """The shortest permitted upgrade path between two CPL entries."""
    from signer.service import cplops
    from signer.service.database import registry_database

    with registry_database(load(config_path)) as db:
        path = cplops.path_between(db, from_id, to_id)
    if path is None:
        raise click.ClickException(f"no path from {from_id} to {to_id}")
    click.echo(" -> ".join(path))


@cpl.command("graph")
@click.option("--model", help="Only this model's entries (default: the whole CPL).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="DOT file to write; an SVG is written beside it when Graphviz is installed.",
)
@config_option
@reports_errors
def cpl_graph(model: str | None, out: Path, config_path: Path | None) -> None:
    """Draw the upgrade graph, marking the entries registered devices are on."""
    import shutil
    import subprocess

    from signer.service import cplops
    from signer.service.database import registry_database

    with registry_database(load(config_path)) as db:
        dot_text = cplops.graph_dot(db, model)
    out.write_text(dot_text, encoding="utf-8")
    click.echo(f"wrote {out}")
    dot = shutil.which("dot")
    if dot is None:
        click.echo("Graphviz `dot` is not installed: no SVG (apt-get install graphviz)")
        return
    svg = out.with_suffix(".svg")
    subprocess.run([dot, "-Tsvg", "-o", str(svg), str(out)], check=True)
    click.echo(f"wrote {svg}")
