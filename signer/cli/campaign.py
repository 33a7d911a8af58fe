"""`signer campaign`: plan, approve and apply a campaign with four eyes (docs/campaigns.md).

Client commands: they only talk gRPC (PlanCampaign, GetCampaign, ApproveCampaign,
RejectCampaign, ApplyCampaign), so grpc and the generated messages are imported inside
each command, and `signer campaign --help` stays as quick as `signer --help`.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from signer.cli.connection import Connection, connection_options
from signer.cli.files import device_stream, existing_file, safe_name
from signer.cli.output import (
    ExitCode,
    emit_json,
    emit_json_line,
    exit_with,
    json_option,
    refusal_line,
    table,
)

F = TypeVar("F", bound=Callable[..., Any])

#: request metadata a development server takes as the caller's name (`signer.api.callctx`)
DEV_IDENTITY_HEADER = "signer-dev-identity"
PRODUCTS = {
    "update": "CAMPAIGN_PRODUCT_UPDATE",
    "activation": "CAMPAIGN_PRODUCT_ACTIVATION",
    "both": "CAMPAIGN_PRODUCT_UPDATE_AND_ACTIVATION",
}
_PRODUCT_NAMES = {
    "CAMPAIGN_PRODUCT_UPDATE": "update",
    "CAMPAIGN_PRODUCT_ACTIVATION": "activation",
    "CAMPAIGN_PRODUCT_UPDATE_AND_ACTIVATION": "update and activation",
}
#: a call's deadline: an apply signs a whole campaign
PLAN_TIMEOUT = 3600
APPLY_TIMEOUT = 24 * 3600
CALL_TIMEOUT = 300


def dev_identity_option(fn: F) -> F:
    """``--as NAME``: the caller's identity on a development server."""

    @functools.wraps(fn)
    def wrapper(*args: Any, dev_as: str | None, **kwargs: Any) -> Any:
        metadata = ((DEV_IDENTITY_HEADER, dev_as),) if dev_as else ()
        return fn(*args, metadata=metadata, **kwargs)

    return click.option(  # type: ignore[return-value]
        "--as",
        "dev_as",
        metavar="NAME",
        default=lambda: os.environ.get("SIGNER_DEV_IDENTITY") or None,
        show_default="$SIGNER_DEV_IDENTITY",
        help="Development servers only: act as NAME (identity dev:NAME, sent as "
        f"{DEV_IDENTITY_HEADER} metadata), so one machine can play the requester and two "
        "approvers. A server outside development mode refuses the call; there the "
        "identity is the --tls-cert certificate's subject.",
    )(wrapper)


Metadata = tuple[tuple[str, str], ...]


@click.group()
def campaign() -> None:
    """Campaigns with four eyes: plan, approve, apply.

    A supplier plans a campaign (nothing is signed: per device the key, the model and the
    pathway verdict, or the refusal); approvers other than the requester approve it (one
    below [campaigns] large_campaign_devices eligible devices, two from it, by default);
    then it is applied: every artifact exactly as planned, each checked by a pre-flight of
    what the meter will check before it is released. Approvals expire ([campaigns]
    approval_ttl); a plan whose devices, keys, CPL or manufacturer certificates changed is
    stale and must be planned again.
    """


def _unary(
    connection: Connection, method: str, request: Any, metadata: Metadata, files: Any = None
) -> Any:
    import grpc

    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

    with connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            return getattr(stub, method)(request, timeout=CALL_TIMEOUT, metadata=metadata)
        except grpc.RpcError as exc:
            connection.fail(exc, files)


# ---- plan ----


