"""CPL pathways and activation over gRPC, on a server in strict CPL mode.

Devices of mixed states (permitted, out of order, wrong type, no inventory, unknown) go
through Resign, BuildActivation, StreamActivation and SignPreCommand; every signature is
checked with `cryptography` or xmlsec1 and every document against the DUIS schema.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from google.protobuf.timestamp_pb2 import Timestamp
from lxml import etree

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.cpl.parse import read_csv
from signer.gbcs.eui import Eui64
from signer.limits import CHANNEL_OPTIONS
from signer.registry import activations, counters, cpl, devices
from signer.registry.activations import IssuedActivation
from signer.registry.db import Database
from tests.support.activation_fleet import HEADER, IMAGE, IMAGE_HASH, cpl_csv
from tests.support.constants import PINNED, RTDS_DEVICE, SUPPLIER_EUI
from tests.support.database import new_database
from tests.support.dcc import DccKey, dcc_section
from tests.support.devices import add_device
from tests.support.duis_documents import dcc_response
from tests.support.hsm import Hsm
from tests.support.independent import (
    assert_schema_valid,
    cs06_pre_command,
    duis_fields,
    raw_signature_verifies,
    xmlsec1_verify,
)
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare, start_server, verify_separate

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
ON_T1 = "00-DB-00-00-00-00-01-01"  # two steps behind: refused with its path
GSME = "00-DB-00-00-00-00-01-02"  # wrong device type
NO_INVENTORY = "00-DB-00-00-00-00-01-03"  # cells but no inventory
UNKNOWN = "00-DB-00-00-00-00-01-04"
CAMPAIGN = 3000


def campaign_device(i: int) -> str:
    return f"00-DC-00-00-00-00-{i >> 8:02X}-{i & 0xFF:02X}"


def campaign_state(i: int) -> str:
    return ("ok", "ok", "ok", "behind", "unknown")[i % 5]


@dataclass
class Env:
    stub: pb_grpc.FirmwareSignerStub
    vectors: Path
    image_id: str
    db: Database
    dcc: DccKey  # the DCC the server trusts: it signs the DUIS responses given to it


@pytest.fixture(scope="module")
def env(
    hsm: Hsm,
    vectors: Path,
    manufacturer: Manufacturer,
    backend: str,
    dcc: DccKey,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    """The activation server, once on SQLite and once on PostgreSQL."""
    tmp = tmp_path_factory.mktemp("activation")
    config, db, _ = prepare(
        hsm,
        vectors,
        manufacturer,
        tmp,
        cpl_mode="strict",
        db_url=new_database(request, backend, tmp),
        extra=dcc_section(dcc),
    )
    report = cpl.import_entries(db, read_csv(cpl_csv().splitlines()), PINNED)
    assert report.applied, report.errors
    devices.set_inventory(
        db,
        Eui64.parse(RTDS_DEVICE),
        device_type="ESME",
        hardware_version=1,
        current_entry_id="T-2",
        now=PINNED,
    )
    add_device(db, ON_T1, entry="T-1")
    add_device(db, GSME, entry="G-1", device_type="GSME")
    add_device(db, NO_INVENTORY, entry=None)
    for i in range(CAMPAIGN):
        state = campaign_state(i)
        if state != "unknown":
            add_device(db, campaign_device(i), entry="T-2" if state == "ok" else "T-1")
    server = start_server(config, tmp / "server.log")
    stub = pb_grpc.FirmwareSignerStub(
        grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    )
    verdict = verify_separate(stub, manufacturer, IMAGE, header=HEADER)
    assert verdict.verified, verdict.checks
    assert verdict.cpl_entry_id == "T-3"
    yield Env(stub, vectors, verdict.image_id, db, dcc)
    assert server.stop() == 0


def _cert(env: Env, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((env.vectors / "certs" / f"{name}.pem").read_bytes())


def test_strict_mode_refuses_an_image_not_on_the_cpl(env: Env, manufacturer: Manufacturer) -> None:
    image = b"not on the CPL " * 20
    verdict = verify_separate(env.stub, manufacturer, image, file_version=0x00000200)
    assert not verdict.verified
    cpl_check = next(c for c in verdict.checks if c.name == "cpl")
    assert not cpl_check.passed and "not recorded on the CPL" in cpl_check.detail


def test_upgrade_paths(env: Env) -> None:
    def path(**kw: str) -> tuple[list[str], bool]:
        r = env.stub.GetUpgradePath(pb.GetUpgradePathRequest(**kw))
        return list(r.path), r.reachable

    assert path(from_entry_id="T-1", to_entry_id="T-3") == (["T-1", "T-2", "T-3"], True)
    assert path(device_id=ON_T1, image_id=env.image_id) == (["T-1", "T-2", "T-3"], True)
    assert path(from_entry_id="X-1", to_entry_id="T-3") == ([], False)
    with pytest.raises(grpc.RpcError) as err:
        env.stub.GetUpgradePath(pb.GetUpgradePathRequest(from_entry_id="NOPE", to_entry_id="T-3"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_resign_refuses_devices_off_the_pathway_with_their_path(env: Env) -> None:
    resp = env.stub.Resign(
        pb.ResignRequest(
            image_id=env.image_id, device_ids=[RTDS_DEVICE, ON_T1, GSME, NO_INVENTORY, UNKNOWN]
        )
    )
    assert [list(i.device_ids) for i in resp.images] == [[RTDS_DEVICE]]
    refused = {r.device_id: r for r in resp.refused}
    assert {d: r.reason for d, r in refused.items()} == {
        ON_T1: "not_permitted_predecessor",
        GSME: "wrong_device_type",
        NO_INVENTORY: "no_inventory",
        UNKNOWN: "unknown_device",
    }
    assert list(refused[ON_T1].upgrade_path) == ["T-1", "T-2", "T-3"]
    assert "T-1 -> T-2 -> T-3" in refused[ON_T1].detail


def _activate(
    env: Env, devices_: list[str], *, at: dt.datetime | None = None, cancel: bool = False
) -> pb.BuildActivationResponse:
    spec = pb.ActivationSpec(image_id=env.image_id, cancel=cancel)
    if at is not None:
        ts = Timestamp()
        ts.FromDatetime(at)
        spec.execution_time.CopyFrom(ts)
    return env.stub.BuildActivation(pb.BuildActivationRequest(activation=spec, device_ids=devices_))


def _check_document(env: Env, doc: bytes, tmp_path: Path) -> dict[str, str]:
    assert_schema_valid(doc, env.vectors / "xsd")
    result = xmlsec1_verify(doc, _cert(env, "xml-sign-90B3D51F30010000-ds"), tmp_path)
    assert result.returncode == 0, result.stderr
    return duis_fields(doc)


def test_immediate_activation_then_its_pre_command_signed(env: Env, tmp_path: Path) -> None:
    resp = _activate(env, [RTDS_DEVICE, ON_T1])
    assert [r.device_id for r in resp.requests] == [RTDS_DEVICE]
    assert [r.reason for r in resp.refused] == ["not_permitted_predecessor"]
    req = resp.requests[0]
    fields = _check_document(env, req.duis_request, tmp_path)
    originator, target, counter = req.request_id.rsplit(":", 2)
    assert (originator, target) == (SUPPLIER_EUI, RTDS_DEVICE)
    assert fields["ServiceReference"] == "11.3" and fields["CommandVariant"] == "4"
    body = etree.fromstring(req.duis_request).find(f".//{SR}ActivateFirmware")
    assert body is not None and body.findtext(f"{SR}FirmwareHash", "").lower() == env.image_id
    assert body.find(f"{SR}ExecutionDateTime") is None

    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=int(counter),
        firmware_hash=IMAGE_HASH,
    )
    signed = env.stub.SignPreCommand(
        pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
    )
    assert signed.device_id == RTDS_DEVICE and signed.request_id == req.request_id
    command = signed.signed_pre_command
    assert (
        command[: len(pre)] == pre and command[len(pre)] == 0x40 and len(command) == len(pre) + 65
    )
    assert raw_signature_verifies(_cert(env, "Z1-supplier-ds"), pre[1:], command[-64:])
    fields = _check_document(env, signed.duis_request, tmp_path)
    assert fields["RequestID"] == req.request_id


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"firmware_hash": hashlib.sha256(b"other").digest()}, "firmware_hash"),
        ({"originator": "90-B3-D5-1F-30-02-00-00"}, "originator"),
        ({"recipient": ON_T1}, "recipient"),
        ({"message_code": 0x0013}, "message_code"),
        ({"cra_flag": 0x02}, "cra_flag"),
    ],
)
def test_a_tampered_pre_command_is_refused_naming_the_field(
    env: Env, change: dict[str, object], named: str
) -> None:
    req = _activate(env, [RTDS_DEVICE]).requests[0]
    counter = int(req.request_id.rsplit(":", 1)[1])
    fields: dict[str, object] = {
        "originator": SUPPLIER_EUI,
        "recipient": RTDS_DEVICE,
        "counter": counter,
        "firmware_hash": IMAGE_HASH,
    }
    fields.update(change)
    pre = cs06_pre_command(**fields)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert named in (err.value.details() or "")


def test_a_pre_command_for_a_counter_never_issued_is_refused(env: Env) -> None:
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=987654321, firmware_hash=IMAGE_HASH
    )
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "987654321" in (err.value.details() or "")


def test_future_dated_activation_checks_the_execution_time(env: Env, tmp_path: Path) -> None:
    at = dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.UTC)
    req = _activate(env, [RTDS_DEVICE], at=at).requests[0]
    body = etree.fromstring(req.duis_request).find(f".//{SR}ActivateFirmware")
    assert body is not None and body.findtext(f"{SR}ExecutionDateTime", "").startswith(
        "2030-01-15T09:00:00"
    )
    counter = int(req.request_id.rsplit(":", 1)[1])
    base: dict[str, Any] = {
        "originator": SUPPLIER_EUI,
        "recipient": RTDS_DEVICE,
        "counter": counter,
        "firmware_hash": IMAGE_HASH,
    }
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(
                pre_command=cs06_pre_command(**base, execution_time="20300115100000Z"),
                accept_unauthenticated=True,
            )
        )
    assert "execution_time" in (err.value.details() or "")
    ok = env.stub.SignPreCommand(
        pb.SignPreCommandRequest(
            pre_command=cs06_pre_command(**base, execution_time="20300115090000Z"),
            accept_unauthenticated=True,
        )
    )
    _check_document(env, ok.duis_request, tmp_path)
    past = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    with pytest.raises(grpc.RpcError) as err:
        _activate(env, [RTDS_DEVICE], at=past)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def fresh(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, dcc: DccKey, db_url: str, tmp_path: Path
) -> Iterator[Env]:
    """A server with a database of its own, whose counters have not moved yet."""
    config, db, _ = prepare(
        hsm, vectors, manufacturer, tmp_path, db_url=db_url, extra=dcc_section(dcc)
    )
    server = start_server(config, tmp_path / "server.log")
    stub = pb_grpc.FirmwareSignerStub(
        grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
    )
    yield Env(stub, vectors, "", db, dcc)
    assert server.stop() == 0


def test_rtds_cs06_pre_commands_sign_to_the_rtds_commands(fresh: Env) -> None:
    """The RTDS success pairs, answered as if the service had issued their 11.3 requests."""
    env = fresh
    gbcs = env.vectors / "gbcs"
    cases = {
        "IMMEDIATE_SUCCESS": None,
        "FUTURE_DATED_SUCCESS": dt.datetime(2030, 1, 15, 9, tzinfo=dt.UTC),
    }
    z1 = _cert(env, "Z1-supplier-ds")
    for name, when in cases.items():
        pre = bytes.fromhex((gbcs / f"CS06_11.3_{name}_PRECOMMAND_GBCS.HEX").read_text().strip())
        command = bytes.fromhex((gbcs / f"CS06_11.3_{name}_COMMAND_GBCS.HEX").read_text().strip())
        counter = int.from_bytes(pre[3:11], "big")
        # the counter store must have handed this counter out, as it would have for a real
        # 11.3 request: move the sequence past it first
        supplier = Eui64.parse(SUPPLIER_EUI)
        last = counters.last_issued(env.db, supplier) or 0
        assert last < counter, "the RTDS counters (1000..) must not have been issued yet"
        # (with no clock floor: the RTDS vectors were made with small counters)
        counters.reserve(env.db, supplier, counter - last, clock=lambda: 0)
        firmware_hash = bytes.fromhex(
            "AA758690730934FF0685AA758690730934FF0685657788990011223344556677"
        )
        activations.record(
            env.db,
            [
                IssuedActivation(
                    originator=Eui64.parse(SUPPLIER_EUI),
                    counter=counter,
                    device=Eui64.parse(RTDS_DEVICE),
                    image_id=firmware_hash.hex(),
                    execution_time=when,
                    cancel=False,
                    issued_at=PINNED,
                )
            ],
        )
        signed = env.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
        )
        ours = signed.signed_pre_command
        # RTDS COMMAND = 14-byte MAC envelope header || APDU || 0x40 || r||s || 12-byte MAC
        rtds = command[14:-12]
        assert len(ours) == len(rtds) and ours[:-64] == rtds[:-64]
        assert raw_signature_verifies(z1, pre[1:], ours[-64:])
        assert raw_signature_verifies(z1, pre[1:], rtds[-64:])


def test_a_campaign_streams_per_device_results_in_order(env: Env) -> None:
    ids = [campaign_device(i) for i in range(CAMPAIGN)]

    def requests() -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=env.image_id))
        for i in range(0, len(ids), 300):
            yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=ids[i : i + 300]))

    batches = list(env.stub.StreamActivation(requests()))
    assert [len(b.results) for b in batches] == [300] * 10
    results = [r for b in batches for r in b.results]
    assert len(results) == CAMPAIGN
    got = [
        r.request.device_id if r.WhichOneof("result") == "request" else r.refused.device_id
        for r in results
    ]
    assert got == ids
    reasons = Counter(r.refused.reason for r in results if r.WhichOneof("result") == "refused")
    expected = Counter(campaign_state(i) for i in range(CAMPAIGN))
    assert reasons == {
        "not_permitted_predecessor": expected["behind"],
        "unknown_device": expected["unknown"],
    }
    counters = [
        int(r.request.request_id.rsplit(":", 1)[1])
        for r in results
        if r.WhichOneof("result") == "request"
    ]
    assert len(counters) == expected["ok"] == len(set(counters))
    assert counters == sorted(counters)
    assert_schema_valid(results[0].request.duis_request, env.vectors / "xsd")


def test_a_campaign_must_name_its_activation_first(env: Env) -> None:
    bad = iter([pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=[RTDS_DEVICE]))])
    with pytest.raises(grpc.RpcError) as err:
        list(env.stub.StreamActivation(bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_a_cancellation_signed_from_the_dcc_response(env: Env, tmp_path: Path) -> None:
    req = _activate(env, [RTDS_DEVICE], cancel=True).requests[0]
    body = etree.fromstring(req.duis_request).find(f".//{SR}ActivateFirmware")
    assert body is not None and body.findtext(f"{SR}ExecutionDateTime", "").startswith("3000-12-31")
    counter = int(req.request_id.rsplit(":", 1)[1])
    base = {
        "originator": SUPPLIER_EUI,
        "recipient": RTDS_DEVICE,
        "counter": counter,
        "firmware_hash": IMAGE_HASH,
    }
    immediate = cs06_pre_command(**base)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(
                dcc_response=env.dcc.sign(
                    dcc_response(immediate, request_id=req.request_id), tmp_path
                )
            )
        )
    assert "execution_time" in (err.value.details() or "")
    cancel = cs06_pre_command(**base, execution_time="99991231235959Z")  # type: ignore[arg-type]
    signed = env.stub.SignPreCommand(
        pb.SignPreCommandRequest(
            dcc_response=env.dcc.sign(dcc_response(cancel, request_id=req.request_id), tmp_path)
        )
    )
    assert signed.request_id == req.request_id
    assert raw_signature_verifies(
        _cert(env, "Z1-supplier-ds"), cancel[1:], signed.signed_pre_command[-64:]
    )
    _check_document(env, signed.duis_request, tmp_path)


def test_a_pre_command_is_signed_once(env: Env) -> None:
    req = _activate(env, [RTDS_DEVICE]).requests[0]
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=RTDS_DEVICE,
        counter=int(req.request_id.rsplit(":", 1)[1]),
        firmware_hash=IMAGE_HASH,
    )
    env.stub.SignPreCommand(pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True))
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=pre, accept_unauthenticated=True)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "already signed" in (err.value.details() or "")


def test_the_dcc_response_must_answer_the_pre_commands_request(env: Env, tmp_path: Path) -> None:
    req = _activate(env, [RTDS_DEVICE]).requests[0]
    counter = int(req.request_id.rsplit(":", 1)[1])
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=counter, firmware_hash=IMAGE_HASH
    )
    other = f"{SUPPLIER_EUI}:{RTDS_DEVICE}:{counter + 100000}"
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(
                dcc_response=env.dcc.sign(dcc_response(pre, request_id=other), tmp_path)
            )
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "request_id" in (err.value.details() or "")


def test_odd_inputs_are_refused_not_internal(env: Env) -> None:
    huge = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=2**63 + 5, firmware_hash=IMAGE_HASH
    )
    with pytest.raises(grpc.RpcError) as err:
        env.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=huge, accept_unauthenticated=True)
        )
    assert err.value.code() in (
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    for when in (Timestamp(seconds=253402300800 + 86400), Timestamp(seconds=2**40, nanos=5)):
        spec = pb.ActivationSpec(image_id=env.image_id)
        spec.execution_time.CopyFrom(when)
        with pytest.raises(grpc.RpcError) as err:
            env.stub.BuildActivation(
                pb.BuildActivationRequest(activation=spec, device_ids=[RTDS_DEVICE])
            )
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, when
        assert "execution_time" in (err.value.details() or "")
    refusals = {
        r.device_id: r
        for r in env.stub.Resign(
            pb.ResignRequest(image_id=env.image_id, device_ids=[RTDS_DEVICE, GSME])
        ).refused
    }
    assert refusals[GSME].no_path and not refusals[GSME].upgrade_path


def test_pre_commands_signed_in_batches(env: Env) -> None:
    """A campaign's pre-commands: the good ones signed, each bad one refused on its own."""
    ids = [campaign_device(i) for i in range(40) if campaign_state(i) == "ok"]

    def activation() -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=env.image_id))
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=ids))

    built = [r.request for b in env.stub.StreamActivation(activation()) for r in b.results]
    pres = [
        cs06_pre_command(
            originator=SUPPLIER_EUI,
            recipient=r.device_id,
            counter=int(r.request_id.rsplit(":", 1)[1]),
            firmware_hash=IMAGE_HASH,
        )
        for r in built
    ]
    tampered = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=built[1].device_id,
        counter=int(built[0].request_id.rsplit(":", 1)[1]),
        firmware_hash=IMAGE_HASH,
    )  # counter of device 0, for device 1
    first = [*pres[:10], tampered, b"\xdf\x09", pres[0]]
    second = pres[10:]
    out = list(
        env.stub.StreamSignPreCommands(
            iter(
                [
                    pb.PreCommandBatch(pre_commands=first, accept_unauthenticated=True),
                    pb.PreCommandBatch(pre_commands=second, accept_unauthenticated=True),
                ]
            )
        )
    )
    assert [len(m.results) for m in out] == [len(first), len(second)]
    kinds = [r.WhichOneof("result") for r in out[0].results]
    assert kinds == ["signed"] * 10 + ["refused"] * 3
    reasons = [r.refused.reason for r in out[0].results[10:]]
    assert "recipient" in reasons[0]
    assert reasons[1].startswith("malformed")
    assert "earlier in this batch" in reasons[2]
    assert [r.refused.code for r in out[0].results[10:]] == [
        "pre_command_mismatch",
        "pre_command_malformed",
        "pre_command_duplicate_in_batch",
    ]
    z1 = _cert(env, "Z1-supplier-ds")
    for pre, result in zip(
        pres, [r for m in out for r in m.results if r.WhichOneof("result") == "signed"], strict=True
    ):
        assert result.signed.signed_pre_command[: len(pre)] == pre
        assert raw_signature_verifies(z1, pre[1:], result.signed.signed_pre_command[-64:])
    again = list(
        env.stub.StreamSignPreCommands(
            iter([pb.PreCommandBatch(pre_commands=pres[:1], accept_unauthenticated=True)])
        )
    )
    assert "already signed" in again[0].results[0].refused.reason
    assert again[0].results[0].refused.code == "pre_command_already_signed"


