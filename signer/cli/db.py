"""`signer db`: the database schema, for a migration Job or an operator."""

from __future__ import annotations

from pathlib import Path

import click

from signer.cli.common import config_option, load, reports_errors
from signer.cli.output import emit_json, json_option


@click.group()
def db() -> None:
    """The registry database's schema."""


@db.command("upgrade")
@config_option
@json_option
@reports_errors
def db_upgrade(config_path: Path | None, as_json: bool) -> None:
    """Apply the schema migrations, then exit.

    `signer serve` does the same at start; replicas starting together take turns (an
    advisory lock on PostgreSQL, a file lock on SQLite), so running this first (a
    Kubernetes Job, a deploy step) only makes the order visible.
    """
    from signer.service.schema import upgrade

    result = upgrade(load(config_path).database_url)
    if as_json:
        emit_json({"before": result.before, "after": result.after, "changed": result.changed})
    elif result.changed:
        click.echo(f"schema migrated from {result.before or '(empty)'} to {result.after}")
    else:
        click.echo(f"schema already at {result.after}")
