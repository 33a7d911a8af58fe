"""Ports are exclusive: a second server on a port in use fails at start, naming the setting,
before it opens the HSM or creates a database; the first keeps serving."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.hsm import Hsm
from tests.support.server import start_server, write_config


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _serve(config: Path) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    return subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
        check=False,
    )


@pytest.mark.parametrize("setting", ["server.listen", "metrics.listen"])
def test_a_second_server_on_a_port_in_use_fails_at_start(
    hsm: Hsm, tmp_path: Path, setting: str
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    first_dir.mkdir()
    second_dir.mkdir()
    first = start_server(
        write_config(first_dir / "signer.toml", hsm, f"sqlite:///{first_dir / 'signer.db'}"),
        first_dir / "server.log",
    )
    try:
        assert first.metrics is not None
        taken = first.address if setting == "server.listen" else first.metrics
        config = write_config(
            second_dir / "signer.toml", hsm, f"sqlite:///{second_dir / 'data' / 'signer.db'}"
        )
        text = config.read_text()
        section = "[server]" if setting == "server.listen" else "[metrics]"
        head, rest = text.split(section, 1)
        config.write_text(
            head + section + rest.replace('listen = "127.0.0.1:0"', f'listen = "{taken}"', 1)
        )
        second = _serve(config)
        assert second.returncode != 0
        assert "Traceback" not in second.stderr
        errors = [ln for ln in second.stderr.splitlines() if "already in use" in ln]
        assert len(errors) == 1 and setting in errors[0] and taken in errors[0], second.stderr
        assert "READY" not in second.stdout
        assert not (second_dir / "data").exists()  # nothing created, nothing migrated
        assert _serving(first.address)  # the first keeps serving
    finally:
        assert first.stop() == 0


def test_the_health_port_answers_health_and_nothing_else(hsm: Hsm, tmp_path: Path) -> None:
    """`server.health_listen`: plaintext grpc.health.v1 for probes without a client
    certificate (Kubernetes' gRPC probes); the service itself is not on it."""
    from signer.api._proto.signer.v1 import signer_pb2 as pb
    from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

    config = write_config(tmp_path / "signer.toml", hsm, f"sqlite:///{tmp_path / 'signer.db'}")
    config.write_text(
        config.read_text().replace("[server]\n", '[server]\nhealth_listen = "127.0.0.1:0"\n', 1)
    )
    server = start_server(config, tmp_path / "server.log")
    try:
        assert server.health is not None and server.health != server.address
        assert _serving(server.health)
        with grpc.insecure_channel(server.health) as channel:
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.FirmwareSignerStub(channel).ListKeys(pb.ListKeysRequest(), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert _serving(server.address)
    finally:
        assert server.stop() == 0
