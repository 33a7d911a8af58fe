"""`signer dev`: the development default and the stand-ins for the parties outside it.

`dev provision` makes the development token's keys, devices and configuration; `dev dcc` and
`dev smki` play the DCC and the SMKI issuing CA for a developer, so the README's worked
example and key rotation walkthrough run to the end. They refuse any configuration that is
not in development mode. Light at import: what a command needs is imported when it runs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from signer.cli.common import config_option, load, reports_errors, services
from signer.cli.files import about, device_list, existing_file, read_input
from signer.cli.main import DEFAULT_MODULE
from signer.cli.output import emit_json, json_option

if TYPE_CHECKING:
    from signer.config import Config


@click.group()
def dev() -> None:
    """The development default: a local SoftHSM2 token with matching keys and devices,
    and stand-ins for the DCC and the SMKI issuing CA (development mode only)."""


@dev.command("provision")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("var/dev"),
    show_default=True,
)
@click.option(
    "--module", default=DEFAULT_MODULE, show_default=True, help="PKCS#11 module (SoftHSM2)."
)
@click.option(
    "--schema-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="DUIS schema directory to validate against (none: no schema check).",
)
@click.option(
    "--database-url",
    envvar="SIGNER_DATABASE_URL",
    show_envvar=True,
    help="Database to provision and to write into the configuration "
    "(default: SQLite beside the token, DIR/signer.db).",
)
@click.option(
    "--listen",
    default="127.0.0.1:50051",
    show_default=True,
    help="gRPC address written into the configuration.",
)
@click.option(
    "--metrics-listen",
    default="127.0.0.1:9464",
    show_default=True,
    help="Metrics address written into the configuration.",
)
@json_option
@reports_errors
def dev_provision(
    directory: Path,
    module: str,
    schema_dir: Path | None,
    database_url: str | None,
    listen: str,
    metrics_listen: str,
    as_json: bool,
) -> None:
    """Provision (once) the dev token's keys, certificates, devices and an example delivery,
    and the development DCC and SMKI CA (keys in DIR/dcc and DIR/smki-ca).

    The token itself comes first, from `softhsm/init-token DIR signer-dev`. The database
    URL, listen addresses and schema directory given here are the ones the written
    configuration keeps. Run again on a directory provisioned by an older version, it adds
    what that lacks (the development DCC and SMKI CA and the configuration trusting them).
    """
    from signer.service.devsetup import DEV_DEVICES, provision

    env = provision(
        directory,
        module=module,
        schema_dir=schema_dir,
        database_url=database_url,
        listen=listen,
        metrics_listen=metrics_listen,
    )
    example = env.directory / "example"
    image_id = (example / "hash.hex").read_text().strip()
    if as_json:
        emit_json(
            {
                "directory": str(env.directory),
                "config": str(env.config_path),
                "image_id": image_id,
                "devices": [str(d) for d in DEV_DEVICES],
                "dcc_certificate": str(env.dcc_dir / "cert.pem"),
                "smki_ca_certificate": str(env.smki_ca_dir / "cert.pem"),
                "added": list(env.added),
            }
        )
        return
    for what in env.added:
        click.echo(f"added to {_rel(env.directory)}: {what}", err=True)

    # the README's "Try it" calls, as written there (tests/service/test_devsetup.py)
    b1, b2, b3 = DEV_DEVICES[0], DEV_DEVICES[1], DEV_DEVICES[2]
    config = load(env.config_path)  # with the SIGNER_* overrides `serve` will apply
    srv = _server_option(config.listen)
    out = env.directory / "out"
    cfg = f"--config {_rel(env.config_path)}"
    activation = env.directory / "activation"
    response = env.directory / "dcc" / "responses" / f"{b1}.xml"
    signed = env.directory / "signed"
    click.echo(f"""development token, keys and devices ready: {_rel(env.config_path)}

Once the server is up, try the three calls from another shell in this directory:

  .venv/bin/signer verify{srv} --ota-header {_rel(example / "ota_header.bin")} \\
      --manufacturer-image {_rel(example / "manufacturer_image.bin")} \\
      --signature {_rel(example / "manufacturer_signature.der")} --hash {_rel(example / "hash.hex")}

  .venv/bin/signer resign{srv} --image-id {image_id} \\
      --device {b1} --device {b2} --out-dir {_rel(out)}

  .venv/bin/signer build-duis{srv} --upgrade-image {_rel(out / "supplier-ds.bin")} \\
      --device {b1} --firmware-version 00000002 --out {_rel(out / "request.xml")}

