"""Registry commands (operations): manufacturers, devices, activations; database only.

The service and database code is imported inside each command, when it runs: `--help`
loads this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NoReturn

import click

from signer.cli.common import actor, command_name, config_option, load, reports_errors
from signer.cli.files import MAX_SHOWN_ROWS, FileProblem, about, refuse_bad_rows
from signer.cli.output import emit_json, json_option
from signer.cli.progress import Stopwatch, elapsed_text, progress
from signer.clock import system_clock
from signer.errors import SignerError

if TYPE_CHECKING:
    from typing import Any

    from signer.caller import Caller
    from signer.config import Config
    from signer.service.manufacturers import ManufacturerCert


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
@json_option
@config_option
@reports_errors
def manufacturers_add(
    code: str, cert_file: BinaryIO, as_json: bool, config_path: Path | None
) -> None:
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
    if as_json:
        emit_json({"code": code.strip().upper(), "added": added})
        return
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
@json_option
@config_option
@reports_errors
def manufacturers_revoke(
    code: str,
    serial: str | None,
    fingerprint: str | None,
    reason: str,
    at_text: str | None,
    as_json: bool,
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
    if as_json:
        emit_json(_certificate_json(cert))
        return
    click.echo(
        f"manufacturer {cert.code:04X}: certificate {cert.subject} (serial {cert.serial}) "
        f"revoked from {cert.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
    )


@manufacturers.command("list")
@json_option
@config_option
@reports_errors
def manufacturers_list(as_json: bool, config_path: Path | None) -> None:
    """List manufacturer codes and their certificates, with their state now: trusted,
    revoked, expired or not yet valid.

    A table; --json: one document, {"manufacturers": [...]}, one object per certificate.
    """
    from signer.cli.output import table
    from signer.service import admin
    from signer.service.database import registry_database

    config = load(config_path)
    with registry_database(config) as db:
        listed = admin.list_manufacturers(db, _now(config))
    if as_json:
        emit_json(
            {"manufacturers": [{**_certificate_json(v.cert), "state": v.state} for v in listed]}
        )
        return
    table(
        [
            [
                f"{v.cert.code:04X}",
                v.cert.subject,
                v.cert.serial,
                v.cert.fingerprint,
                f"{v.cert.not_before:%Y-%m-%d}..{v.cert.not_after:%Y-%m-%d}",
                v.state,
                f"from {v.cert.revoked_at:%Y-%m-%dT%H:%M:%SZ}: {v.cert.revocation_reason}"
                if v.cert.revoked_at is not None
                else "",
            ]
            for v in listed
        ],
        ["CODE", "SUBJECT", "SERIAL", "SHA-256", "VALID", "STATE", "REVOKED"],
    )


def _certificate_json(c: ManufacturerCert) -> dict[str, Any]:
    """A registered manufacturer certificate as --json writes it (times in RFC 3339)."""
    return {
        "code": f"{c.code:04X}",
        "subject": c.subject,
        "serial": c.serial,
        "fingerprint": c.fingerprint,
        "not_before": c.not_before,
        "not_after": c.not_after,
        "revoked_at": c.revoked_at,
        "reason": c.revocation_reason,
        "added_at": c.added_at,
    }


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
@click.argument(
    "sources",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path, allow_dash=True),
)
@click.option(
    "--unauthenticated-gbcs",
    is_flag=True,
    help="Accept raw GBCS payloads (hex or base64), which carry no DCC signature; "
    "each import is recorded in the audit trail as not DCC-authenticated.",
)
@json_option
@config_option
@reports_errors
def devices_import(
    sources: tuple[Path, ...], unauthenticated_gbcs: bool, as_json: bool, config_path: Path | None
) -> None:
    """Import trust anchor cells from GBCS SR 6.24.1 responses, all in one transaction.

    Each SOURCE is a file, a directory (each file in it, by name; not its subdirectories) or
    - for standard input. A file holds one response: a DUIS response XML that carries it in
    sr:GBCSPayload and is signed by one of the [dcc] certificates, or, only with
    --unauthenticated-gbcs, the raw response payload as hex or base64. Standard input holds
    one DUIS response XML, or raw payloads one per line (hex or unwrapped base64).

    Every response is checked before any is imported: if one is bad, each bad one is named
    and nothing is imported (exit 1). Re-importing a device replaces its cells. Every
    response is an audit trail record (device-import). Ends with a summary line (--json: the
    summary as JSON); a progress bar is drawn on stderr when it is a terminal.
    """
    from signer.caller import bound
    from signer.service import devices as device_import
    from signer.service.database import registry_database
    from signer.service.dcc import load_dcc_certificates

    watch = Stopwatch()
    config = load(config_path)
    dcc_certificates = load_dcc_certificates(config.dcc_certificates)
    caller = _cli_caller()
    now = config.pinned_time or system_clock()
    items = _credential_items(sources)
    files = sum(1 for s in sources for _ in _files_of(s))
    # every response is checked before any is imported: one bad response imports none, and
    # each bad one is named (issue 13: all or nothing)
    reader = device_import.CredentialsReader(
        dcc_certificates=dcc_certificates, now=now, accept_unauthenticated=unauthenticated_gbcs
    )
    parsed = []
    problems: list[str] = []
    # the parsed responses live until the import: a collector pass would walk them all
    with (
        bound(caller),
        device_import.collector_paused(),
        progress(len(items), "checking") as advance,
    ):
        for name, read in items:
            try:
                with about(name):
                    parsed.append(reader.parse(read()))
            except click.ClickException as exc:
                problems.append(exc.message)
            advance(1)
    if problems:
        _refuse_bad_responses(problems)
    with (
        registry_database(config) as db,
        bound(caller),
        progress(len(parsed), "importing") as advance,
    ):
        try:  # one transaction: if the write fails, none of the responses is imported
            done = device_import.import_credentials(db, parsed, now, progress=advance)
        except SignerError as exc:
            raise click.ClickException(f"{exc} (none was imported)") from None
    summary = {
        "files": files,
        "responses": len(done.devices),
        "devices": done.added + done.updated,
        "added": done.added,
        "updated": done.updated,
        "elapsed_seconds": round(watch.seconds, 3),
    }
    if as_json:
        emit_json(summary)
        return
    for imported in done.devices[:MAX_SHOWN_ROWS]:
        creds = imported.credentials
        cell = creds.supplier_signing_cell()
        ski = cell.ski.hex() if cell else "none"
        click.echo(
            f"{creds.device}: {'added' if imported.created else 'updated'}, "
            f"{len(creds.cells)} cells, Supplier digital-signing SKI {ski}"
        )
    if len(done.devices) > MAX_SHOWN_ROWS:
        click.echo(f"... and {len(done.devices) - MAX_SHOWN_ROWS} more")
    click.echo(
        f"imported {summary['responses']} response(s) from {files} file(s): "
        f"{done.added} device(s) added, {done.updated} updated, "
        f"in {elapsed_text(watch.seconds)}"
    )


Item = tuple[str, Callable[[], bytes]]


def _credential_items(sources: tuple[Path, ...]) -> list[Item]:
    """(name, reader) of every response the sources hold, in order; a directory with no
    file to import is refused naming it."""
    items: list[Item] = []
    for source in sources:
        if str(source) == "-":
            items.extend(_stdin_items())
            continue
        files = list(_files_of(source))
        if not files:
            raise FileProblem(source, "is a directory with no file to import")
        items.extend((str(f), f.read_bytes) for f in files)
    return items


def _files_of(source: Path) -> Iterator[Path]:
    """A source's files: itself, or a directory's regular files sorted by name (hidden
    files and subdirectories left out); standard input counts as one."""
    if str(source) == "-" or not source.is_dir():
        yield source
        return
    with about(source):
        names = sorted(p for p in source.iterdir() if not p.name.startswith("."))
    yield from (p for p in names if p.is_file())


def _stdin_items() -> list[Item]:
    """Standard input: one DUIS response XML, or raw payloads one per line."""
    data: bytes = sys.stdin.buffer.read()
    if data.lstrip().startswith(b"<") or not data.strip():
        return [("-", functools.partial(bytes, data))]
    return [
        (f"-: line {number}", functools.partial(bytes, line))
        for number, line in enumerate(data.splitlines(), 1)
        if line.strip()
    ]


def _refuse_bad_responses(problems: list[str]) -> NoReturn:
    """Name each bad response (the first ``MAX_SHOWN_ROWS``, then a count); exit 1."""
    shown = problems[: MAX_SHOWN_ROWS - 1]
    for problem in shown:
        click.echo(f"Error: {problem}", err=True)
    hidden = len(problems) - 1 - len(shown)
    if hidden > 0:
        click.echo(f"Error: ... and {hidden} more bad response(s)", err=True)
    count = f" ({len(problems)} bad files: none was imported)" if len(problems) > 1 else ""
    raise click.ClickException(f"{problems[-1]}{count}")


@devices.command("show")
@click.argument("eui")
@json_option
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
        from signer.errors import NotFound

        raise NotFound(f"device {eui} is not registered")
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
@json_option
@config_option
@reports_errors
def devices_inventory(file: Path, as_json: bool, config_path: Path | None) -> None:
    """Import device inventory: CSV with device_id, device_type, hardware_version (4 hex)
    and current_entry_id. Every bad row is reported; if there is any, nothing is recorded.
    A progress bar is drawn on stderr when it is a terminal; --json writes the summary."""
    from signer.service import cplops
    from signer.service.database import registry_database

    watch = Stopwatch()
    config = load(config_path)
    with (
        about(file),
        registry_database(config) as db,
        progress(_lines_of(file), "recording") as advance,
    ):
        count, errors, bad_rows = cplops.import_inventory(
            db, file, system_clock(), progress=advance
        )
    if as_json:
        emit_json(
            {"devices": count, "bad_rows": bad_rows, "elapsed_seconds": round(watch.seconds, 3)}
        )
    if bad_rows:
        refuse_bad_rows(file, errors, bad_rows, "recorded")
    if not as_json:
        click.echo(f"{count} device(s) recorded in {elapsed_text(watch.seconds)}")


def _lines_of(file: Path) -> int:
    """Rows to expect, for the progress bar: the file's lines less the header."""
    with file.open("rb") as f:
        return max(sum(1 for _ in f) - 1, 1)


