"""`signer keys`: the life of the Supplier's signing keys, run by security teams.

Private keys are made inside the token and never leave it. Every command that changes a
key is recorded with who ran it (`signer keys operations`). The token, database and
certificate code is imported when a command runs, not for `--help`.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from signer.cli.common import actor, config_option, load, reports_errors, services
from signer.cli.files import about
from signer.cli.output import emit_json, json_option, table

if TYPE_CHECKING:
    from signer.service.keys.lifecycle import KeyRecord
    from signer.service.keys.views import KeyView

KEY_HELP = "The key: its label, or a PKCS#11 URI such as pkcs11:token=T;object=L."
#: the values of `signer.smki.lifecycle.KeyPurpose` (a test holds them equal), spelt out so
#: that `--help` need not import the certificate code
PURPOSES = ("supplier-ds", "xml-sign")
purpose_choice = click.Choice(PURPOSES)


@click.group()
def keys() -> None:
    """The Supplier's keys on the PKCS#11 token: generate, certify, activate, retire.

    \b
    A key's life:  generate -> csr -> (SMKI CA issues) -> install-cert -> activate -> retire
    Only active keys sign; several may be active at once, and each device's Supplier
    trust anchor cell picks the one it trusts.
    """


@keys.command("generate")
@click.option(
    "--purpose",
    type=purpose_choice,
    required=True,
    help="supplier-ds: ARP signatures on firmware and pre-commands; "
    "xml-sign: DUIS request signatures.",
)
@click.option(
    "--label",
    "name",
    required=True,
    metavar="LABEL|URI",
    help="Label of the new key (a URI may also fix its 8-byte CKA_ID with id=).",
)
@json_option
@config_option
@reports_errors
def keys_generate(purpose: str, name: str, as_json: bool, config_path: Path | None) -> None:
    """Generate a P-256 key pair inside the token (non-extractable, sensitive, sign-only).

    The key starts `pending`: request its certificate with `signer keys csr`.
    """
    from signer.service.keys import lifecycle
    from signer.smki.lifecycle import KeyPurpose

    with services(load(config_path)) as svc:
        record = lifecycle.generate(svc, name, KeyPurpose(purpose), actor=actor())
    if as_json:
        emit_json(_record_json(record))
        return
    click.echo(
        f"generated {record.label!r} ({record.purpose}) CKA_ID {record.key_id.hex()}: "
        f"{record.state}"
    )


@keys.command("csr")
@click.option("--label", "name", required=True, metavar="LABEL|URI", help=KEY_HELP)
@click.option("--eui", required=True, help="The Supplier's EUI-64 (x500UniqueIdentifier).")
@click.option("--cn", default="", help="Optional subject common name.")
@click.option("--der", is_flag=True, help="Write DER instead of PEM.")
@click.option(
    "--out",
    type=click.File("wb"),
    default="-",
    show_default=True,
    help="Where to write the request.",
)
@config_option
@reports_errors
def keys_csr(
    name: str, eui: str, cn: str, der: bool, out: BinaryIO, config_path: Path | None
) -> None:
    """Write a PKCS#10 request for the key, signed inside the token.

    The subject is the SMKI Organisation form: CN (if given), OU = the role code of the
    key's purpose (02 Supplier, 87 XML signing), x500UniqueIdentifier = the EUI-64.
    """
    from cryptography.hazmat.primitives import serialization

    from signer.service.keys import lifecycle

    with services(load(config_path)) as svc:
        csr = lifecycle.certificate_request(svc, name, eui, cn=cn, actor=actor())
    out.write(csr.public_bytes(serialization.Encoding.DER if der else serialization.Encoding.PEM))


@keys.command("install-cert")
@click.option("--label", "name", required=True, metavar="LABEL|URI", help=KEY_HELP)
@click.argument("certificate", type=click.File("rb"))
@json_option
@config_option
@reports_errors
def keys_install_cert(
    name: str, certificate: BinaryIO, as_json: bool, config_path: Path | None
) -> None:
    """Store the issued CERTIFICATE (PEM or DER) next to its key.

    Refused unless its public key is the token key's and it passes the SMKI profile of the
    key's purpose now (role, key usage, policy, the Supplier's EUI, validity, issuing CA).
    """
    from signer.service.keys import lifecycle

    with services(load(config_path)) as svc, about(certificate.name, "cert"):
        record = lifecycle.install_certificate(svc, name, certificate.read(), actor=actor())
    if as_json:
        emit_json(_record_json(record))
        return
    click.echo(f"certificate installed on {record.label!r}; state {record.state}")


@keys.command("activate")
@click.option("--label", "name", required=True, metavar="LABEL|URI", help=KEY_HELP)
@click.option(
    "--purpose",
    type=purpose_choice,
    help="Only to adopt a key the ledger does not know (default: its certificate's role).",
)
@json_option
@config_option
@reports_errors
def keys_activate(name: str, purpose: str | None, as_json: bool, config_path: Path | None) -> None:
    """Let a key with an installed certificate sign for the devices that trust it."""
    from signer.service.keys import lifecycle
    from signer.smki.lifecycle import KeyPurpose

    with services(load(config_path)) as svc:
        record = lifecycle.activate(
            svc, name, actor=actor(), purpose=KeyPurpose(purpose) if purpose else None
        )
    if as_json:
        emit_json(_record_json(record))
        return
    click.echo(f"{record.label!r} is {record.state} (SKI {(record.ski or b'').hex()})")


@keys.command("retire")
@click.option("--label", "name", required=True, metavar="LABEL|URI", help=KEY_HELP)
@click.option(
    "--force",
    is_flag=True,
    help="Retire although registered devices still trust the key: they can no "
    "longer be updated by this Supplier key.",
)
@click.option("--reason", default="", help="Why; required with --force, recorded.")
@json_option
@config_option
@reports_errors
def keys_retire(
    name: str, force: bool, reason: str, as_json: bool, config_path: Path | None
) -> None:
    """Retire a key for good: it never signs again (the ledger refuses it and its CKA_SIGN
    is cleared on the token). Refused while registered devices still trust it."""
    from signer.service.keys import lifecycle

    with services(load(config_path)) as svc:
        record = lifecycle.retire(svc, name, actor=actor(), force=force, reason=reason)
    if as_json:
        emit_json(_record_json(record))
        return
    click.echo(f"{record.label!r} is {record.state}")


@keys.command("list")
@json_option
@config_option
@reports_errors
def keys_list(as_json: bool, config_path: Path | None) -> None:
    """The token's keys and the ledger's, with certificates, states and trusting devices.

    --json: one document, {"keys": [...]}, one object per key.
    """
    from signer.service.keys.views import list_keys

    with services(load(config_path)) as svc:
        views, now = list_keys(svc), svc.clock()
    rows = [_row(v, now) for v in views]
    if as_json:
        emit_json({"keys": rows})
        return
    columns = [
        ("label", "LABEL"),
        ("cka_id", "CKA_ID"),
        ("ski", "SKI"),
        ("purpose", "PURPOSE"),
        ("role", "ROLE"),
        ("eui", "EUI"),
        ("serial_hex", "SERIAL(hex)"),
        ("issuer", "ISSUER"),
        ("not_before", "NOT_BEFORE"),
        ("not_after", "NOT_AFTER"),
        ("days_left", "DAYS"),
        ("state", "STATE"),
        ("devices", "DEVICES"),
    ]
    table([[_cell(row[k], k) for k, _ in columns] for row in rows], [title for _, title in columns])
    for row in rows:
        if row["note"]:
            click.echo(f"note: {row['label']}: {row['note']}")


@keys.command("rotation-report")
@click.option("--from", "old", required=True, metavar="LABEL|URI", help="The key being replaced.")
@click.option("--to", "new", required=True, metavar="LABEL|URI", help="The replacement key.")
@json_option
@config_option
@reports_errors
def keys_rotation_report(old: str, new: str, as_json: bool, config_path: Path | None) -> None:
    """The registered devices whose Supplier cell still names the old key, one per line
    (the summary goes to stderr).

    Each needs SR 6.15.1 (Update Security Credentials) to replace that cell with the new
    key's certificate; re-import its SR 6.24.1 response afterwards (`signer devices import`)
    so the registry sees the change. The old key can retire once the list is empty.
    """
    from signer.service.keys.views import rotation_report

    with services(load(config_path)) as svc:
        report = rotation_report(svc, old, new)
    if as_json:
        emit_json(
            {
                "from": {"label": report.old.label, "ski": report.old.ski or b""},
                "to": {
                    "label": report.new.label,
                    "ski": report.new.ski or b"",
                    "state": report.new.state,
                },
                "still_on_old": [str(d) for d in report.still_on_old],
                "on_new": report.on_new,
            }
        )
        return
    click.echo(
        f"{len(report.still_on_old)} device(s) still trust {report.old.label!r} "
        f"(SKI {(report.old.ski or b'').hex()}); {report.on_new} already trust "
        f"{report.new.label!r} (SKI {(report.new.ski or b'').hex()})",
        err=True,
    )
    if report.new.state != "active":
        click.echo(
            f"warning: {report.new.label!r} is {report.new.state}: devices moved to it "
            "are refused until it is activated",
            err=True,
        )
    for device in report.still_on_old:
        click.echo(str(device))


@keys.command("operations")
@json_option
@config_option
@reports_errors
def keys_operations(as_json: bool, config_path: Path | None) -> None:
    """The recorded key operations: who did what to which key, refusals included.

    --json: one document, {"operations": [...]}, oldest first.
    """
    from signer.service.keys import operations

    with services(load(config_path)) as svc:
        records = operations.operations(svc)
    if as_json:
        emit_json(
            {
                "operations": [
                    {
                        "id": r.id,
                        "at": r.at,
                        "actor": r.actor,
                        "operation": r.operation,
                        "key_label": r.key_label,
                        "cka_id": r.key_id.hex() if r.key_id else None,
                        "outcome": r.outcome,
                        "detail": r.detail,
                    }
                    for r in records
                ]
            }
        )
        return
    table(
        [
            [
                f"{r.at:%Y-%m-%d %H:%M:%S}",
                r.actor,
                r.operation,
                r.key_label,
                r.outcome,
                r.detail.get("reason", "") if r.outcome != "ok" else "",
            ]
            for r in records
        ],
        ["AT", "ACTOR", "OPERATION", "KEY", "OUTCOME", "REASON"],
    )


@keys.command("import")
@click.option(
    "--label",
    required=True,
    metavar="LABEL|URI",
    help="CKA_LABEL for the key pair and certificate.",
)
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.File("rb"),
    help="PEM private key (P-256, unencrypted). Test keys only.",
)
@click.option(
    "--cert",
    "cert_file",
    required=True,
    type=click.File("rb"),
    help="PEM or DER certificate of that key.",
)
@click.option("--purpose", type=purpose_choice, help="Default: the certificate's role.")
@json_option
@config_option
@reports_errors
def keys_import(
    label: str,
    key_file: BinaryIO,
    cert_file: BinaryIO,
    purpose: str | None,
    as_json: bool,
    config_path: Path | None,
) -> None:
    """Import an existing test key and its certificate as non-extractable and sensitive.

    For published test keys only: a production key is generated inside the token. The key
    is `pending` until `signer keys activate`; its CKA_ID becomes the certificate's SKI.
    """
    from signer.service.keys import lifecycle
    from signer.smki.lifecycle import KeyPurpose

    with (
        services(load(config_path)) as svc,
        about(key_file.name, "key"),
        about(cert_file.name, "cert"),
    ):
        record = lifecycle.import_existing(
            svc,
            label,
            key_file.read(),
            cert_file.read(),
            actor=actor(),
            purpose=KeyPurpose(purpose) if purpose else None,
        )
    if as_json:
        emit_json(_record_json(record))
        return
    click.echo(
        f"imported {record.label!r} ({record.purpose}) CKA_ID {record.key_id.hex()}: {record.state}"
    )


def _row(v: KeyView, now: dt.datetime) -> dict[str, Any]:
    """A key as `keys list` writes it: the names of the API's KeyInfo fields where they
    are the same values (ListKeys), and the CLI's own extras (serial_hex, can_sign, note)."""
    return {
        "label": v.label,
        "cka_id": v.key_id.hex(),
        "ski": v.ski.hex() if v.ski else None,
        "purpose": v.purpose or None,
        "role": f"{v.role:02X}" if v.role is not None else None,
        "eui": str(v.eui) if v.eui else None,
        "certificate_serial": str(v.serial) if v.serial is not None else None,  # decimal
        "serial_hex": f"{v.serial:x}" if v.serial is not None else None,
        "issuer": v.issuer or None,
        "not_before": v.not_before,
        "not_after": v.not_after,
        "days_left": v.days_left(now),
        "state": v.state,
        "on_token": v.on_token,
        "can_sign": v.can_sign,
        "devices": v.devices,
        "note": v.certificate_note or None,
    }


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return f"{value:%Y-%m-%d}"
    return str(value)


def _record_json(r: KeyRecord) -> dict[str, Any]:
    """A key's ledger record after a command changed it, as --json writes it: the names
    `keys list` uses for the same values."""
    return {
        "label": r.label,
        "token_label": r.token_label,
        "cka_id": r.key_id,
        "ski": r.ski,
        "purpose": r.purpose,
        "state": r.state,
        "certificate_serial": r.certificate_serial,
        "created_at": r.created_at,
        "activated_at": r.activated_at,
        "retired_at": r.retired_at,
    }