@campaign.command()
@click.option("--image-id", required=True, help="Image ID from verify (SHA-256, hex).")
@click.option("--device", multiple=True, help="Device EUI-64; repeat or comma-separate.")
@click.option("--devices-file", type=existing_file, help="One device EUI-64 per line (any number).")
@click.option(
    "--produce",
    required=True,
    type=click.Choice(sorted(PRODUCTS)),
    help="update: upgrade images and DUIS SR 11.1/11.4 requests, one per key; activation: "
    "SR 11.3 per device; both.",
)
@click.option("--firmware-version", default="", help="Update: DUIS FirmwareVersion, as build-duis.")
@click.option("--service", type=click.Choice(["11.1", "11.4"]), default="11.1", show_default=True)
@click.option("--force-replace", is_flag=True, help="Update: set the Force Replace byte to 0x01.")
@click.option(
    "--at",
    "at",
    help="Activation: future-dated time, ISO 8601 with a zone (e.g. 2030-01-15T09:00:00Z); "
    "default: immediate.",
)
@click.option("--batch", default=1000, show_default=True, help="Devices per streamed message.")
@json_option
@dev_identity_option
@connection_options
def plan(
    image_id: str,
    device: tuple[str, ...],
    devices_file: Path | None,
    produce: str,
    firmware_version: str,
    service: str,
    force_replace: bool,
    at: str | None,
    batch: int,
    as_json: bool,
    metadata: Metadata,
    connection: Connection,
) -> None:
    """Plan a campaign (PlanCampaign): what it would produce per device; nothing is signed.

    Prints the plan ID (what the approvers approve and `apply` takes), the devices by key,
    by model and by refusal reason, and the approvals it needs. Planning the same devices
    for the same image again gives the same plan. --json: the plan, the API's fields.
    Exit 0, or 4 when the plan refuses some devices (each with its reason; `show
    --devices` lists them).
    """
    import grpc
    from google.protobuf.timestamp_pb2 import Timestamp

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

    if not device and devices_file is None:
        raise click.UsageError("name devices with --device or --devices-file")
    if batch < 1:
        raise click.BadParameter("give at least 1", param_hint="--batch")
    spec = pb.CampaignSpec(
        image_id=image_id,
        product=PRODUCTS[produce],  # the enum value by its name
        service_reference=service,
        firmware_version=firmware_version,
    )
    if force_replace:
        spec.force_replace = True
    if at is not None:
        ts = Timestamp()
        ts.FromDatetime(_when(at))
        spec.execution_time.CopyFrom(ts)
    listed = device_stream(list(device), devices_file)
    head = next(listed, None)  # here, not on gRPC's thread: a bad file is named, not a hang
    if head is None:
        raise click.UsageError("name devices with --device or --devices-file")

    def requests() -> Iterator[pb.PlanCampaignRequest]:
        yield pb.PlanCampaignRequest(spec=spec)
        chunk: list[str] = []
        for d in itertools.chain((head,), listed):
            chunk.append(d)
            if len(chunk) >= batch:
                yield pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=chunk))
                chunk = []
        if chunk:
            yield pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=chunk))

    with connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            result = stub.PlanCampaign(requests(), timeout=PLAN_TIMEOUT, metadata=metadata)
        except grpc.RpcError as exc:
            connection.fail(exc, {"devices": devices_file})
    _print_plan(result, as_json)
    if not as_json:
        _next_step(result)
    exit_with(ExitCode.SOME_REFUSED if result.refused else ExitCode.OK)


