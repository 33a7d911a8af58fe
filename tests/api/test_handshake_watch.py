"""`HandshakeWatch` in a process of its own: file descriptor 2 is the pipe to the relay,
as in `signer serve` with TLS. Written to as gRPC core writes (``os.write(2, ...)``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.constants import ROOT

CORE_LINE = (
    "I1203 14:12:34.546151   27033 ssl_transport_security.cc:2563] Handshake failed with "
    "error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
    "CERTIFICATE_VERIFY_FAILED: certificate has expired"
)
SCRIPT = textwrap.dedent(
    """
    import logging, os, sys, time
    from prometheus_client import REGISTRY
    from signer.cli.logs import setup_logging
    from signer.api.handshakes import HandshakeWatch

    setup_logging(False, "json")
    watch = HandshakeWatch.start()
    os.write(2, (sys.argv[2] + "\\n").encode() * 3)  # a client retrying at once
    name, labels = "signer_tls_handshake_failures_total", {{"reason": "certificate_verify_failed"}}
    deadline = time.monotonic() + 10
    while REGISTRY.get_sample_value(name, labels) != 3.0 and time.monotonic() < deadline:
        time.sleep(0.02)
    print("counted", REGISTRY.get_sample_value(name, labels), flush=True)
    logging.getLogger("probe").warning("a python log line")
    if sys.argv[1] == "kill":
        watch._relay.kill()
        watch._reader.join(10)
        os.write(2, b"written after the relay died\\n")
    else:
        os.write(2, b"the last line before stop\\n")
        watch.stop()
        print("relay exit", watch._relay.returncode, flush=True)
    """
)


def run(mode: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT.format(), mode, CORE_LINE],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )


def records(stderr: str) -> list[dict[str, str]]:
    return [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]


def test_core_lines_are_copied_counted_and_logged_once_a_second_and_stop_drains() -> None:
    done = run("stop")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["counted 3.0", "relay exit 0"]
    lines = done.stderr.splitlines()
    assert lines.count(CORE_LINE) == 3 and "the last line before stop" in lines
    messages = [r["message"] for r in records(done.stderr)]
    assert messages == [
        "TLS handshake refused (certificate_verify_failed): CERTIFICATE_VERIFY_FAILED: "
        "certificate has expired; the client never reached a call",
        "a python log line",
    ]


def test_when_the_relay_dies_stderr_is_direct_again_and_one_line_says_so() -> None:
    done = run("kill")
    assert done.returncode == 0, done.stderr
    assert "written after the relay died" in done.stderr.splitlines()
    [error] = [r for r in records(done.stderr) if r["level"] == "ERROR"]
    assert error["message"].startswith("the stderr relay exited (code -9)")
    assert "no longer counted" in error["message"]


@pytest.mark.parametrize("verbosity", ["ERROR", "none"])
def test_a_grpc_verbosity_that_hides_the_lines_is_named_at_start(verbosity: str) -> None:
    done = run("stop", {"GRPC_VERBOSITY": verbosity})
    assert done.returncode == 0, done.stderr
    [warning] = [r for r in records(done.stderr) if "GRPC_VERBOSITY" in r["message"]]
    assert warning["message"].startswith(f"GRPC_VERBOSITY={verbosity.upper()}: ")
