"""Registry commands (operations): manufacturers, devices, activations; database only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import click

from signer.cli.common import config_option, load, reports_errors
from signer.clock import system_clock
from signer.service import admin
from signer.service.database import registry_database


@click.group()
def manufacturers() -> None:
    """Manufacturer codes and the certificates trusted for their deliveries."""


@manufacturers.command("add")
@click.option("--code", required=True, help="Manufacturer code, 4 hex digits (e.g. 121D).")
@click.option(
    "--cert",
    "cert_file",
    required=True,
    type=click.File("rb"),
    help="The manufacturer's certificate (PEM or DER, P-256).",
)
@config_option
@reports_errors
def manufacturers_add(code: str, cert_file: BinaryIO, config_path: Path | None) -> None:
    """Trust a certificate for deliveries carrying this manufacturer code."""
    with registry_database(load(config_path)) as db:
        added = admin.add_manufacturer(db, code, cert_file.read(), system_clock())
    click.echo(
        f"manufacturer {code.upper()}: "
        + ("certificate added" if added else "certificate already registered")
    )


@manufacturers.command("list")
@config_option
@reports_errors
def manufacturers_list(config_path: Path | None) -> None:
    """List manufacturer codes and their certificates."""
    with registry_database(load(config_path)) as db:
        listed = admin.list_manufacturers(db)
    for code, subject, not_after in listed:
        click.echo(f"{code:04X}  {subject}  not after {not_after:%Y-%m-%d}")


@click.group()
def devices() -> None:
    """Devices and their trust anchor cells."""


@devices.command("import")
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
@config_option
@reports_errors
def devices_import(files: tuple[BinaryIO, ...], config_path: Path | None) -> None:
    """Import trust anchor cells from GBCS SR 6.24.1 responses.

    Each FILE holds one response payload as hex or base64, or a DUIS response XML that
    carries it in sr:GBCSPayload. Use - for standard input. Re-importing a device replaces
    its cells.
    """
    with registry_database(load(config_path)) as db:
        for f in files:
            creds, created = admin.import_device(db, f.read(), system_clock())
            cell = creds.supplier_signing_cell()
            ski = cell.ski.hex() if cell else "none"
            click.echo(
                f"{creds.device}: {'added' if created else 'updated'}, "
                f"{len(creds.cells)} cells, Supplier digital-signing SKI {ski}"
            )


@devices.command("show")
@click.argument("eui")
@click.option("--json", "as_json", is_flag=True)
@config_option
@reports_errors
def devices_show(eui: str, as_json: bool, config_path: Path | None) -> None:
    """Show a device's trust anchor cells."""
    with registry_database(load(config_path)) as db:
        record = admin.show_device(db, eui)
    if record is None:
        raise click.ClickException(f"device {eui} is not registered")
    cells = [
        {
            "role": f"{c.role:02X}",
            "key_usage": c.key_usage.value,
            "cell_usage": c.cell_usage.name.lower(),
            "subject_eui": str(c.subject_eui),
            "ski": c.ski.hex(),
        }
        for c in record.cells
    ]
    if as_json:
        click.echo(
            json.dumps(
                {
                    "eui": str(record.eui),
                    "updated_at": record.updated_at.isoformat(),
                    "device_type": record.device_type,
                    "hardware_version": record.hardware_version,
                    "current_entry_id": record.current_entry_id,
                    "cells": cells,
                }
            )
        )
        return
    click.echo(f"{record.eui} (updated {record.updated_at:%Y-%m-%d %H:%M:%S})")
    if record.current_entry_id is not None:
        hw = f"{record.hardware_version:04X}" if record.hardware_version is not None else "?"
        click.echo(
            f"  {record.device_type or '?'}, hardware {hw}, runs CPL entry "
            f"{record.current_entry_id}"
        )
    for c in cells:
        click.echo(
            f"  role {c['role']}  {c['key_usage']:<16} {c['cell_usage']:<17} "
            f"EUI {c['subject_eui']}  SKI {c['ski']}"
        )


@devices.command("inventory")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@reports_errors
def devices_inventory(file: Path, config_path: Path | None) -> None:
    """Import device inventory: CSV with device_id, device_type, hardware_version (4 hex)
    and current_entry_id. Every bad row is reported; if there is any, nothing is recorded."""
    from signer.service import cplops

    with registry_database(load(config_path)) as db:
        count, errors = cplops.import_inventory(db, file, system_clock())
    for error in errors:
        click.echo(f"{file}: {error}", err=True)
    if errors:
        raise click.ClickException(f"{len(errors)} bad row(s): nothing was recorded")
    click.echo(f"{count} device(s) recorded")


@devices.command("set")
@click.argument("eui")
@click.option("--type", "device_type", help="ESME, GSME, Comms Hub, PPMID, HCALCS or SAPC.")
@click.option("--hardware-version", help="4 hex digits.")
@click.option("--current-entry", help="CPL entry ID of the firmware the device runs now.")
@config_option
@reports_errors
def devices_set(
    eui: str,
    device_type: str | None,
    hardware_version: str | None,
    current_entry: str | None,
    config_path: Path | None,
) -> None:
    """Update one device's inventory."""
    from signer.service import cplops

    with registry_database(load(config_path)) as db:
        updated = cplops.set_device_inventory(
            db,
            eui,
            system_clock(),
            device_type=device_type,
            hardware_version=hardware_version,
            current_entry=current_entry,
        )
    click.echo(f"{updated} updated")


@click.group()
def activations() -> None:
    """SR 11.3 activations the service issued."""


@activations.command("succeeded")
@click.argument("request_ids", nargs=-1, required=True)
@config_option
@reports_errors
def activations_succeeded(request_ids: tuple[str, ...], config_path: Path | None) -> None:
    """Record that these 11.3 requests (by RequestID) activated their firmware: each
    device's inventory then names the image's CPL entry as its current firmware."""
    from signer.service import cplops

    config = load(config_path)
    with registry_database(config) as db:
        for line in cplops.record_activation_results(
            db, config.supplier_eui, request_ids, system_clock()
        ):
            click.echo(line)