@devices.command("set")
@click.argument("eui")
@click.option("--type", "device_type", help="ESME, GSME, Comms Hub, PPMID, HCALCS or SAPC.")
@click.option("--hardware-version", help="4 hex digits.")
@click.option("--current-entry", help="CPL entry ID of the firmware the device runs now.")
@json_option
@config_option
@reports_errors
def devices_set(
    eui: str,
    device_type: str | None,
    hardware_version: str | None,
    current_entry: str | None,
    as_json: bool,
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
    if as_json:
        emit_json({"device_id": str(updated), "updated": True})
    else:
        click.echo(f"{updated} updated")


@click.group()
def activations() -> None:
    """SR 11.3 activations the service issued."""


@activations.command("succeeded")
@click.argument("request_ids", nargs=-1, required=True)
@json_option
@config_option
@reports_errors
def activations_succeeded(
    request_ids: tuple[str, ...], as_json: bool, config_path: Path | None
) -> None:
    """Record that these 11.3 requests (by RequestID) activated their firmware: each
    device's inventory then names the image's CPL entry as its current firmware.

    One line per request; --json: {"activations": [{"request_id", "device_id",
    "result"}, ...]} in the order given.
    """
    from signer.service import cplops
    from signer.service.database import registry_database

    config = load(config_path)
    with registry_database(config) as db:
        lines = cplops.record_activation_results(
            db, config.supplier_eui, request_ids, system_clock()
        )
    if not as_json:
        for line in lines:
            click.echo(line)
        return
    done = []
    for request_id, line in zip(request_ids, lines, strict=True):  # one line per request
        device, _, result = line.partition(": ")
        done.append({"request_id": request_id, "device_id": device, "result": result})
    emit_json({"activations": done})
