"""Replicas on one PostgreSQL survive one of them being killed with SIGKILL mid-load.

Two `signer serve` processes share a PostgreSQL database and the token (each its own
PKCS#11 session, as with a network HSM partition). Clients drive BuildDUIS and
BuildActivation on both; one replica is killed with ``kill -9`` in the middle and started
again. Whatever reached a client must hold: no RequestID counter twice, every returned
signature with its committed audit record, and `signer audit verify` intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.cpl.parse import read_csv
from signer.limits import CHANNEL_OPTIONS
from signer.registry import cpl
from tests.support.audit_rows import assert_chain, rows
from tests.support.constants import PINNED
from tests.support.devices import add_device
from tests.support.fleet import HEADER, IMAGE, cpl_csv
from tests.support.hsm import Hsm
from tests.support.manufacturer import Manufacturer
from tests.support.postgres import Cluster
from tests.support.server import ServerProcess, prepare, start_server, verify_separate

DEVICES = [f"00-DE-00-00-00-00-00-{i:02X}" for i in range(40)]


@dataclass
class Returned:
    """What clients received: RequestIDs by the call that returned them."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    duis: list[str] = field(default_factory=list)
    activations: list[str] = field(default_factory=list)
    failures: list[grpc.StatusCode] = field(default_factory=list)


def _load(address: str, image_id: str, worker: int, until: float, got: Returned) -> None:
    """Alternate BuildDUIS (3 devices) and BuildActivation (2 devices) until ``until``."""
    with grpc.insecure_channel(address, options=CHANNEL_OPTIONS) as channel:
        stub = pb_grpc.FirmwareSignerStub(channel)
        n = 0
        while time.monotonic() < until:
            n += 1
            picked = [DEVICES[(worker * 7 + n * 3 + k) % len(DEVICES)] for k in range(3)]
            try:
                if n % 2:
                    resp = stub.BuildDUIS(
                        pb.BuildDUISRequest(
                            image_id=image_id, device_ids=picked, firmware_version="00000200"
                        ),
                        timeout=30,
                    )
                    with got.lock:
                        got.duis.append(resp.request_id)
                else:
                    act = stub.BuildActivation(
                        pb.BuildActivationRequest(
                            activation=pb.ActivationSpec(image_id=image_id), device_ids=picked[:2]
                        ),
                        timeout=30,
                    )
                    with got.lock:
                        got.activations.extend(r.request_id for r in act.requests)
            except grpc.RpcError as exc:
                with got.lock:
                    got.failures.append(exc.code())
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    return  # this replica is gone


def _counter(request_id: str) -> int:
    return int(request_id.rsplit(":", 1)[1])


def test_a_replica_killed_mid_load_breaks_no_promise(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, postgres: Cluster, tmp_path: Path
) -> None:
    url = postgres.create_database("crash")
    config, db, _ = prepare(hsm, vectors, manufacturer, tmp_path, cpl_mode="strict", db_url=url)
    assert cpl.import_entries(db, read_csv(cpl_csv().splitlines()), PINNED).applied
    for eui in DEVICES:
        add_device(db, eui)
    replicas: list[ServerProcess] = [
        start_server(config, tmp_path / f"replica-{i}.log") for i in range(2)
    ]
    got = Returned()
    try:
        with grpc.insecure_channel(replicas[0].address, options=CHANNEL_OPTIONS) as ch:
            stub = pb_grpc.FirmwareSignerStub(ch)
            verdict = verify_separate(stub, manufacturer, IMAGE, header=HEADER)
        assert verdict.verified, verdict.checks

        def round_of_load(seconds: float, kill_after: float | None) -> None:
            until = time.monotonic() + seconds
            workers = [
                threading.Thread(
                    target=_load, args=(r.address, verdict.image_id, i * 2 + k, until, got)
                )
                for i, r in enumerate(replicas)
                for k in range(3)
            ]
            for w in workers:
                w.start()
            if kill_after is not None:
                time.sleep(kill_after)
                os.kill(replicas[1].proc.pid, signal.SIGKILL)  # mid-call, no goodbye
                assert replicas[1].proc.wait(timeout=10) == -signal.SIGKILL
            for w in workers:
                w.join(timeout=120)

        round_of_load(4.0, kill_after=2.0)
        returned_before_restart = len(got.duis) + len(got.activations)
        replicas[1] = start_server(config, tmp_path / "replica-1-restarted.log")
        round_of_load(2.0, kill_after=None)
    finally:
        for r in replicas:
            if r.proc.poll() is None:
                assert r.stop() == 0
    assert (
        returned_before_restart > 0
        and len(got.duis) + len(got.activations) > returned_before_restart
    )
    # the kill hit calls in flight; nothing else failed
    assert grpc.StatusCode.UNAVAILABLE in got.failures
    assert set(got.failures) <= {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    print(
        f"returned {len(got.duis)} DUIS and {len(got.activations)} activations, "
        f"{len(got.failures)} calls cut by the kill"
    )

    # counters are promises: none returned twice, across both replicas and the restart
    returned = got.duis + got.activations
    assert len({_counter(r) for r in returned}) == len(returned)

    # every returned signature has its committed audit record
    records = rows(url)
    ok = [r for r in records if r["outcome"] == "ok"]
    duis_signed = {r["duis_request_id"] for r in ok if r["operation"] == "duis-sign"}
    activation_signed = {r["duis_request_id"] for r in ok if r["operation"] == "activation-sign"}
    assert set(got.duis) <= duis_signed
    assert set(got.activations) <= activation_signed
    assert len([r for r in ok if r["operation"] == "resign"]) >= len(got.duis)

    # one linear chain, checked independently and by the operator's command
    assert assert_chain(url) == len(records)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    verify = subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "audit", "verify", "--config", str(config)],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    db.dispose()
