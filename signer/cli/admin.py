"""Registry commands (operations): manufacturers, devices, activations; database only.

The service and database code is imported inside each command, when it runs: `--help`
loads this module.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import click

from signer.cli.common import actor, command_name, config_option, load, reports_errors
from signer.cli.files import about, refuse_bad_rows
from signer.clock import system_clock
from signer.errors import SignerError

if TYPE_CHECKING:
    from signer.caller import Caller
    from signer.config import Config


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
    """Trust a certificate for deliveries carrying this manufacturer code.

    Refused unless it carries a P-256 key, allows digitalSignature (if it has a keyUsage
    extension) and is valid now. Recorded in the audit trail (manufacturer-add).
    """
    from signer.caller import bound
    from signer.service import admin
    from signer.service.database import registry_database

    config = load(config_path)
    with registry_database(config) as db, bound(_cli_caller()):
        with about(cert_file.name, "cert"):
            added = admin.add_manufacturer(db, code, cert_file.read(), _now(config))
    click.echo(
        f"manufacturer {code.upper()}: "
        + ("certificate added" if added else "certificate already registered")
    )


@manufacturers.command("revoke")
@click.argument("code")
@click.option("--serial", help="The certificate's serial number (decimal, or hex with 0x).")
@click.option("--fingerprint", help="The certificate's SHA-256 fingerprint (64 hex digits).")
@click.option("--reason", required=True, help="Why it is no longer trusted (recorded).")
@click.option(
    "--at",
    "at_text",
    help="ISO 8601 time with zone from which it is not trusted (default: now); may be past.",
)
@config_option
@reports_errors
def manufacturers_revoke(
    code: str,
    serial: str | None,
    fingerprint: str | None,
    reason: str,
    at_text: str | None,
    config_path: Path | None,
) -> None:
    """Stop trusting one of CODE's certificates from a time on.

    From then on deliveries it signed fail verification, and images it verified are no
    longer re-signed, built into DUIS requests or activated. Recorded in the audit trail
    (manufacturer-revoke).
    """
    from signer.caller import bound
    from signer.service import admin
    from signer.service.database import registry_database

    config = load(config_path)
    at = _time(at_text) if at_text is not None else None
    with registry_database(config) as db, bound(_cli_caller()):
        cert = admin.revoke_manufacturer_certificate(
            db,
            code,
            serial=serial,
            fingerprint=fingerprint,
            reason=reason,
            at=at,
            now=_now(config),
        )
    assert cert.revoked_at is not None
    click.echo(
        f"manufacturer {cert.code:04X}: certificate {cert.subject} (serial {cert.serial}) "
        f"revoked from {cert.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    )


@manufacturers.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per certificate.")
@config_option
@reports_errors
def manufacturers_list(as_json: bool, config_path: Path | None) -> None:
    """List manufacturer codes and their certificates, with their state now: trusted,
    revoked, expired or not yet valid."""
    import json

    from signer.service import admin
    from signer.service.database import registry_database

    config = load(config_path)
    with registry_database(config) as db:
        listed = admin.list_manufacturers(db, _now(config))
    if as_json:
        click.echo(json.dumps([v.as_json() for v in listed]))
        return
    for v in listed:
        c = v.cert
        line = (
            f"{c.code:04X}  {c.subject}  serial {c.serial}  SHA-256 {c.fingerprint}  "
            f"{c.not_before:%Y-%m-%d}..{c.not_after:%Y-%m-%d}  {v.state}"
        )
        if c.revoked_at is not None:
            line += f" (revoked from {c.revoked_at:%Y-%m-%dT%H:%M:%SZ}: {c.revocation_reason})"
        click.echo(line)


def _cli_caller() -> Caller:
    """The operating-system user, a fresh request ID and the command: who the trail names."""
    from signer.caller import Caller, new_request_id

    return Caller(identity=actor(), request_id=new_request_id(), method=command_name())


def _now(config: Config) -> dt.datetime:
    """The service's clock: the pinned time when one is configured (tests only)."""
    return config.pinned_time or system_clock()


def _time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text[:40]!r} is not an ISO 8601 time", param_hint="--at"
        ) from None
    if value.tzinfo is None:
        raise click.BadParameter("give a time zone (e.g. 2024-06-01T12:00:00Z)", param_hint="--at")
    return value


@click.group()
def devices() -> None:
    """Devices and their trust anchor cells."""


@devices.command("import")
@click.argument("files", nargs=-1, required=True, type=click.File("rb"))
@click.option(
    "--unauthenticated-gbcs",
    is_flag=True,
    help="Accept raw GBCS payloads (hex or base64), which carry no DCC signature; "
    "each import is recorded in the audit trail as not DCC-authenticated.",
)
@config_option
@reports_errors
def devices_import(
    files: tuple[BinaryIO, ...], unauthenticated_gbcs: bool, config_path: Path | None
) -> None:
    """Import trust anchor cells from GBCS SR 6.24.1 responses.

    Each FILE holds a DUIS response XML that carries the response in sr:GBCSPayload and is
    signed by one of the [dcc] certificates, or, only with --unauthenticated-gbcs, the raw
    response payload as hex or base64. Use - for standard input. Re-importing a device
    replaces its cells. Every import is an audit trail record (device-import).
    """
    from signer.caller import bound
    from signer.service import admin
    from signer.service.database import registry_database
    from signer.service.dcc import load_dcc_certificates

    config = load(config_path)
    dcc_certificates = load_dcc_certificates(config.dcc_certificates)
    caller = _cli_caller()
    now = config.pinned_time or system_clock()
    # every file is checked before any is imported: one bad file imports none, and each
    # bad file is named (issue 13: all or nothing)
    contents: list[tuple[str, bytes]] = []
    problems: list[str] = []
    with bound(caller):
        for f in files:
            try:
                with about(f.name):
                    data = f.read()
                    admin.parse_device_credentials(
                        data,
                        dcc_certificates=dcc_certificates,
                        now=now,
                        accept_unauthenticated=unauthenticated_gbcs,
                    )
                contents.append((f.name, data))
            except click.ClickException as exc:
                problems.append(exc.message)
    for problem in problems[:-1]:
        click.echo(f"Error: {problem}", err=True)
    if problems:
        raise click.ClickException(
            f"{problems[-1]}"
            + (f" ({len(problems)} bad files: none was imported)" if len(problems) > 1 else "")
        )
    with registry_database(config) as db, bound(caller):
        try:  # one transaction: if the write fails, none of the files is imported
            imported = admin.import_devices(
                db,
                [data for _, data in contents],
                now,
                dcc_certificates=dcc_certificates,
                accept_unauthenticated=unauthenticated_gbcs,
            )
        except SignerError as exc:
            names = ", ".join(name for name, _ in contents)
            raise click.ClickException(f"{names}: {exc} (none was imported)") from None
        for creds, created in imported:
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
    import json

    from signer.service import admin
    from signer.service.database import registry_database

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
    from signer.service.database import registry_database

    config = load(config_path)
    with about(file), registry_database(config) as db:
        count, errors, bad_rows = cplops.import_inventory(db, file, system_clock())
    if bad_rows:
        refuse_bad_rows(file, errors, bad_rows, "recorded")
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
    from signer.service.database import registry_database

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
    from signer.service.database import registry_database

    config = load(config_path)
    with registry_database(config) as db:
        for line in cplops.record_activation_results(
            db, config.supplier_eui, request_ids, system_clock()
        ):
            click.echo(line)
