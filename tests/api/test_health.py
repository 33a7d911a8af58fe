"""gRPC health checking and reflection on the real server; NOT_SERVING while a backend is away."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from signer.api.health import SERVICE, HealthMonitor
from signer.clock import fixed_clock
from signer.config import load_config
from signer.service.services import Services, open_services
from tests.support.constants import PINNED
from tests.support.hsm import Hsm
from tests.support.server import Running, write_config

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _status(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_the_server_reports_serving_and_lists_its_services(running: Running) -> None:
    assert _status(running.channel, "") == SERVING
    assert _status(running.channel, SERVICE) == SERVING
    with pytest.raises(grpc.RpcError) as err:
        _status(running.channel, "no.such.Service")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND

    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    answers = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= names
    described = list(
        stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE)]),
            timeout=5,
        )
    )
    assert described[0].file_descriptor_response.file_descriptor_proto


@pytest.fixture()
def monitored(
    hsm: Hsm, tmp_path: Path
) -> Iterator[tuple[Services, HealthMonitor, grpc.Channel, Path]]:
    """A monitor publishing to a health servicer served over a real socket."""
    data = tmp_path / "data"
    config = load_config(
        write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{data / 'signer.db'}")
    )
    svc = open_services(config, clock=fixed_clock(PINNED), token=hsm.token())
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    yield svc, HealthMonitor(svc, servicer), channel, data
    channel.close()
    server.stop(None)
    svc.db.dispose()


def test_not_serving_while_the_database_is_away_and_serving_when_it_is_back(
    monitored: tuple[Services, HealthMonitor, grpc.Channel, Path], tmp_path: Path
) -> None:
    svc, monitor, channel, data = monitored
    assert monitor.check() is None
    assert _status(channel, SERVICE) == SERVING

    svc.db.engine.dispose()  # no pooled connection survives: the next one must open the file
    shutil.move(data, tmp_path / "elsewhere")
    reason = monitor.check()
    assert reason is not None and reason.startswith("database: ")
    assert _status(channel, SERVICE) == NOT_SERVING
    assert _status(channel, "") == NOT_SERVING

    shutil.move(tmp_path / "elsewhere", data)
    assert monitor.check() is None
    assert _status(channel, SERVICE) == SERVING


def test_shutdown_turns_every_service_not_serving(
    monitored: tuple[Services, HealthMonitor, grpc.Channel, Path],
) -> None:
    _svc, monitor, channel, _data = monitored
    monitor.start()
    assert _status(channel, SERVICE) == SERVING
    monitor.stop()
    assert _status(channel, SERVICE) == NOT_SERVING
    assert _status(channel, "") == NOT_SERVING