def _when(at: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{at!r} is not ISO 8601", param_hint="--at") from None
    if when.tzinfo is None:
        raise click.BadParameter(
            f"{at!r} has no zone: add Z or an offset, e.g. 2030-01-15T09:00:00Z",
            param_hint="--at",
        )
    return when.astimezone(dt.UTC)


# ---- show ----


@campaign.command()
@click.argument("plan_id")
@click.option("--devices", "with_devices", is_flag=True, help="List every device of the plan.")
@click.option(
    "--graph",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the devices by model and state as Graphviz DOT (render with "
    "`dot -Tsvg F.dot -o F.svg`).",
)
@json_option
@dev_identity_option
@connection_options
def show(
    plan_id: str,
    with_devices: bool,
    graph: Path | None,
    as_json: bool,
    metadata: Metadata,
    connection: Connection,
) -> None:
    """Show a plan (GetCampaign): its state, counts, approvals and, with --devices, its
    devices (key, model, pathway verdict, refusal; after apply, the outcome and RequestIDs).

    --json: {"plan": {...}, "devices": [...]} with the API's field names ("devices" with
    --devices only). Exit 0, or 5 when there is no such plan.
    """
    import grpc

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
    from signer.cli.output import message_dict

    want_devices = with_devices or graph is not None
    request = pb.GetCampaignRequest(plan_id=plan_id, include_devices=want_devices)
    found = None
    devices: list[Any] = []
    with connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            for part in stub.GetCampaign(request, timeout=CALL_TIMEOUT, metadata=metadata):
                if part.WhichOneof("part") == "plan":
                    found = part.plan
                else:
                    devices.extend(part.devices.devices)
        except grpc.RpcError as exc:
            connection.fail(exc)
    if found is None:
        raise click.ClickException("the server sent no plan")
    if graph is not None:
        _write_atomically(graph, dot_graph(found, devices).encode())
    if as_json:
        out: dict[str, Any] = {"plan": message_dict(found)}
        if with_devices:
            out["devices"] = [message_dict(d) for d in devices]
        emit_json(out)
        return
    _print_plan(found, False)
    if with_devices:
        click.echo("")
        _device_table(devices)
    if graph is not None:
        click.echo(f"graph: {graph}")


def _device_table(devices: Sequence[Any]) -> None:
    rows = []
    for d in devices:
        if d.HasField("refused"):
            state = f"refused: {d.refused.reason}"
        elif d.outcome == "withheld":
            state = f"withheld: {d.withheld_check}"
        else:
            state = _device_state(d)
        rows.append(
            (
                d.device_id,
                d.model or "-",
                d.key_label or "-",
                d.pathway or "-",
                state,
                " ".join(d.request_ids),
            )
        )
    table(rows, ("DEVICE", "MODEL", "KEY", "PATHWAY", "STATE", "REQUEST IDS"))
    for d in devices:
        if d.HasField("refused"):
            r = d.refused
            click.echo(refusal_line(r.device_id, r.reason, r.detail, r.upgrade_path))
        elif d.outcome == "withheld":
            click.echo(f"withheld {d.device_id}: {d.withheld_check}: {d.withheld_detail}")


# ---- approve, reject ----


@campaign.command()
@click.argument("plan_id")
@click.option("--comment", default="", help="Recorded with the approval (audit trail).")
@json_option
@dev_identity_option
@connection_options
def approve(
    plan_id: str, comment: str, as_json: bool, metadata: Metadata, connection: Connection
) -> None:
    """Approve a plan (ApproveCampaign; the approver role).

    The requester's approval never counts, and each identity counts once. An approval
    expires after [campaigns] approval_ttl. --json: the plan after the approval.
    """
    from signer.api._proto.signer.v1 import signer_pb2 as pb

    request = pb.ApproveCampaignRequest(plan_id=plan_id, comment=comment)
    result = _unary(connection, "ApproveCampaign", request, metadata)
    _print_plan(result, as_json)
    if not as_json:
        _next_step(result)


@campaign.command()
@click.argument("plan_id")
@click.option("--reason", required=True, help="Why (required; recorded in the audit trail).")
@json_option
@dev_identity_option
@connection_options
def reject(
    plan_id: str, reason: str, as_json: bool, metadata: Metadata, connection: Connection
) -> None:
    """Reject a plan (RejectCampaign; the approver role): it is never applied.

    --json: the plan after the rejection.
    """
    from signer.api._proto.signer.v1 import signer_pb2 as pb

    if not reason.strip():
        raise click.BadParameter("give the reason", param_hint="--reason")
    request = pb.RejectCampaignRequest(plan_id=plan_id, reason=reason)
    result = _unary(connection, "RejectCampaign", request, metadata)
    _print_plan(result, as_json)


# ---- apply ----


@campaign.command()
@click.argument("plan_id")
@click.option(
    "--out-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where every artifact is written as it arrives, and report.json.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='JSON lines on stdout, one per result as it comes: {"issued": {...}}, '
    '{"withheld": {...}}, {"refused": {...}} or {"already_issued": {...}} (the API\'s field '
    'names; bytes replaced by the file written), then {"plan": {...}}.',
)
@dev_identity_option
@connection_options
def apply(
    plan_id: str, out_dir: Path, as_json: bool, metadata: Metadata, connection: Connection
) -> None:
    """Apply an approved plan (ApplyCampaign): every artifact, exactly as planned.

    Each artifact is written to OUT_DIR as it arrives (to a temporary name, then renamed:
    a file there is complete): upgrade images as <key label>.bin, DUIS SR 11.1/11.4
    requests as update-<RequestID>.xml (":" written as "_"), SR 11.3 activations as
    <device>.xml. An artifact the pre-flight withheld is never sent; devices refused at
    planning are reported again. OUT_DIR/report.json says per device what was issued (its
    files and RequestIDs) or withheld and why, refused, or already issued by an earlier,
    interrupted apply: run the same command again into the same directory to complete one.

    A resumed apply into the same OUT_DIR merges into its report.json: the earlier runs'
    devices and files stay listed ("runs" counts the applies). No file in OUT_DIR is ever
    overwritten: a name already taken (by an earlier run, or earlier in this one) gets
    -2, -3, ... before its extension. A report.json of another plan is refused (exit 2):
    use another directory.

    Exit 0 when everything was issued, 4 when some devices were withheld or refused, 1 on
    an error (the artifacts written so far stay, and report.json is written).
    """
    import grpc

    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir, plan_id.strip().lower())  # the server writes plan IDs lower-case
    problem = report.resume()
    if problem is not None:
        click.echo(f"Error: {problem}", err=True)
        exit_with(ExitCode.USAGE)
    request = pb.ApplyCampaignRequest(plan_id=plan_id)
    with connection.channel() as channel:
        try:
            stub = pb_grpc.FirmwareSignerStub(channel)
            for message in stub.ApplyCampaign(request, timeout=APPLY_TIMEOUT, metadata=metadata):
                for result in message.results:
                    line = report.add(result)
                    if as_json:
                        emit_json_line(line)
                    else:
                        report.echo_problem(result)
                if message.HasField("plan"):
                    report.finish(message.plan)
                    if as_json:
                        emit_json_line({"plan": report.plan})
        except grpc.RpcError as exc:
            report.write()
            connection.fail(exc)
    report.write()
    if not as_json:
        report.summary()
    exit_with(ExitCode.SOME_REFUSED if report.withheld or report.refused else ExitCode.OK)


class Report:
    """What an apply wrote and was told, per device; report.json."""

    def __init__(self, out_dir: Path, plan_id: str = "") -> None:
        self.out_dir = out_dir
        self.plan_id = plan_id
        self.plan: dict[str, Any] | None = None
        self.devices: dict[str, dict[str, Any]] = {}
        self.files: list[dict[str, Any]] = []
        self.withheld: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.already_issued: list[dict[str, Any]] = []
        self.runs = 1
        self._taken: set[str] = set()
        self.counts = {"upgrade_image": 0, "update_request": 0, "activation": 0}

    def resume(self) -> str | None:
        """Take in an earlier run's report.json (a resumed apply): its devices, files and
        results stay in the report. A problem with it, in words, or None."""
        path = self.out_dir / "report.json"
        if not path.exists():
            return None
        try:
            earlier = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(earlier, dict):
                raise ValueError("not a JSON object")
            devices = earlier.get("devices") or {}
            lists = [earlier.get(k) or [] for k in ("files", "withheld", "refused")]
            already = earlier.get("already_issued") or []
            if not isinstance(devices, dict) or not all(
                isinstance(x, list) for x in (*lists, already)
            ):
                raise ValueError("devices, files or results of the wrong type")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            return (
                f"{path} is not a report this command wrote ({str(exc)[:80]}): move it away "
                "or use another --out-dir"
            )
        other = earlier.get("plan_id")
        if other and self.plan_id and str(other).lower() != self.plan_id:
            return (
                f"{path} is the report of campaign {other}, not {self.plan_id}: use another "
                "--out-dir"
            )
        self.devices = devices
        self.files, self.withheld, self.refused = lists
        self.already_issued = already
        self.runs = int(earlier.get("runs") or 1) + 1
        return None

    def _refused_again(self, r: dict[str, Any]) -> None:
        """A planning refusal is sent on every apply: listed once."""
        self.refused = [x for x in self.refused if x.get("device_id") != r.get("device_id")]
        self.refused.append(r)

    def _device(self, device_id: str) -> dict[str, Any]:
        entry = self.devices.setdefault(device_id, {})
        for key in ("files", "request_ids", "withheld", "already_issued"):
            entry.setdefault(key, [])
        entry.setdefault("outcome", "")
        return entry

    def _name(self, stem: str, suffix: str) -> Path:
        """A file name in OUT_DIR nothing the server sends can steer outside it, never one
        taken (in this run, or by a file there, an earlier run's): -2, -3, ... then."""
        base = safe_name(stem)
        name, n = f"{base}{suffix}", 1
        while name in self._taken or (self.out_dir / name).exists() or name == "report.json":
            n += 1
            name = f"{base}-{n}{suffix}"
        self._taken.add(name)
        return self.out_dir / name

    def add(self, result: Any) -> dict[str, Any]:
        """Write what ``result`` carries; its JSON line."""
        from signer.cli.output import message_dict

        which = result.WhichOneof("result")
        if which == "issued":
            return {"issued": self._issued(result.issued)}
        if which == "withheld":
            w = message_dict(result.withheld)
            self.withheld.append(w)
            for d in result.withheld.device_ids:
                entry = self._device(d)
                entry["withheld"].append(
                    {"kind": w["kind"], "check": w["check"], "detail": w["detail"]}
                )
            return {"withheld": w}
        if which == "refused":
            r = message_dict(result.refused)
            self._refused_again(r)
            self._device(result.refused.device_id)["refused"] = r
            return {"refused": r}
        a = message_dict(result.already_issued)
        if a not in self.already_issued:  # a third apply is told of them again
            self.already_issued.append(a)
        for d in result.already_issued.device_ids:
            entry = self._device(d)
            told = {"kind": a["kind"], "request_id": a["request_id"]}
            if told not in entry["already_issued"]:
                entry["already_issued"].append(told)
            if a["request_id"] and a["request_id"] not in entry["request_ids"]:
                entry["request_ids"].append(a["request_id"])
        return {"already_issued": a}

    def _issued(self, artifact: Any) -> dict[str, Any]:
        from signer.cli.output import message_dict

        kind = artifact.WhichOneof("artifact")
        if kind == "upgrade_image":
            item = artifact.upgrade_image
            path = self._name(item.key_label, ".bin")
            data, field, request_id = item.upgrade_image, "upgrade_image", ""
            devices = list(item.device_ids)
        elif kind == "update_request":
            item = artifact.update_request
            path = self._name(f"update-{item.request_id}", ".xml")
            data, field, request_id = item.duis_request, "duis_request", item.request_id
            devices = list(item.device_ids)
        else:
            item = artifact.activation
            path = self._name(item.device_id, ".xml")
            data, field, request_id = item.duis_request, "duis_request", item.request_id
            devices = [item.device_id]
        _write_atomically(path, data)
        self.counts[kind] += 1
        item.ClearField(field)  # written: not to be converted to text
        out = message_dict(item)
        out.pop(field, None)
        out[f"{field}_file"] = str(path)
        self.files.append(
            {"kind": kind, "file": str(path), "device_ids": devices, "request_id": request_id}
        )
        for d in devices:
            entry = self._device(d)
            entry["files"].append(str(path))
            if request_id and request_id not in entry["request_ids"]:
                entry["request_ids"].append(request_id)
        return {kind: out}

    def echo_problem(self, result: Any) -> None:
        which = result.WhichOneof("result")
        if which == "withheld":
            w = result.withheld
            click.echo(
                f"withheld {w.kind} for {', '.join(w.device_ids)}: pre-flight check "
                f"{w.check} failed: {w.detail}"
            )
        elif which == "refused":
            r = result.refused
            click.echo(refusal_line(r.device_id, r.reason, r.detail, r.upgrade_path))

    def finish(self, plan: Any) -> None:
        from signer.cli.output import message_dict

        self.plan = message_dict(plan)

    def _outcomes(self) -> None:
        for entry in self.devices.values():
            if entry.get("refused"):
                entry["outcome"] = "refused"
            elif entry["withheld"]:
                entry["outcome"] = "withheld"
            elif entry["files"]:
                entry["outcome"] = "issued"
            elif entry["already_issued"]:
                entry["outcome"] = "already_issued"

    def write(self) -> None:
        self._outcomes()
        document = {
            "plan_id": (self.plan or {}).get("plan_id") or self.plan_id or None,
            "runs": self.runs,
            "plan": self.plan,
            "complete": self.plan is not None,
            "devices": self.devices,
            "files": self.files,
            "withheld": self.withheld,
            "refused": self.refused,
            "already_issued": self.already_issued,
        }
        text = json.dumps(document, indent=2, sort_keys=True) + "\n"
        _write_atomically(self.out_dir / "report.json", text.encode())

    def summary(self) -> None:
        tally: dict[str, int] = {}
        for entry in self.devices.values():
            tally[entry["outcome"]] = tally.get(entry["outcome"], 0) + 1
        c = dict.fromkeys(self.counts, 0)  # every file listed, an earlier run's too
        for f in self.files:
            c[f.get("kind", "")] = c.get(f.get("kind", ""), 0) + 1
        click.echo(
            f"{len(self.files)} file(s) in {self.out_dir}: {c['upgrade_image']} upgrade "
            f"image(s), {c['update_request']} update request(s), {c['activation']} "
            "activation(s)"
        )
        rows = [
            (state, tally.get(state, 0))
            for state in ("issued", "already_issued", "withheld", "refused")
        ]
        table(rows, ("DEVICES", "COUNT"))
        if self.plan is not None:
            click.echo(f"plan {self.plan['plan_id']}: {_state_name(self.plan['state'])}")
        click.echo(f"report: {self.out_dir / 'report.json'}")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary name beside ``path``, then rename: ``path`` is whole or absent."""
    temp = path.with_name(f".{path.name}.part")
    with temp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temp, path)


# ---- how a plan is shown ----


def _state_name(state: Any) -> str:
    text = str(state)
    if text.isdigit():
        from signer.api._proto.signer.v1 import signer_pb2 as pb

        text = pb.CampaignState.Name(int(text))
    return text.removeprefix("CAMPAIGN_STATE_").lower()


def _print_plan(p: Any, as_json: bool) -> None:
    """The plan ID first (what approvers and apply take), then what it does and needs."""
    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.cli.output import message_dict, rfc3339

    if as_json:
        emit_json(message_dict(p))
        return
    state = _state_name(pb.CampaignState.Name(p.state))
    click.echo(f"plan {p.plan_id}")
    click.echo(f"  state: {state}")
    product = _PRODUCT_NAMES.get(pb.CampaignProduct.Name(p.spec.product), "?")
    what = f"  image {p.spec.image_id}: {product}"
    if p.spec.product != pb.CAMPAIGN_PRODUCT_ACTIVATION:
        what += f", SR {p.spec.service_reference or '11.1'}"
        if p.spec.firmware_version:
            what += f", firmware version {p.spec.firmware_version}"
    if p.spec.HasField("execution_time"):
        what += f", activation at {rfc3339(p.spec.execution_time.ToDatetime(tzinfo=dt.UTC))}"
    click.echo(what)
    planned = rfc3339(p.planned_at.ToDatetime(tzinfo=dt.UTC))
    click.echo(f"  requested by {p.requester} at {planned}")
    click.echo(f"  devices: {p.devices} ({p.eligible} eligible, {p.refused} refused)")
    if p.issued or p.withheld:
        click.echo(f"  applied: {p.issued} issued, {p.withheld} withheld")
    counted = [a for a in p.approvals if not a.expired]
    click.echo(f"  approvals: {len(counted)} of {p.approvals_required} required")
    for a in p.approvals:
        at = rfc3339(a.approved_at.ToDatetime(tzinfo=dt.UTC))
        until = rfc3339(a.expires_at.ToDatetime(tzinfo=dt.UTC))
        note = f" ({a.comment})" if a.comment else ""
        status = "expired" if a.expired else f"until {until}"
        click.echo(f"    {a.approver} at {at}, {status}{note}")
    if p.rejected_by:
        click.echo(f"  rejected by {p.rejected_by}: {p.rejection_reason}")
    if p.stale_reason:
        click.echo(f"  stale: {p.stale_reason}")
    if p.supersedes:
        click.echo(f"  supersedes: {p.supersedes} (planned again)")
    for title, counts in (
        ("KEY", p.by_key),
        ("MODEL", p.by_model),
        ("REFUSED (REASON)", p.by_reason),
    ):
        if counts:
            click.echo("")
            table([(c.name, c.devices) for c in counts], (title, "DEVICES"))


def _next_step(p: Any) -> None:
    from signer.api._proto.signer.v1 import signer_pb2 as pb

    counted = sum(1 for a in p.approvals if not a.expired)
    if p.state == pb.CAMPAIGN_STATE_PLANNED:
        missing = max(p.approvals_required - counted, 1)
        click.echo("")
        click.echo(
            f"next: {missing} more approval(s), by approvers other than {p.requester}: "
            f"signer campaign approve {p.plan_id}"
        )
    elif p.state in (pb.CAMPAIGN_STATE_APPROVED, pb.CAMPAIGN_STATE_APPLYING):
        click.echo("")
        click.echo(f"next: signer campaign apply {p.plan_id} --out-dir DIR")


# ---- the picture ----

#: fill colour per device state in the graph (and its legend)
STATE_COLOURS = {
    "planned": "#9ecae1",
    "issued": "#a1d99b",
    "already issued": "#c7e9c0",
    "withheld": "#fdae6b",
    "refused": "#fc9272",
}


def _device_state(d: Any) -> str:
    if d.HasField("refused"):
        return "refused"
    if d.outcome == "withheld":
        return "withheld"
    if d.outcome == "issued":
        return "issued"
    if d.outcome and d.outcome != "pending":
        return "already issued" if "already" in d.outcome else d.outcome
    return "planned"


#: a line break inside a DOT label (kept as it is by `_quote`)
NEWLINE = "\x00"


def _quote(text: str) -> str:
    """A DOT string; `NEWLINE` in ``text`` becomes DOT's line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace(NEWLINE, "\\n") + '"'


def dot_graph(p: Any, devices: Iterable[Any]) -> str:
    """The plan's devices as Graphviz DOT: one box per model, one node per (model, state)
    with its device count (refusals by reason), and a legend of the states' colours."""
    tally: dict[tuple[str, str, str], int] = {}
    for d in devices:
        state = _device_state(d)
        detail = (
            d.refused.reason
            if state == "refused"
            else (d.withheld_check if state == "withheld" else "")
        )
        key = (d.model or "unknown model", state, detail)
        tally[key] = tally.get(key, 0) + 1
    lines = [
        "digraph campaign {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=10];',
        f"  label={_quote(f'plan {p.plan_id[:16]}... ({p.devices} devices)')};",
        "  labelloc=t;",
    ]
    models = sorted({m for m, _s, _d in tally})
    for i, model in enumerate(models):
        total = sum(n for (m, _s, _d), n in tally.items() if m == model)
        label = _quote(model + NEWLINE + f"{total} device(s)")
        lines.append(f"  model{i} [shape=box, label={label}];")
    for j, ((model, state, detail), n) in enumerate(sorted(tally.items())):
        text = f"{state}: {detail}" if detail else state
        colour = STATE_COLOURS.get(state, "#d9d9d9")
        label = _quote(text + NEWLINE + str(n))
        lines.append(
            f"  s{j} [shape=ellipse, style=filled, fillcolor={_quote(colour)}, label={label}];"
        )
        lines.append(f"  model{models.index(model)} -> s{j} [label={_quote(str(n))}];")
    lines += ["  subgraph cluster_legend {", '    label="legend";', "    style=dashed;"]
    for k, (state, colour) in enumerate(STATE_COLOURS.items()):
        lines.append(
            f"    legend{k} [shape=ellipse, style=filled, fillcolor={_quote(colour)}, "
            f"label={_quote(state)}];"
        )
    lines.append('    legend_model [shape=box, label="model (manufacturer code/model)"];')
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"