def test_a_pre_command_for_a_device_with_no_usable_key_carries_the_device_code(env: Env) -> None:
    """Issued, matching, but the device is no longer registered: the device refusal's code."""
    supplier = Eui64.parse(SUPPLIER_EUI)
    counter = counters.reserve(env.db, supplier)
    activations.record(
        env.db,
        [
            IssuedActivation(
                originator=supplier,
                counter=counter,
                device=Eui64.parse(UNKNOWN),
                image_id=IMAGE_HASH.hex(),
                execution_time=None,
                cancel=False,
                issued_at=PINNED,
            )
        ],
    )
    pre = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=UNKNOWN, counter=counter, firmware_hash=IMAGE_HASH
    )
    [batch] = env.stub.StreamSignPreCommands(
        iter([pb.PreCommandBatch(pre_commands=[pre], accept_unauthenticated=True)])
    )
    [result] = batch.results
    assert result.WhichOneof("result") == "refused"
    assert result.refused.code == "unknown_device"
    assert f"device {UNKNOWN}: unknown_device" in result.refused.reason


def test_a_bad_device_in_a_campaign_batch_is_refused_and_the_others_proceed(env: Env) -> None:
    """Issue 13: an ID that is not an EUI-64, or a repeat, is one device's refusal, not the
    end of the stream; an all-bad batch answers with refusals only."""
    good = [campaign_device(i) for i in range(40, 60) if campaign_state(i) == "ok"][:3]
    batch = [good[0], "00-DB-ZZ-34", good[1], good[0], "x" * 10_000, "", good[2]]

    def requests() -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=env.image_id))
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=batch))
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=["nonsense"]))
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=[]))

    first, all_bad, empty = list(env.stub.StreamActivation(requests()))
    kinds = [r.WhichOneof("result") for r in first.results]
    assert kinds == ["request", "refused", "request", "refused", "refused", "refused", "request"]
    assert [r.request.device_id for r in first.results if r.HasField("request")] == good
    refused = [r.refused for r in first.results if r.HasField("refused")]
    assert [r.reason for r in refused] == [
        "invalid_device_id",
        "duplicate_device_in_batch",
        "invalid_device_id",
        "invalid_device_id",
    ]
    assert refused[0].device_id == "00-DB-ZZ-34" and "device_ids[1]" in refused[0].detail
    assert refused[1].device_id == good[0]
    assert len(refused[2].device_id) <= 32 and len(refused[2].detail) < 200
    for r in first.results:
        if r.HasField("request"):
            assert_schema_valid(r.request.duis_request, env.vectors / "xsd")
    assert [r.refused.reason for r in all_bad.results] == ["invalid_device_id"]
    assert len(empty.results) == 0


