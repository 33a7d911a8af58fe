"""The DCC authenticated at the service's edges, on a real server: pre-commands and device
credentials are acted on only from a DUIS response one of the [dcc] certificates signed
(signed here by a test DCC with xmlsec1), or as raw GBCS with an explicit, audited flag.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from tests.support.activation_fleet import HEADER, IMAGE, IMAGE_HASH
from tests.support.audit_rows import head, rows
from tests.support.cli import signer
from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.dcc import DccKey, dcc_section
from tests.support.duis_documents import dcc_response
from tests.support.hsm import Hsm
from tests.support.independent import cs06_pre_command, raw_signature_verifies
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running, prepare, start_server, verify_separate, write_config

ENVELOPE = "trust_anchor/illustration_DUIS_6.24.1_response_envelope.xml"


@dataclass
class Env:
    stub: pb_grpc.FirmwareSignerStub
    db_url: str
    config: Path
    log: Path
    image_id: str
    vectors: Path


@pytest.fixture(scope="module")
def env(
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    dcc: DccKey,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    """A server whose [dcc] certificates are the test DCC's only."""
    tmp = tmp_path_factory.mktemp("dcc-auth")
    config, _db, db_url = prepare(hsm, vectors, manufacturer, tmp, extra=dcc_section(dcc))
    server = start_server(config, tmp / "server.log")
    channel = grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    stub = pb_grpc.FirmwareSignerStub(channel)
    verdict = verify_separate(stub, manufacturer, IMAGE, header=HEADER)
    assert verdict.verified, verdict.checks
    yield Env(stub, db_url, config, server.log, verdict.image_id, vectors)
    channel.close()
    assert server.stop() == 0


def issue(env: Env) -> tuple[str, bytes]:
    """A fresh SR 11.3 request for the RTDS device, and the pre-command answering it."""
    built = env.stub.BuildActivation(
        pb.BuildActivationRequest(
            activation=pb.ActivationSpec(image_id=env.image_id), device_ids=[RTDS_DEVICE]
        )
    )
    assert len(built.requests) == 1, built.refused
    request_id = built.requests[0].request_id
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=int(request_id.rsplit(":", 1)[1]),
        firmware_hash=IMAGE_HASH,
    )
    return request_id, pre


def z1(env: Env) -> x509.Certificate:
    return x509.load_pem_x509_certificate((env.vectors / "certs/Z1-supplier-ds.pem").read_bytes())


