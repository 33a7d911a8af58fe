"""SIGTERM: no new calls, calls in flight finish within the grace period, exit status 0."""

from __future__ import annotations

import queue
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from tests.support.activation_fleet import HEADER, IMAGE
from tests.support.constants import RTDS_DEVICE
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer
from tests.support.server import ServerProcess, prepare, start_server, verify_separate


def _wait_for(log: Path, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} never logged:\n{log.read_text()[-2000:]}")
        time.sleep(0.02)


def _wait_until_started(proc: ServerProcess, method: str) -> None:
    """Until the metrics say a call of ``method`` has started on the server."""
    assert proc.metrics is not None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://{proc.metrics}/metrics", timeout=5).read()
        for family in text_string_to_metric_families(text.decode()):
            if family.name == "grpc_server_started" and any(
                s.labels.get("grpc_method") == method and s.value >= 1 for s in family.samples
            ):
                return
        time.sleep(0.05)
    raise AssertionError(f"no {method} call started")


def _held_stream(
    stub: pb_grpc.FirmwareSignerStub, gate: threading.Event
) -> tuple[threading.Thread, queue.Queue[object]]:
    """A StreamSignPreCommands call that sends one batch, then waits for `gate` to send
    another: in flight for as long as the test wants. Returns once the first batch has
    been answered."""
    out: queue.Queue[object] = queue.Queue()
    answered = threading.Event()

    def batches() -> Iterator[pb.PreCommandBatch]:
        yield pb.PreCommandBatch(pre_commands=[b""], accept_unauthenticated=True)
        gate.wait(30)
        yield pb.PreCommandBatch(pre_commands=[b"", b""], accept_unauthenticated=True)

    def run() -> None:
        sizes = []
        try:
            for message in stub.StreamSignPreCommands(batches(), timeout=60):
                sizes.append(len(message.results))
                answered.set()
            out.put(sizes)
        except grpc.RpcError as exc:
            out.put(exc.code())

    thread = threading.Thread(target=run)
    thread.start()
    assert answered.wait(10), "the first batch was never answered"
    return thread, out


@pytest.fixture()
def server(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> Iterator[tuple[ServerProcess, grpc.Channel]]:
    config, db, _url = prepare(hsm, vectors, manufacturer, tmp_path)
    db.dispose()
    text = config.read_text().replace("dev_mode = true", "dev_mode = true\nshutdown_grace = 2")
    config.write_text(text)
    proc = start_server(config, tmp_path / "server.log")
    channel = grpc.insecure_channel(proc.address, options=CHANNEL_OPTIONS)
    yield proc, channel
    channel.close()
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


def test_sigterm_lets_a_call_in_flight_finish_refuses_new_ones_and_exits_0(
    server: tuple[ServerProcess, grpc.Channel],
) -> None:
    proc, channel = server
    stub = pb_grpc.FirmwareSignerStub(channel)
    gate = threading.Event()
    thread, out = _held_stream(stub, gate)  # in flight
    proc.proc.send_signal(signal.SIGTERM)
    _wait_for(proc.log, "signal 15: stopping")

    fresh = grpc.insecure_channel(proc.address, options=CHANNEL_OPTIONS)
    with pytest.raises(grpc.RpcError) as refused:
        pb_grpc.FirmwareSignerStub(fresh).ListKeys(pb.ListKeysRequest(), timeout=5)
    # gRPC core reports a call the stopping server never took as UNAVAILABLE, or as
    # CANCELLED when it raced the listener closing; either way no handler ran it
    assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    fresh.close()

    gate.set()  # the call in flight sends its last batch and completes normally
    thread.join(10)
    assert out.get_nowait() == [1, 2]
    assert proc.proc.wait(timeout=10) == 0
    log = proc.log.read_text()
    assert "StreamSignPreCommands OK" in log
    assert '"grpc_method": "ListKeys"' not in log


def test_a_call_still_running_after_the_grace_period_is_cut_and_the_exit_is_still_0(
    server: tuple[ServerProcess, grpc.Channel],
) -> None:
    proc, channel = server
    gate = threading.Event()  # never set within the grace period
    thread, out = _held_stream(pb_grpc.FirmwareSignerStub(channel), gate)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=15) == 0
    assert 1.5 < time.monotonic() - started < 8  # the 2 s grace, then stop
    gate.set()
    thread.join(10)
    assert out.get_nowait() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


def test_a_handler_stuck_after_the_grace_period_does_not_hold_the_exit(
    server: tuple[ServerProcess, grpc.Channel], manufacturer: Manufacturer, tmp_path: Path
) -> None:
    """The database (like a hung HSM) stops answering: the call's handler cannot finish, the
    process still exits 0 shortly after the grace period, and nothing was returned or
    recorded for it."""
    proc, channel = server
    stub = pb_grpc.FirmwareSignerStub(channel)
    verdict = verify_separate(stub, manufacturer, IMAGE, header=HEADER, timeout=30)
    assert verdict.verified
    blocker = sqlite3.connect(tmp_path / "signer.db", timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # the audit append waits for this write lock (30 s)
    out: queue.Queue[object] = queue.Queue()

    def resign() -> None:
        try:
            out.put(
                stub.Resign(
                    pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE]),
                    timeout=60,
                )
            )
        except grpc.RpcError as exc:
            out.put(exc.code())

    thread = threading.Thread(target=resign)
    thread.start()
    _wait_until_started(proc, "Resign")  # inside the handler, waiting for the database
    time.sleep(0.5)
    started = time.monotonic()
    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(timeout=20) == 0
    assert time.monotonic() - started < 8  # grace 2 s + linger 2 s, not the 30 s busy wait
    thread.join(10)
    assert out.get_nowait() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert "call handler(s) still running" in proc.log.read_text()
    blocker.rollback()
    count = blocker.execute("SELECT count(*) FROM audit_records WHERE operation = 'resign'")
    assert count.fetchone() == (0,)  # the process left before anything was recorded
    blocker.close()
