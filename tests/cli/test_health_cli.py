"""`signer health`: what a container HEALTHCHECK and scripts run against the server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tests.support.server import Running


def _health(*args: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    return subprocess.run(
        [sys.executable, "-m", "signer.cli.main", "health", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


def test_health_says_serving_and_exits_0(running: Running) -> None:
    done = _health("--server", running.server.address)
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING")
    done = _health("--server", running.server.address, "--json")
    assert (done.returncode, json.loads(done.stdout)) == (0, {"status": "SERVING"})
    done = _health("--server", running.server.address, "--service", "signer.v1.FirmwareSigner")
    assert (done.returncode, done.stdout.strip()) == (0, "SERVING")


def test_health_of_an_unknown_service_exits_5_and_no_server_exits_1(running: Running) -> None:
    done = _health("--server", running.server.address, "--service", "no.such.Service")
    assert done.returncode == 5 and "Error: not found" in done.stderr  # README "Exit codes"
    assert "hint:" not in done.stderr  # the server answered: no connection hint fits
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = _health("--server", f"127.0.0.1:{port}", "--timeout", "2")
    assert done.returncode == 1 and "Error: server unavailable" in done.stderr
    assert "hint: nothing answers at" in done.stderr
    assert "Traceback" not in done.stderr