def test_hostile_items_in_a_pre_command_batch_are_refused_one_by_one(env: Env) -> None:
    """Issue 13: empty, truncated, oversized, random and never-issued pre-commands in one
    batch are each refused with a code; the good one beside them is signed."""
    [request] = [
        r.request
        for b in env.stub.StreamActivation(
            iter(
                [
                    pb.ActivationCampaignRequest(
                        activation=pb.ActivationSpec(image_id=env.image_id)
                    ),
                    pb.ActivationCampaignRequest(
                        devices=pb.DeviceBatch(device_ids=[campaign_device(61)])
                    ),
                ]
            )
        )
        for r in b.results
    ]
    good = cs06_pre_command(
        originator=SUPPLIER_EUI,
        recipient=request.device_id,
        counter=int(request.request_id.rsplit(":", 1)[1]),
        firmware_hash=IMAGE_HASH,
    )
    never = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=2**40 + 7, firmware_hash=IMAGE_HASH
    )
    hostile = [b"", good[:7], good + b"\x00" * 5000, bytes(range(256)) * 4, never, good]
    [out] = env.stub.StreamSignPreCommands(
        iter([pb.PreCommandBatch(pre_commands=hostile, accept_unauthenticated=True)])
    )
    kinds = [r.WhichOneof("result") for r in out.results]
    assert kinds == ["refused"] * 5 + ["signed"]
    codes = [r.refused.code for r in out.results[:5]]
    assert codes[:4] == ["pre_command_malformed"] * 4
    assert codes[4] == "pre_command_not_issued"
    assert all(len(r.refused.reason) < 500 for r in out.results[:5])
    signed = out.results[5].signed.signed_pre_command
    assert raw_signature_verifies(_cert(env, "Z1-supplier-ds"), good[1:], signed[-64:])
