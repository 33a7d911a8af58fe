"""Client commands: drive the gRPC API from a shell, files in, files out.

They only talk gRPC, so they never load the database, the token or the XML code (see
`signer.cli.main.CLIENT_COMMANDS`); grpc and the generated messages are imported by each
command when it runs, so that `--help` stays as quick as `signer --help`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from signer.cli.connection import Connection, connection_options
from signer.cli.files import (
    FileProblem,
    about,
    device_list,
    device_stream,
    existing_file,
    read_input,
    read_or_empty,
    safe_name,
)
from signer.cli.output import (
    ExitCode,
    emit_json,
    emit_json_line,
    exit_with,
    json_option,
    refusal_line,
)


@click.command()
@click.option("--ota-header", type=existing_file, help="Separate shape: the OTA header.")
@click.option(
    "--manufacturer-image", type=existing_file, help="Separate shape: the Manufacturer Image."
)
@click.option(
    "--gbcs",
    "gbcs_file",
    type=existing_file,
    help="GBCS shape: upgrade image whose signature slot holds the manufacturer's.",
)
@click.option("--header-and-image", type=existing_file, help="Combination shape: header || image.")
@click.option("--signature", type=existing_file, help="Manufacturer signature (raw r||s or DER).")
@click.option("--hash", "hash_file", type=existing_file, help="SHA-256 of the Manufacturer Image.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the verdict as JSON here (the document --json prints).",
)
@json_option
@connection_options
def verify(
    ota_header: Path | None,
    manufacturer_image: Path | None,
    gbcs_file: Path | None,
    header_and_image: Path | None,
    signature: Path | None,
    hash_file: Path | None,
    out: Path | None,
    as_json: bool,
    connection: Connection,
) -> None:
    """Verify a manufacturer delivery (VerifyManufacturer). Exit 0 if verified, 3 if not.

    Prints the verdict, the image ID and each check; --json prints the response with the
    API's field names (bytes in hex).
    """
    import json

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.cli.output import jsonable, message_dict

    if gbcs_file:
        req = pb.VerifyManufacturerRequest(
            gbcs=pb.GbcsDelivery(upgrade_image=read_input(gbcs_file), hash=read_or_empty(hash_file))
        )
    elif header_and_image:
        req = pb.VerifyManufacturerRequest(
            combined=pb.CombinedDelivery(
                header_and_image=read_input(header_and_image),
                signature=read_or_empty(signature),
                hash=read_or_empty(hash_file),
            )
        )
    elif ota_header and manufacturer_image:
        req = pb.VerifyManufacturerRequest(
            separate=pb.SeparateDelivery(
                ota_header=read_input(ota_header),
                manufacturer_image=read_input(manufacturer_image),
                signature=read_or_empty(signature),
                hash=read_or_empty(hash_file),
            )
        )
    else:
        raise click.UsageError(
            "give --ota-header and --manufacturer-image, or --gbcs, or --header-and-image"
        )
    files = {
        "ota_header": ota_header,
        "manufacturer_image": manufacturer_image,
        "upgrade_image": gbcs_file,
        "header_and_image": header_and_image,
        "signature": signature,
        "hash": hash_file,
    }
    resp = connection.call("VerifyManufacturer", req, files)
    verdict = message_dict(resp)
    if out:
        out.write_text(json.dumps(jsonable(verdict), indent=2, sort_keys=True) + "\n")
    if as_json:
        emit_json(verdict)
    else:
        click.echo(f"{'VERIFIED' if resp.verified else 'NOT VERIFIED'} image {resp.image_id}")
        if resp.cpl_entry_id:
            click.echo(f"CPL entry {resp.cpl_entry_id}")
        for check in resp.checks:
            said = f": {check.detail}" if check.detail else ""
            click.echo(f"  {check.name}: {'passed' if check.passed else 'FAILED'}{said}")
    exit_with(ExitCode.OK if resp.verified else ExitCode.NOT_VERIFIED)


@click.command()
@click.option("--image-id", required=True, help="Image ID from verify (SHA-256, hex).")
@click.option("--device", multiple=True, help="Device EUI-64; repeat or comma-separate.")
@click.option("--devices-file", type=existing_file, help="One device EUI-64 per line.")
@click.option("--force-replace", is_flag=True, help="Set the Force Replace byte to 0x01.")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to write one upgrade image per key, and result.json.",
)
@json_option
@connection_options
def resign(
    image_id: str,
    device: tuple[str, ...],
    devices_file: Path | None,
    force_replace: bool,
    out_dir: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """Re-sign a verified image for devices (Resign): one upgrade image per key.

    Writes OUT_DIR/<key label>.bin for each key the devices' trust anchor cells name, and
    OUT_DIR/result.json listing which devices each image serves and which were refused
    (the document --json prints: the response's fields, each image's bytes replaced by
    upgrade_image_file, the file they were written to). Exit 0, or 4 when some devices
    were refused.
    """
    import json

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.cli.output import jsonable, message_dict

    req = pb.ResignRequest(
        image_id=image_id, device_ids=device_list(device, devices_file), force_replace=force_replace
    )
    resp = connection.call("Resign", req, {"device_ids": devices_file})
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for img in resp.images:
        path = out_dir / f"{safe_name(img.key_label)}.bin"  # labels are unique on a token
        path.write_bytes(img.upgrade_image)
        img.ClearField("upgrade_image")  # written: not to be converted to text
        paths.append(path)
    summary = message_dict(resp)
    for written, path in zip(summary["images"], paths, strict=True):
        _name_files(written, {"upgrade_image": path})
    (out_dir / "result.json").write_text(
        json.dumps(jsonable(summary), indent=2, sort_keys=True) + "\n"
    )
    if as_json:
        emit_json(summary)
    else:
        for written in summary["images"]:
            click.echo(
                f"{written['upgrade_image_file']}: key {written['key_label']} "
                f"for {len(written['device_ids'])} device(s)"
            )
        _refusals(resp.refused)
    exit_with(ExitCode.SOME_REFUSED if resp.refused else ExitCode.OK)


def _refusals(refused: Iterable[Any]) -> None:
    """One line per refused device (pb.DeviceRefusal), its upgrade path where there is one."""
    for r in refused:
        click.echo(refusal_line(r.device_id, r.reason, r.detail, r.upgrade_path))


@click.command("build-duis")
@click.option("--image-id", help="A verified library image; re-signed with the devices' key.")
@click.option(
    "--upgrade-image", type=existing_file, help="An upgrade image written by `signer resign`."
)
@click.option("--device", multiple=True, help="Device EUI-64; repeat or comma-separate.")
@click.option("--devices-file", type=existing_file, help="One device EUI-64 per line.")
@click.option("--firmware-version", required=True, help="DUIS FirmwareVersion, 1-8 characters.")
@click.option("--service", type=click.Choice(["11.1", "11.4"]), default="11.1", show_default=True)
@click.option("--force-replace", is_flag=True, help="With --image-id: Force Replace 0x01.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the signed DUIS XML.",
)
@json_option
@connection_options
def build_duis(
    image_id: str | None,
    upgrade_image: Path | None,
    device: tuple[str, ...],
    devices_file: Path | None,
    firmware_version: str,
    service: str,
    force_replace: bool,
    out: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """Build the signed DUIS SR 11.1 / 11.4 request (BuildDUIS).

    --json prints the response's fields, the request's bytes replaced by
    duis_request_file, the file they were written to. Exit 0, or 4 when some devices
    were refused.
    """
    from signer.api._proto.signer.v1 import signer_pb2 as pb

    if (image_id is None) == (upgrade_image is None):
        raise click.UsageError("give exactly one of --image-id or --upgrade-image")
    req = pb.BuildDUISRequest(
        device_ids=device_list(device, devices_file),
        firmware_version=firmware_version,
        service_reference=service,
        force_replace=force_replace,
    )
    if image_id is not None:
        req.image_id = image_id
    else:
        assert upgrade_image is not None
        req.upgrade_image = read_input(upgrade_image)
    resp = connection.call(
        "BuildDUIS", req, {"upgrade_image": upgrade_image, "device_ids": devices_file}
    )
    out.write_bytes(resp.duis_request)
    if as_json:
        emit_json(_written_dict(resp, {"duis_request": out}))
    else:
        click.echo(f"{out}: RequestID {resp.request_id}, {len(resp.device_ids)} device(s)")
        _refusals(resp.refused)
    exit_with(ExitCode.SOME_REFUSED if resp.refused else ExitCode.OK)


@click.command()
@click.option("--image-id", required=True, help="The verified image being activated.")
@click.option("--device", multiple=True, help="Device EUI-64; repeat or comma-separate.")
@click.option("--devices-file", type=existing_file, help="One device EUI-64 per line (any number).")
@click.option(
    "--at",
    "at",
    help="Future-dated activation time, ISO 8601 with a zone "
    "(e.g. 2030-01-15T09:00:00Z); default: immediate.",
)
@click.option("--cancel", is_flag=True, help="Cancel a future-dated activation instead.")
@click.option("--batch", default=1000, show_default=True, help="Devices per streamed message.")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes <device>.xml per request and refused.jsonl.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='JSON lines on stdout, one per device as it comes: {"request": {...}} or '
    "{\"refused\": {...}} (the API's field names; each request's bytes replaced by "
    "duis_request_file, its file).",
)
@connection_options
def activate(
    image_id: str,
    device: tuple[str, ...],
    devices_file: Path | None,
    at: str | None,
    cancel: bool,
    batch: int,
    out_dir: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """Build signed SR 11.3 Activate Firmware requests (StreamActivation), one per device.

    The device list is streamed, so it may be any length. Each refused device is one line
    (with its upgrade path where there is one) and one line of OUT_DIR/refused.jsonl.
    Exit 0, or 4 when some devices were refused.
    """
    import json

    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
    from signer.cli.output import message_dict

    spec = pb.ActivationSpec(image_id=image_id, cancel=cancel)
    if at is not None:
        try:
            when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise click.BadParameter(f"{at!r} is not ISO 8601", param_hint="--at") from None
        ts = Timestamp()
        ts.FromDatetime(when.astimezone(dt.UTC))
        spec.execution_time.CopyFrom(ts)
    ids = list(device)
    out_dir.mkdir(parents=True, exist_ok=True)

    def requests() -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(activation=spec)
        chunk: list[str] = []
        for d in device_stream(ids, devices_file):
            chunk.append(d)
            if len(chunk) >= batch:
                yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=chunk))
                chunk = []
        if chunk:
            yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=chunk))

    built = refused = 0
    with (out_dir / "refused.jsonl").open("w") as rejects, connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            results = (
                r
                for batch in stub.StreamActivation(requests(), timeout=3600)
                for r in batch.results
            )
            for result in results:
                if result.WhichOneof("result") == "request":
                    r = result.request
                    path = out_dir / f"{safe_name(r.device_id)}.xml"
                    path.write_bytes(r.duis_request)
                    built += 1
                    if as_json:
                        emit_json_line({"request": _written_dict(r, {"duis_request": path})})
                else:
                    f = result.refused
                    refusal = message_dict(f)
                    rejects.write(json.dumps(refusal, sort_keys=True) + "\n")
                    refused += 1
                    if as_json:
                        emit_json_line({"refused": refusal})
                    else:
                        click.echo(refusal_line(f.device_id, f.reason, f.detail, f.upgrade_path))
        except grpc.RpcError as exc:
            connection.fail(exc)
    if not as_json:
        click.echo(f"{built} request(s) in {out_dir}, {refused} refused (refused.jsonl)")
    exit_with(ExitCode.SOME_REFUSED if refused else ExitCode.OK)


@click.command("sign-precommand")
@click.argument(
    "sources", nargs=-1, type=click.Path(exists=True, path_type=Path), metavar="[SOURCE]..."
)
@click.option("--pre-command", type=existing_file, help="The CS06 pre-command (binary or hex).")
@click.option(
    "--dcc-response",
    type=existing_file,
    help="Or the DUIS response XML carrying it, signed by one of the server's DCC certificates.",
)
@click.option(
    "--from-file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path),
    help="Batch form: a file listing SOURCEs, one path per line ('-': standard input).",
)
@click.option(
    "--unauthenticated-gbcs",
    is_flag=True,
    help="Needed with --pre-command: raw GBCS carries no DCC signature; the signature "
    "records say it was not DCC-authenticated. In the batch form: the SOURCEs are bare "
    "pre-commands (binary or hex), not DCC responses.",
)
@click.option(
    "--batch",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Batch form: pre-commands per streamed message (fewer if they pass 8 MiB).",
)
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes signed-pre-command.bin and .xml; in the batch form <device>.bin and "
    "<device>.xml per signed pre-command, and refused.jsonl.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write the result as JSON on stdout (keys as the API's field names; each file "
    "written named as <field>_file); the batch form writes JSON lines, one per pre-command: "
    '{"source_file": ..., "signed": {...}} or {"source_file": ..., "refused": {...}}.',
)
@connection_options
def sign_precommand(
    sources: tuple[Path, ...],
    pre_command: Path | None,
    dcc_response: Path | None,
    from_file: Path | None,
    unauthenticated_gbcs: bool,
    batch: int,
    out_dir: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """Check CS06 pre-commands against the 11.3 requests they answer and sign them.

    Single form (SignPreCommand): the DCC's signed DUIS response (--dcc-response F), or the
    raw pre-command with --pre-command F --unauthenticated-gbcs; writes
    OUT_DIR/signed-pre-command.bin (APDU || 0x40 || r||s) and .xml (the signed DUIS request).
    A refusal is an error (exit 1).

    Batch form (StreamSignPreCommands): SOURCEs are the DCC's signed DUIS responses (with
    --unauthenticated-gbcs: bare pre-commands), each a file or a directory (its files,
    sorted; hidden files and subdirectories left out), and/or listed by --from-file; sent
    --batch at a time. Writes OUT_DIR/<device>.bin and <device>.xml per signed pre-command
    and one line per refusal to OUT_DIR/refused.jsonl; prints one line per pre-command,
    then a summary. A refused pre-command does not stop the others: exit 0 when all were
    signed, 4 when some were refused, 1 on an error (a file that cannot be read: those
    before it are signed, none after it).
    """
    if sources or from_file is not None:
        if pre_command is not None or dcc_response is not None:
            raise click.UsageError(
                "give SOURCEs (or --from-file) for the batch form, or one of --pre-command "
                "or --dcc-response, not both"
            )
        paths = _batch_sources(sources, from_file)
        _sign_batch(paths, unauthenticated_gbcs, batch, out_dir, as_json, connection)
        return
    _sign_one(pre_command, dcc_response, unauthenticated_gbcs, out_dir, as_json, connection)


def _sign_one(
    pre_command: Path | None,
    dcc_response: Path | None,
    unauthenticated_gbcs: bool,
    out_dir: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """The single form: one pre-command, SignPreCommand."""
    from signer.api._proto.signer.v1 import signer_pb2 as pb

    if (pre_command is None) == (dcc_response is None):
        raise click.UsageError(
            "give exactly one of --pre-command or --dcc-response (or SOURCEs for the batch form)"
        )
    if pre_command is not None:
        if not unauthenticated_gbcs:
            raise click.UsageError(
                "--pre-command is raw GBCS that carries no DCC signature: give the DCC's "
                "signed --dcc-response instead, or add --unauthenticated-gbcs"
            )
        req = pb.SignPreCommandRequest(
            pre_command=_pre_command_bytes(pre_command), accept_unauthenticated=True
        )
    else:
        assert dcc_response is not None
        req = pb.SignPreCommandRequest(dcc_response=read_input(dcc_response))
    files = {"pre_command": pre_command, "dcc_response": dcc_response}
    resp = connection.call("SignPreCommand", req, files)
    out_dir.mkdir(parents=True, exist_ok=True)
    binary, xml = out_dir / "signed-pre-command.bin", out_dir / "signed-pre-command.xml"
    binary.write_bytes(resp.signed_pre_command)
    xml.write_bytes(resp.duis_request)
    if as_json:
        emit_json(_written_dict(resp, {"signed_pre_command": binary, "duis_request": xml}))
    else:
        click.echo(f"signed for {resp.device_id} (RequestID {resp.request_id}) in {out_dir}")


def _pre_command_bytes(path: Path) -> bytes:
    """A bare CS06 pre-command from its file: binary, or hex text."""
    data = read_input(path)
    text = data.strip()
    if text and all(c in b"0123456789abcdefABCDEF" for c in text):
        if len(text) % 2:
            raise FileProblem(path, f"{len(text)} hex digits: an odd number")
        return bytes.fromhex(text.decode())
    return data


#: the batch form's limits: a streamed message stays well under the server's MAX_REQUEST
#: (16 MiB), and one file alone must fit in it
_BATCH_BYTES = 8 * 1024 * 1024
_ITEM_BYTES = 4 * 1024 * 1024


def _batch_sources(sources: tuple[Path, ...], from_file: Path | None) -> list[Path]:
    """The files the batch form signs, in order, each once: SOURCEs, then those --from-file
    lists; a directory stands for its files. Checked before anything is sent."""
    paths = [p for source in sources for p in _files_of(source)]
    if from_file is not None:
        listing = "standard input" if str(from_file) == "-" else str(from_file)
        for number, line in _listed_paths(from_file):
            listed = Path(line)
            if not listed.exists():
                raise FileProblem(listing, f"line {number}: {line}: no such file or directory")
            paths.extend(_files_of(listed))
    if not paths:
        shown = "standard input" if str(from_file) == "-" else str(from_file)
        raise FileProblem(shown, "lists no file (one path per line)")
    seen: set[Path] = set()
    unique = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def _files_of(source: Path) -> list[Path]:
    """A source's files: itself, or a directory's regular files sorted by name (hidden
    files and subdirectories left out; none at all is refused, naming the directory)."""
    if not source.is_dir():
        return [source]
    with about(source):
        found = sorted(p for p in source.iterdir() if not p.name.startswith(".") and p.is_file())
    if not found:
        raise FileProblem(source, "is a directory with no file to sign")
    return found


def _listed_paths(from_file: Path) -> list[tuple[int, str]]:
    """(line number, path) of each non-blank line of --from-file (or standard input)."""
    import sys

    name = "standard input" if str(from_file) == "-" else str(from_file)
    data = sys.stdin.buffer.read() if str(from_file) == "-" else read_input(from_file)
    listed = []
    for number, raw in enumerate(data.splitlines(), 1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as exc:
            raise FileProblem(name, f"line {number}: not UTF-8 text (byte {exc.start})") from None
        if line:
            listed.append((number, line))
    return listed


def _sign_batch(
    paths: list[Path],
    raw: bool,
    batch: int,
    out_dir: Path,
    as_json: bool,
    connection: Connection,
) -> None:
    """The batch form: the files streamed to StreamSignPreCommands, each result reported
    (and its files written) as its batch's answer comes."""
    import collections
    import json

    import grpc

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
    from signer.cli.output import message_dict

    field = "pre_commands" if raw else "dcc_responses"
    sent: collections.deque[list[Path]] = collections.deque()  # the files of each batch sent
    problems: list[FileProblem] = []  # a file the stream could not send: it stopped there

    def batches() -> Iterator[pb.PreCommandBatch]:
        # runs on gRPC's thread: a problem with a file is kept, to be reported afterwards
        chunk: list[tuple[Path, bytes]] = []
        size = 0
        for path in paths:
            try:
                data = _pre_command_bytes(path) if raw else read_input(path)
                if len(data) > _ITEM_BYTES:
                    raise FileProblem(path, f"{len(data)} bytes: too large for a pre-command")
            except FileProblem as exc:
                problems.append(exc)
                break
            if chunk and (len(chunk) >= batch or size + len(data) > _BATCH_BYTES):
                yield message(chunk)
                chunk, size = [], 0
            chunk.append((path, data))
            size += len(data)
        if chunk:
            yield message(chunk)

    def message(chunk: list[tuple[Path, bytes]]) -> pb.PreCommandBatch:
        sent.append([p for p, _ in chunk])
        items = [d for _, d in chunk]
        if raw:
            return pb.PreCommandBatch(pre_commands=items, accept_unauthenticated=True)
        return pb.PreCommandBatch(dcc_responses=items)

    out_dir.mkdir(parents=True, exist_ok=True)
    stems: set[str] = set()
    signed = refused = 0
    with (out_dir / "refused.jsonl").open("w") as rejects, connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            for answer in stub.StreamSignPreCommands(batches(), timeout=3600):
                files = sent.popleft()
                if len(answer.results) != len(files):
                    raise click.ClickException(
                        f"the server answered {len(answer.results)} result(s) for a batch of "
                        f"{len(files)} ({files[0]} to {files[-1]})"
                    )
                for position, (path, result) in enumerate(zip(files, answer.results, strict=True)):
                    which = result.WhichOneof("result")
                    if which == "signed":
                        s = result.signed
                        stem = _unique_stem(safe_name(s.device_id), stems)
                        binary, xml = out_dir / f"{stem}.bin", out_dir / f"{stem}.xml"
                        binary.write_bytes(s.signed_pre_command)
                        xml.write_bytes(s.duis_request)
                        signed += 1
                        if as_json:
                            written = {"signed_pre_command": binary, "duis_request": xml}
                            doc = _written_dict(s, written)
                            emit_json_line({"source_file": str(path), "signed": doc})
                        else:
                            click.echo(
                                f"signed {s.device_id} (RequestID {s.request_id}) from {path}: "
                                f"{binary}, {xml}"
                            )
                    elif which == "refused":
                        f = result.refused
                        refusal = message_dict(f)
                        line = {**refusal, "source_file": str(path)}
                        rejects.write(json.dumps(line, sort_keys=True) + "\n")
                        refused += 1
                        if as_json:
                            emit_json_line({"source_file": str(path), "refused": refusal})
                        else:
                            token = f"{field}[{position}]"
                            detail = _refusal_detail(f.reason, token, path, bool(f.device_id))
                            click.echo(refusal_line(f.device_id or str(path), f.code, detail))
                    else:
                        raise click.ClickException(f"{path}: the server answered no result for it")
        except grpc.RpcError as exc:
            connection.fail(exc)
    if not as_json:
        click.echo(
            f"{signed} signed pre-command(s) in {out_dir}, {refused} refused (refused.jsonl)"
        )
    if problems:
        raise problems[0]
    exit_with(ExitCode.SOME_REFUSED if refused else ExitCode.OK)