Then an activation, with the development DCC playing the DCC (README "Worked example"):

    .venv/bin/signer activate{srv} --image-id {image_id} \\
        --device {b1} --device {b3} --out-dir {_rel(activation)}
    .venv/bin/signer dev dcc respond --request {_rel(activation / f"{b1}.xml")} \\
        --out {_rel(response)} {cfg}
    .venv/bin/signer sign-precommand{srv} --dcc-response {_rel(response)} --out-dir {_rel(signed)}
    .venv/bin/signer dev dcc done --signed {_rel(signed / "signed-pre-command.xml")} {cfg}
""")


def _server_option(listen: str) -> str:
    """`` --server ADDR`` when the server will listen where a client would not look by
    default (changed dev ports), so the printed commands work as printed."""
    default = os.environ.get("SIGNER_SERVER", "127.0.0.1:50051")
    host, _, port = listen.rpartition(":")
    if port == "0":
        return " --server HOST:PORT"  # the server prints "READY host:port" once it listens
    if host in ("0.0.0.0", "[::]", ""):  # noqa: S104 (a client reaches those on loopback)
        listen = f"127.0.0.1:{port}"
    return "" if listen == default else f" --server {listen}"


@dev.group()
def dcc() -> None:
    """The development DCC: answers requests this development server issued, signed with
    the development DCC key the development configuration trusts ([dcc] certificates)."""


@dcc.command("respond")
@click.option(
    "--request",
    "request_file",
    required=True,
    type=existing_file,
    help="An SR 11.3 request `signer activate` wrote (DIR/<device>.xml).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the DCC's signed DUIS response carrying the CS06 pre-command.",
)
@config_option
@json_option
@reports_errors
def dcc_respond(request_file: Path, out: Path, config_path: Path | None, as_json: bool) -> None:
    """Answer an SR 11.3 request as the DCC: the CS06 pre-command in a signed DUIS response.

    The request must be one this server issued: signed by its XML-signing key, with its
    RequestID in the issued-request records. The response is what `signer sign-precommand
    --dcc-response OUT` takes.
    """
    from signer.service import devdcc

    config = _development(config_path, "signer dev dcc respond")
    data = read_input(request_file)
    with services(config) as svc, about(request_file):
        answer = devdcc.respond(svc, data, field=str(request_file))
    _write(out, answer.document)
    result = {
        "request_id": str(answer.request_id),
        "device_id": str(answer.device),
        "pre_command": answer.pre_command,
        "out": str(out),
    }
    if as_json:
        emit_json(result)
        return
    click.echo(f"{answer.device}: CS06 pre-command for {answer.request_id} in {out}")
    click.echo(f"next: signer sign-precommand --dcc-response {out} --out-dir DIR")


@dcc.command("done")
@click.option(
    "--signed",
    "signed_file",
    required=True,
    type=existing_file,
    help="The signed pre-command `signer sign-precommand` wrote (DIR/signed-pre-command.xml).",
)
@config_option
@json_option
@reports_errors
def dcc_done(signed_file: Path, config_path: Path | None, as_json: bool) -> None:
    """Report an activation done, as the DCC would once the device ran the signed command.

    Checks the SignedPreCommand request (this server's XML signature, and the CS06 signature
    with the key the device's Supplier cell names), then records the activation as
    `signer activations succeeded REQUEST_ID` does: the device now runs the image's CPL entry.
    """
    from signer.service import devdcc

    config = _development(config_path, "signer dev dcc done")
    data = read_input(signed_file)
    with services(config) as svc, about(signed_file):
        done = devdcc.activation_done(svc, data, field=str(signed_file))
    if as_json:
        emit_json(
            {
                "request_id": str(done.request_id),
                "device_id": str(done.device),
                "current_entry_id": done.current_entry_id,
            }
        )
        return
    click.echo(done.message)


@dcc.command("update-credentials")
@click.option(
    "--certificate",
    "cert_file",
    required=True,
    type=existing_file,
    help="The new Supplier digital-signing certificate (PEM or DER) the cells get.",
)
@click.option("--device", "device_ids", multiple=True, metavar="EUI", help="A device (repeat).")
@click.option(
    "--devices-file",
    type=existing_file,
    help="Devices one per line, as `signer keys rotation-report` prints them.",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write each device's response, DIR/<device>.xml.",
)
@config_option
@json_option
@reports_errors
def dcc_update_credentials(
    cert_file: Path,
    device_ids: tuple[str, ...],
    devices_file: Path | None,
    out_dir: Path,
    config_path: Path | None,
    as_json: bool,
) -> None:
    """Carry out SR 6.15.1 (Update Security Credentials) on devices and read their cells back.

    Each device's Supplier digital-signing cell is replaced with the certificate's SKI, and
    its SR 6.24.1 read-back is written as a DUIS response signed by the development DCC:
    what `signer devices import OUT_DIR/*.xml` takes.
    """
    from signer.service import devdcc
    from signer.service.devices import parse_devices
    from signer.smki.certificate import load_certificate

    config = _development(config_path, "signer dev dcc update-credentials")
    euis = parse_devices(device_list(device_ids, devices_file), field="--device")
    data = read_input(cert_file)
    with about(cert_file):
        cert = load_certificate(data, field=str(cert_file))
    with services(config) as svc, about(cert_file):
        responses = devdcc.update_credentials(svc, euis, cert, field=str(cert_file))
    written = []
    for r in responses:
        path = out_dir / f"{r.device}.xml"
        _write(path, r.document)
        written.append((r, path))
    if as_json:
        emit_json(
            {
                "responses": [
                    {"device_id": str(r.device), "ski": r.ski, "out": str(path)}
                    for r, path in written
                ]
            }
        )
        return
    for r, path in written:
        click.echo(f"{r.device}: Supplier cell now names SKI {r.ski.hex()}: {path}")
    click.echo(f"next: signer devices import {out_dir}/*.xml")


@dev.group()
def smki() -> None:
    """The development SMKI issuing CA (its key in DIR/smki-ca; [smki] issuers lists it)."""


@smki.command("sign")
@click.argument("csr_file", type=existing_file)
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the issued certificate (PEM).",
)
@click.option(
    "--days", type=click.IntRange(min=1), default=730, show_default=True, help="Validity."
)
@config_option
@json_option
@reports_errors
def smki_sign(
    csr_file: Path, out: Path, days: int, config_path: Path | None, as_json: bool
) -> None:
    """Issue a certificate for a request from `signer keys csr`, as the SMKI issuing CA.

    The SMKI Organisation profile: the request's subject (role 02 or 87 and the Supplier
    EUI), keyUsage digitalSignature, the SMKI policy, the method-2 SKI of the request's key.
    `signer keys install-cert --label L OUT` then takes it.
    """
    from cryptography.hazmat.primitives import serialization

    from signer.clock import system_clock
    from signer.service import devsmki
    from signer.smki.certificate import subject_key_identifier

    config = _development(config_path, "signer dev smki sign")
    data = read_input(csr_file)
    now = config.pinned_time or system_clock()
    with about(csr_file):
        cert = devsmki.sign_csr(config, data, now=now, days=days, field=str(csr_file))
    _write(out, cert.public_bytes(serialization.Encoding.PEM))
    ski = subject_key_identifier(cert)
    result = {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": str(cert.serial_number),
        "ski": ski,
        "not_before": cert.not_valid_before_utc,
        "not_after": cert.not_valid_after_utc,
        "out": str(out),
    }
    if as_json:
        emit_json(result)
        return
    click.echo(
        f"issued {out}: {result['subject']} by {result['issuer']}, SKI {ski.hex()}, "
        f"valid to {cert.not_valid_after_utc:%Y-%m-%d}"
    )


def _development(config_path: Path | None, command: str) -> Config:
    from signer.service.devparties import require_development

    config = load(config_path)
    require_development(config, command)
    return config


def _rel(p: Path) -> str:
    return os.path.relpath(p)


def _write(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot write it: {exc.strerror}") from None
