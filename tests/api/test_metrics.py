"""The /metrics endpoint of a real server moves exactly as calls are made; the interceptor's
go-grpc-prometheus semantics (codes, stream types, messages) on an in-process server."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from signer.api import metrics_collector
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.metrics_interceptor import GO_CODES, MetricsInterceptor, go_code_name
from signer.api.status import refusal_reason
from signer.service import precommands
from signer.service.keys.views import KeyView
from tests.support.constants import RTDS_DEVICE, SUPPLIER_EUI
from tests.support.independent import cs06_pre_command
from tests.support.manufacturer import Manufacturer
from tests.support.scrape import scrape, total
from tests.support.server import Running

SIGNER = "signer.v1.FirmwareSigner"
HEALTH = "grpc.health.v1.Health"
UNKNOWN_DEVICE = "00-DB-12-34-56-78-90-FF"


def grpc_labels(method: str, kind: str = "unary", service: str = SIGNER) -> dict[str, str]:
    return {"grpc_type": kind, "grpc_service": service, "grpc_method": method}


def test_scraped_values_move_exactly_as_calls_are_made(
    running: Running, manufacturer: Manufacturer
) -> None:
    assert running.server.metrics is not None
    before = scrape(running.server.metrics)

    image = f"metrics test firmware {time.time_ns()} ".encode() * 20
    image_id = running.verify(manufacturer, image)
    with pytest.raises(grpc.RpcError) as err:
        running.stub.VerifyManufacturer(pb.VerifyManufacturerRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    resigned = running.stub.Resign(
        pb.ResignRequest(image_id=image_id, device_ids=[RTDS_DEVICE, UNKNOWN_DEVICE])
    )
    assert [r.reason for r in resigned.refused] == ["unknown_device"]
    with pytest.raises(grpc.RpcError) as err:  # DevicesRefused: every device refused
        running.stub.Resign(pb.ResignRequest(image_id=image_id, device_ids=[UNKNOWN_DEVICE]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    never_issued = cs06_pre_command(
        originator=SUPPLIER_EUI, recipient=RTDS_DEVICE, counter=987654321, firmware_hash=bytes(32)
    )
    with pytest.raises(grpc.RpcError) as err:
        running.stub.SignPreCommand(
            pb.SignPreCommandRequest(pre_command=never_issued, accept_unauthenticated=True)
        )
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    batches = list(
        running.stub.StreamSignPreCommands(
            iter(
                [
                    pb.PreCommandBatch(
                        pre_commands=[b"\xdf\x09", never_issued], accept_unauthenticated=True
                    )
                ]
            )
        )
    )
    assert [r.WhichOneof("result") for r in batches[0].results] == ["refused", "refused"]
    assert [r.refused.code for r in batches[0].results] == [
        "pre_command_malformed",
        "pre_command_not_issued",
    ]
    health = health_pb2_grpc.HealthStub(running.channel)
    assert (
        health.Check(health_pb2.HealthCheckRequest(service=SIGNER), timeout=5).status
        == health_pb2.HealthCheckResponse.SERVING
    )
    watch = health.Watch(health_pb2.HealthCheckRequest(service=SIGNER), timeout=30)
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    watch.cancel()

    watched = grpc_labels("Watch", "server_stream", HEALTH)
    after = scrape(running.server.metrics)
    deadline = time.monotonic() + 5  # the server learns of the cancellation asynchronously
    while (
        total(after, "grpc_server_handled_total", **watched, grpc_code="Canceled")
        == total(before, "grpc_server_handled_total", **watched, grpc_code="Canceled")
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
        after = scrape(running.server.metrics)

    def delta(name: str, **labels: str) -> float:
        return total(after, name, **labels) - total(before, name, **labels)

    verify, resign = grpc_labels("VerifyManufacturer"), grpc_labels("Resign")
    assert delta("grpc_server_started_total", **verify) == 2
    assert delta("grpc_server_handled_total", **verify, grpc_code="OK") == 1
    assert delta("grpc_server_handled_total", **verify, grpc_code="InvalidArgument") == 1
    assert delta("grpc_server_handled_total", **verify) == 2
    assert delta("grpc_server_handling_seconds_count", **verify) == 2
    assert delta("grpc_server_handling_seconds_bucket", **verify, le="+Inf") == 2
    assert delta("grpc_server_handling_seconds_sum", **verify) > 0
    assert delta("grpc_server_msg_received_total", **verify) == 2
    assert delta("grpc_server_msg_sent_total", **verify) == 1  # an aborted call sends none
    assert delta("grpc_server_started_total", **resign) == 2
    assert delta("grpc_server_handled_total", **resign, grpc_code="OK") == 1
    assert delta("grpc_server_handled_total", **resign, grpc_code="FailedPrecondition") == 1
    check = grpc_labels("Check", service=HEALTH)
    assert delta("grpc_server_started_total", **check) == 1
    assert delta("grpc_server_handled_total", **check, grpc_code="OK") == 1
    assert delta("grpc_server_started_total", **watched) == 1
    assert delta("grpc_server_handled_total", **watched, grpc_code="Canceled") == 1
    assert delta("grpc_server_handled_total", **watched) == 1
    assert delta("grpc_server_msg_sent_total", **watched) >= 1
    # every FirmwareSigner method is there from the start, at zero, with every code
    assert (
        "grpc_server_handled_total",
        frozenset({**grpc_labels("GetUpgradePath"), "grpc_code": "Internal"}.items()),
    ) in before

    stream = grpc_labels("StreamSignPreCommands", "bidi_stream")
    assert delta("grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert delta("grpc_server_msg_received_total", **stream) == 1
    assert delta("grpc_server_msg_sent_total", **stream) == 1

    # one device refused inside a successful Resign, one in DevicesRefused; pre-commands
    # refused alone (SignPreCommand) and inside a batch
    assert delta("signer_refusals_total", reason="unknown_device") == 2
    assert delta("signer_refusals_total", reason="pre_command_not_issued") == 2
    assert delta("signer_refusals_total", reason="pre_command_malformed") == 1
    assert delta("signer_refusals_total") == 5
    for name, result in (
        ("structure", "pass"),
        ("manufacturer_signature", "pass"),
        ("hash", "pass"),
        ("cpl", "fail"),
    ):  # advisory: not on the CPL
        assert delta("signer_verifications_total", check=name, result=result) == 1, name
    assert delta("signer_verifications_total") == 4  # the malformed call checked nothing
    assert delta("signer_hsm_operation_seconds_count", operation="sign") >= 1
    assert total(after, "signer_hsm_up") == 1
    # incremented by the signing door (signer/service/signing.py)
    assert delta("signer_signatures_total", key="z1-supplier-ds", purpose="supplier-ds") == 1

    for label, name in (
        ("z1-supplier-ds", "Z1-supplier-ds"),
        ("xml-sign", "xml-sign-90B3D51F30010000-ds"),
    ):
        cert = x509.load_pem_x509_certificate(
            (running.vectors / "certs" / f"{name}.pem").read_bytes()
        )
        assert (
            total(after, "signer_key_not_after_timestamp_seconds", key=label, state="active")
            == cert.not_valid_after_utc.timestamp()
        ), label
    build = [dict(ls) for (n, ls) in after if n == "signer_build_info"]
    assert len(build) == 1 and build[0]["version"] and build[0]["grpc"] == grpc.__version__
    assert not any(n.endswith("_created") for n, _ in after)


# -- the interceptor alone, on an in-process server ---------------------------------------

PROBE = "test.v1.Probe"


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"boom":
        raise RuntimeError("a bug")
    if request == b"deny":
        context.abort(grpc.StatusCode.PERMISSION_DENIED, "not for you")
    if request == b"slow":
        time.sleep(0.5)
    return request


def _upload(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"".join(requests)


def _chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for r in requests:
        yield r
        yield r


@pytest.fixture(scope="module")
def probe() -> Iterator[grpc.Channel]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4), interceptors=[MetricsInterceptor()]
    )
    server.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                PROBE,
                {
                    "Unary": grpc.unary_unary_rpc_method_handler(_unary),
                    "Upload": grpc.stream_unary_rpc_method_handler(_upload),
                    "Chat": grpc.stream_stream_rpc_method_handler(_chat),
                },
            )
        ]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    channel.close()
    server.stop(None)


def _value(name: str, method: str, kind: str, **extra: str) -> float:
    labels = {**grpc_labels(method, kind, PROBE), **extra}
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _moved(fn: Callable[[], Any], *reads: tuple[str, str, str, dict[str, str]]) -> list[float]:
    before = [_value(n, m, k, **x) for n, m, k, x in reads]
    fn()  # the server counts a call's end before its status leaves
    return [_value(n, m, k, **x) - b for (n, m, k, x), b in zip(reads, before, strict=True)]


def test_codes_of_aborted_failed_and_deadline_exceeded_calls(probe: grpc.Channel) -> None:
    unary = probe.unary_unary(f"/{PROBE}/Unary", None, None)

    def call(data: bytes, timeout: float | None = None) -> Callable[[], Any]:
        def run() -> None:
            try:
                unary(data, timeout=timeout)
            except grpc.RpcError:
                pass

        return run

    handled = "grpc_server_handled_total"
    for data, code in ((b"ok", "OK"), (b"deny", "PermissionDenied"), (b"boom", "Unknown")):
        assert _moved(
            call(data),
            ("grpc_server_started_total", "Unary", "unary", {}),
            (handled, "Unary", "unary", {"grpc_code": code}),
            ("grpc_server_msg_received_total", "Unary", "unary", {}),
            ("grpc_server_msg_sent_total", "Unary", "unary", {}),
        ) == [1, 1, 1, 1 if code == "OK" else 0], code
    late = _value(handled, "Unary", "unary", grpc_code="DeadlineExceeded")
    assert _moved(
        call(b"slow", timeout=0.1), ("grpc_server_started_total", "Unary", "unary", {})
    ) == [1]
    deadline = time.monotonic() + 5  # the handler finishes 0.4 s after the client gave up
    while (
        _value(handled, "Unary", "unary", grpc_code="DeadlineExceeded") == late
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)
    assert _value(handled, "Unary", "unary", grpc_code="DeadlineExceeded") == late + 1


def test_stream_types_and_messages_are_counted(probe: grpc.Channel) -> None:
    upload = probe.stream_unary(f"/{PROBE}/Upload", None, None)
    chat = probe.stream_stream(f"/{PROBE}/Chat", None, None)
    assert _moved(
        lambda: upload(iter([b"a", b"b", b"c"])),
        ("grpc_server_msg_received_total", "Upload", "client_stream", {}),
        ("grpc_server_msg_sent_total", "Upload", "client_stream", {}),
        ("grpc_server_handled_total", "Upload", "client_stream", {"grpc_code": "OK"}),
    ) == [3, 1, 1]
    assert _moved(
        lambda: list(chat(iter([b"a", b"b"]))),
        ("grpc_server_msg_received_total", "Chat", "bidi_stream", {}),
        ("grpc_server_msg_sent_total", "Chat", "bidi_stream", {}),
        ("grpc_server_handled_total", "Chat", "bidi_stream", {"grpc_code": "OK"}),
    ) == [2, 4, 1]


def test_code_names_are_go_spellings() -> None:
    go = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ]
    assert sorted(GO_CODES.values()) == sorted(go)
    assert go_code_name("CANCELLED") == "Canceled"


def test_free_text_never_becomes_a_reason_label() -> None:
    assert refusal_reason("unknown_device") == "unknown_device"
    assert refusal_reason("device 00-DB: unknown (not registered)") == "other"
    assert refusal_reason("x" * 100) == "other"
    # pre-command refusals carry their code; each is a label as it stands
    for code in (
        precommands.PRE_COMMAND_MALFORMED,
        precommands.PRE_COMMAND_NOT_ISSUED,
        precommands.PRE_COMMAND_MISMATCH,
        precommands.PRE_COMMAND_ALREADY_SIGNED,
        precommands.PRE_COMMAND_DUPLICATE,
        precommands.PRE_COMMAND_UNAUTHENTICATED,
    ):
        assert refusal_reason(code) == code


def test_a_hung_hsm_never_hangs_a_scrape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Key expiry is refreshed in one background thread; a scrape waits a bounded time and
    otherwise shows the last values."""
    release = threading.Event()
    calls: list[int] = []

    def list_keys(svc: object) -> list[KeyView]:
        calls.append(1)
        n = len(calls)
        if n > 1:
            release.wait(10)  # the HSM hangs from the second refresh on
        return [
            KeyView(
                label="k",
                key_id=b"k",
                ski=None,
                purpose="supplier-ds",
                state="active",
                on_token=True,
                can_sign=True,
                devices=0,
                certificate=None,
                not_after=dt.datetime(2030, 1, n, tzinfo=dt.UTC),
            )
        ]

    monkeypatch.setattr(metrics_collector, "list_keys", list_keys)
    keys = metrics_collector._KeyExpiry(None, ttl=0.0, wait=0.2)  # type: ignore[arg-type]
    first = [("k", "supplier-ds", "active", dt.datetime(2030, 1, 1, tzinfo=dt.UTC).timestamp())]
    assert keys.current() == first
    for _ in range(3):
        t0 = time.monotonic()
        assert keys.current() == first
        assert time.monotonic() - t0 < 1
    assert len(calls) == 2  # one refresh at a time, however many scrapes
    release.set()
    time.sleep(0.1)
    assert keys.current()[0][3] > first[0][3]  # the HSM is back: new values