def _unique_stem(stem: str, taken: set[str]) -> str:
    """``stem``, or ``stem-2``, ``stem-3``...: a device signed twice in one run (two 11.3
    requests) keeps both files."""
    name, n = stem, 1
    while name in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name)
    return name


def _refusal_detail(reason: str, token: str, path: Path, device_known: bool) -> str:
    """The server's reason, naming the file rather than the item's place in its batch
    (``dcc_responses[3]``); the file leads the line already when no device is known."""
    if not device_known:
        return reason.replace(f"{token} @ ", "").replace(f"{token}: ", "").replace(token, str(path))
    named = reason.replace(token, str(path))
    return named if str(path) in named else f"{path}: {named}"


def _written_dict(message: Any, written: dict[str, Path]) -> dict[str, Any]:
    """``message_dict(message)``, each bytes field written to a file replaced by
    ``<field>_file``, the path written (README "Output"): the bytes are not repeated."""
    from signer.cli.output import message_dict

    for name in written:
        message.ClearField(name)  # written: not to be converted to text
    out = message_dict(message)
    _name_files(out, written)
    return out


def _name_files(out: dict[str, Any], written: dict[str, Path]) -> None:
    for name, path in written.items():
        out.pop(name, None)
        out[f"{name}_file"] = str(path)


@click.command()
@click.option(
    "--service",
    default="",
    show_default="the whole server",
    help='Health service name to ask about ("" or signer.v1.FirmwareSigner).',
)
@click.option("--timeout", default=3.0, show_default=True, help="Seconds to wait for the answer.")
@json_option
@connection_options
def health(service: str, timeout: float, as_json: bool, connection: Connection) -> None:
    """Ask the server's gRPC health service; exit 0 only if it answers SERVING.

    This is what a container HEALTHCHECK or a probe runs: the server answers SERVING only
    while both the HSM and the database answer it.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with connection.channel() as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as exc:
            connection.fail(exc)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    if as_json:
        emit_json({"status": status})  # HealthCheckResponse.status, by its name
    else:
        click.echo(status)
    serving = answer.status == health_pb2.HealthCheckResponse.SERVING
    exit_with(ExitCode.OK if serving else ExitCode.ERROR)
