"""A full run at DEBUG level leaves JSON logs with request IDs and clients, and no secrets.

The server and the CLI are driven through every call that touches a key, an image or the
PIN; then their logs are searched for the PIN, the private values of the keys in the token
(in every encoding we can think of) and the firmware image bytes.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from tests.support.activation_fleet import HEADER, IMAGE, IMAGE_HASH
from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.hsm import Hsm
from tests.support.independent import cs06_pre_command
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare, separate_delivery

KEYS = ("keys/Z1-supplier-ds.key.pem", "keys/xml-sign-90B3D51F30010000-ds.key.pem")


@dataclass
class Run:
    server_log: str
    cli_log: str
    request_ids: list[str]


def _forms(secret: bytes) -> set[str]:
    """The ways a secret could reach a log line."""
    return {
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode(),
        repr(secret)[2:-1],
    }


def _secrets(vectors: Path, hsm: Hsm) -> dict[str, set[str]]:
    found = {
        "PIN": {hsm.pin_file.read_text().strip()},
        "image bytes": _forms(IMAGE[:48]) | {IMAGE[:48].decode()},
    }
    for name in KEYS:
        pem = (vectors / name).read_bytes()
        key = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        scalar = key.private_numbers().private_value
        der = key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        body = [line for line in pem.decode().splitlines() if not line.startswith("-----")]
        found[name] = (
            _forms(scalar.to_bytes(32, "big"))
            | _forms(der)
            | {str(scalar)}
            | set(body)
            | {"PRIVATE KEY"}
        )
    return found


@pytest.fixture(scope="module")
def run(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("hygiene")
    config, db, _url = prepare(hsm, vectors, manufacturer, tmp)
    db.dispose()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    log = tmp / "server.log"
    with log.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "signer.cli.main", "-v", "serve", "--config", str(config)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=env,
        )
    assert proc.stdout is not None
    address = ""
    while not address:
        line = proc.stdout.readline()
        assert line, log.read_text()
        if line.startswith("READY "):
            address = line.split()[1]
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    stub = pb_grpc.FirmwareSignerStub(channel)
    ids: list[str] = []

    def call(method, request):
        response, rpc = method.with_call(request, metadata=(("x-request-id", f"t-{len(ids)}"),))
        ids.append(dict(rpc.initial_metadata())["x-request-id"])
        return response

    verdict = call(stub.VerifyManufacturer, separate_delivery(manufacturer, IMAGE, header=HEADER))
    assert verdict.verified, verdict.checks
    resigned = call(
        stub.Resign, pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE])
    )
    assert len(resigned.images) == 1
    duis = call(
        stub.BuildDUIS,
        pb.BuildDUISRequest(
            upgrade_image=resigned.images[0].upgrade_image,
            device_ids=[RTDS_DEVICE],
            firmware_version="00000200",
        ),
    )
    assert duis.duis_request
    activation = call(
        stub.BuildActivation,
        pb.BuildActivationRequest(
            activation=pb.ActivationSpec(image_id=verdict.image_id), device_ids=[RTDS_DEVICE]
        ),
    )
    assert len(activation.requests) == 1, activation.refused
    counter = int(activation.requests[0].request_id.rsplit(":", 1)[1])
    signed = call(
        stub.SignPreCommand,
        pb.SignPreCommandRequest(
            pre_command=cs06_pre_command(
                originator=SUPPLIER_EUI,
                recipient=RTDS_DEVICE,
                counter=counter,
                firmware_hash=IMAGE_HASH,
            ),
            accept_unauthenticated=True,
        ),
    )
    assert signed.signed_pre_command
    call(stub.ListKeys, pb.ListKeysRequest())
    with pytest.raises(grpc.RpcError):  # a refusal, so error paths are in the log too
        stub.Resign(pb.ResignRequest(image_id="00" * 32, device_ids=[RTDS_DEVICE]))
    channel.close()
    proc.terminate()
    assert proc.wait(timeout=30) == 0

    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "signer.cli.main",
            "-v",
            "keys",
            "generate",
            "--purpose",
            "supplier-ds",
            "--label",
            "hygiene-key",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    listed = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "-v", "keys", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    yield Run(log.read_text(), cli.stdout + cli.stderr + listed.stdout + listed.stderr, ids)


def test_no_pin_private_key_or_image_bytes_in_any_log(run: Run, vectors: Path, hsm: Hsm) -> None:
    assert "hygiene-key" in run.cli_log  # positive control: the CLI did log its work
    for what, forms in _secrets(vectors, hsm).items():
        for form in forms:
            assert form not in run.server_log, f"{what} in the server log"
            assert form not in run.cli_log, f"{what} in the CLI output"


def test_every_server_log_line_is_json_with_request_id_and_client(run: Run) -> None:
    lines = [json.loads(line) for line in run.server_log.splitlines() if line.strip()]
    assert lines and all(
        {"time", "level", "logger", "message", "request_id", "client"} <= line.keys()
        for line in lines
    )
    calls = {line["request_id"]: line for line in lines if line["logger"] == "signer.api.calls"}
    # each call got a request ID of ours (sent back in the header, logged with the call's
    # end); the ID the client offered is logged beside it, never used as ours
    assert len(set(run.request_ids)) == 6
    for i, (rid, method) in enumerate(
        zip(
            run.request_ids,
            (
                "VerifyManufacturer",
                "Resign",
                "BuildDUIS",
                "BuildActivation",
                "SignPreCommand",
                "ListKeys",
            ),
            strict=True,
        )
    ):
        assert len(rid) == 32 and rid != f"t-{i}"
        assert calls[rid]["grpc_method"] == method and calls[rid]["grpc_code"] == "OK"
        assert calls[rid]["client_request_id"] == f"t-{i}"
        assert calls[rid]["client"] == "unauthenticated"  # development mode: no certificate
    refused = [line for line in lines if line.get("grpc_code") == "NOT_FOUND"]
    assert len(refused) == 1 and len(refused[0]["request_id"]) == 32  # one was made for it