def details(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [json.loads(str(r["details"])) for r in records]


def test_a_pre_command_from_a_dcc_signed_response_is_signed_and_recorded(
    env: Env, dcc: DccKey, tmp_path: Path
) -> None:
    request_id, pre = issue(env)
    start, _ = head(env.db_url)
    signed = env.stub.SignPreCommand(
        pb.SignPreCommandRequest(
            dcc_response=dcc.sign(dcc_response(pre, request_id=request_id), tmp_path)
        )
    )
    assert signed.request_id == request_id
    assert raw_signature_verifies(z1(env), pre[1:], signed.signed_pre_command[-64:])
    records = rows(env.db_url, after=start)
    assert [r["operation"] for r in records] == ["precommand-sign", "precommand-duis-sign"]
    signer_id = f"CN=Test DCC,OU=07 / {dcc.cert.serial_number}"
    for d in details(records):
        assert (d["dcc_authenticated"], d["dcc_signer"]) == (True, signer_id)


def test_dcc_responses_not_signed_by_a_configured_dcc_sign_nothing(
    env: Env, dcc: DccKey, other_dcc: DccKey, tmp_path: Path
) -> None:
    request_id, pre = issue(env)
    response = dcc_response(pre, request_id=request_id)
    genuine = dcc.sign(response, tmp_path)
    refused = {
        "unsigned": response,
        "unknown signer": other_dcc.sign(response, tmp_path),
        "signature mismatch": other_dcc.sign(response, tmp_path, as_cert=dcc.cert),
        "digest mismatch": genuine.replace(b"<sr:GBCSVersion>4.0", b"<sr:GBCSVersion>4.1"),
    }
    start = head(env.db_url)
    for reason, document in refused.items():
        with pytest.raises(grpc.RpcError) as err:
            env.stub.SignPreCommand(pb.SignPreCommandRequest(dcc_response=document))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, reason
        text = err.value.details() or ""
        assert text.startswith("dcc_response: ") and reason in text, text
    assert head(env.db_url) == start  # no signature, no record, no claim
    signed = env.stub.SignPreCommand(pb.SignPreCommandRequest(dcc_response=genuine))
    assert signed.request_id == request_id


def test_a_raw_pre_command_needs_the_flag_and_is_recorded_as_unauthenticated(
    env: Env,
) -> None:
    request_id, pre = issue(env)
    start = head(env.db_url)
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(pb.SignPreCommandRequest(pre_command=pre))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("pre_command: raw GBCS is not authenticated")
    assert "accept_unauthenticated" in (err.value.details() or "")
    assert head(env.db_url) == start
    signed = env.stub.SignPreCommand(
        pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
    )
    assert signed.request_id == request_id
    records = rows(env.db_url, after=start[0])
    assert [d["dcc_authenticated"] for d in details(records)] == [False, False]
    assert all("dcc_signer" not in d for d in details(records))
    assert {r["client"] for r in records} == {"unauthenticated"}  # development mode
    warned = [
        json.loads(line)
        for line in env.log.read_text().splitlines()
        if "unauthenticated GBCS accepted" in line
    ]
    assert warned and "by client unauthenticated" in warned[-1]["message"]


def test_a_raw_batch_needs_the_flag(env: Env) -> None:
    pres = [issue(env)[1] for _ in range(3)]
    start = head(env.db_url)
    [refused] = env.stub.StreamSignPreCommands(iter([pb.PreCommandBatch(pre_commands=pres)]))
    assert [r.refused.code for r in refused.results] == ["pre_command_unauthenticated"] * 3
    assert [r.refused.index for r in refused.results] == [0, 1, 2]
    assert "accept_unauthenticated" in refused.results[0].refused.reason
    assert head(env.db_url) == start
    [signed] = env.stub.StreamSignPreCommands(
        iter([pb.PreCommandBatch(pre_commands=pres, accept_unauthenticated=True)])
    )
    assert [r.WhichOneof("result") for r in signed.results] == ["signed"] * 3
    flags = {d["dcc_authenticated"] for d in details(rows(env.db_url, after=start[0]))}
    assert flags == {False}


def test_a_batch_of_dcc_responses_signs_the_authenticated_ones_only(
    env: Env, dcc: DccKey, other_dcc: DccKey, tmp_path: Path
) -> None:
    """A campaign streams DCC-signed responses: no flag needed, each is checked on its own."""
    (rid_raw, raw), (rid_good, good), (_, forged), (_, unsigned) = [issue(env) for _ in range(4)]
    start = head(env.db_url)
    [result] = env.stub.StreamSignPreCommands(
        iter(
            [
                pb.PreCommandBatch(
                    pre_commands=[raw],
                    accept_unauthenticated=True,
                    dcc_responses=[
                        dcc.sign(dcc_response(good, request_id=rid_good), tmp_path),
                        other_dcc.sign(dcc_response(forged), tmp_path),
                        dcc_response(unsigned),
                    ],
                )
            ]
        )
    )
    kinds = [r.WhichOneof("result") for r in result.results]
    assert kinds == ["signed", "signed", "refused", "refused"]
    assert [result.results[i].signed.request_id for i in (0, 1)] == [rid_raw, rid_good]
    assert raw_signature_verifies(
        z1(env), good[1:], result.results[1].signed.signed_pre_command[-64:]
    )
    for i, reason in ((2, "unknown signer"), (3, "unsigned")):
        refused = result.results[i].refused
        assert (refused.index, refused.code) == (i, "pre_command_unauthenticated")
        assert refused.reason.startswith(f"dcc_responses[{i - 1}]: ") and reason in refused.reason
    records = rows(env.db_url, after=start[0])
    by_request = {
        (r["duis_request_id"], json.loads(str(r["details"]))["dcc_authenticated"]) for r in records
    }
    assert by_request == {(rid_raw, False), (rid_good, True)}


def test_without_dcc_certificates_no_dcc_response_is_accepted(
    running: Running, dcc: DccKey, tmp_path: Path
) -> None:
    """The session server lists no [dcc] certificates."""
    xml = dcc.sign(dcc_response(b"\x00" * 40), tmp_path)
    with pytest.raises(grpc.RpcError) as err:
        running.stub.SignPreCommand(pb.SignPreCommandRequest(dcc_response=xml))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert (err.value.details() or "").startswith("dcc_response: no DCC certificates")


def test_devices_import_takes_a_dcc_response_only_from_a_configured_dcc(
    env: Env, hsm: Hsm, dcc: DccKey, other_dcc: DccKey, tmp_path: Path
) -> None:
    envelope = (env.vectors / ENVELOPE).read_bytes()
    ours, theirs = tmp_path / "ours.xml", tmp_path / "theirs.xml"
    ours.write_bytes(dcc.sign(envelope, tmp_path))
    theirs.write_bytes(other_dcc.sign(envelope, tmp_path))
    cfg = ("--config", str(env.config))
    start = head(env.db_url)
    refused = signer("devices", "import", str(theirs), *cfg, check=False)
    assert refused.returncode == 1 and "dcc_response: not authenticated" in refused.stderr
    assert "unknown signer" in refused.stderr and "Traceback" not in refused.stderr
    assert head(env.db_url) == start
    assert f"{RTDS_DEVICE}: updated" in signer("devices", "import", str(ours), *cfg).stdout
    [record] = rows(env.db_url, after=start[0])
    assert record["operation"] == "device-import"
    assert json.loads(str(record["details"]))["dcc_authenticated"] is True
    # the same signed response, to a configuration that does not list the test DCC
    untrusting = write_config(
        tmp_path / "untrusting.toml",
        hsm,
        f"sqlite:///{tmp_path / 'other.db'}",
        extra=dcc_section(other_dcc),
    )
    other = signer("devices", "import", str(ours), "--config", str(untrusting), check=False)
    assert other.returncode == 1 and "unknown signer" in other.stderr
    bare = write_config(tmp_path / "bare.toml", hsm, f"sqlite:///{tmp_path / 'bare.db'}")
    none = signer("devices", "import", str(ours), "--config", str(bare), check=False)
    assert none.returncode == 1 and "dcc_response: no DCC certificates" in none.stderr
