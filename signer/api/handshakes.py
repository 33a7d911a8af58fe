"""Failed TLS handshakes, counted and logged although gRPC core never tells Python of them.

`HandshakeWatch.start` makes a pipe the process's file descriptor 2 and runs
`signer.api.stderr_relay` on its far end: everything gRPC core (or any C library) writes
there still reaches the real stderr, and each failed handshake comes back as an event,
counted in ``signer_tls_handshake_failures_total{reason}`` and logged. Python's own writes
(sys.stderr, the log handler) go straight to the real stderr, so nothing in this process
ever waits on the relay. If the relay dies, file descriptor 2 is the real stderr again and
one error line says the count stopped.

The log line carries no client identity: a refused handshake established none, and gRPC
core does not name the peer's address.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

from signer.api.stderr_relay import LOST
from signer.metrics import TLS_HANDSHAKE_FAILURE_REASONS, TLS_HANDSHAKE_FAILURES

log = logging.getLogger(__name__)

#: values of GRPC_VERBOSITY under which gRPC core no longer logs failed handshakes (INFO)
QUIET = ("WARNING", "ERROR", "NONE")
#: how long `stop` lets the relay copy what is left in the pipe
DRAIN = 2.0


class HandshakeWatch:
    def __init__(self, relay: subprocess.Popen[bytes], real_stderr: int) -> None:
        self._relay = relay
        self._real_stderr = real_stderr
        self._stopping = threading.Event()
        self._reader = threading.Thread(target=self._read, name="tls-handshakes", daemon=True)

    @classmethod
    def start(cls) -> HandshakeWatch | None:
        """Put the relay between gRPC core and stderr; None (and one line why) if it
        cannot start: the service then runs as before, with the failures uncounted."""
        verbosity = os.environ.get("GRPC_VERBOSITY", "").strip().upper()
        if verbosity in QUIET:
            log.warning(
                "GRPC_VERBOSITY=%s: gRPC core logs failed TLS handshakes at INFO, so "
                "signer_tls_handshake_failures_total will not count them",
                verbosity,
            )
        try:
            real = os.dup(2)
        except OSError as exc:  # no stderr at all: nothing to relay, nothing to count
            log.error("stderr is not open (%s): failed TLS handshakes are not counted", exc)
            return None
        read_end, write_end = os.pipe()
        try:
            relay = subprocess.Popen(  # this interpreter, a fixed module, not from the cwd
                [sys.executable, "-P", "-m", "signer.api.stderr_relay"],
                stdin=read_end,
                stdout=subprocess.PIPE,
                stderr=real,
                start_new_session=True,  # out of the terminal's process group: no Ctrl-C
            )
        except OSError as exc:
            for fd in (read_end, write_end, real):
                os.close(fd)
            log.error(
                "cannot start the stderr relay (%s): failed TLS handshakes will not be "
                "counted in signer_tls_handshake_failures_total",
                exc.strerror,
            )
            return None
        os.close(read_end)
        _python_writes_to(real)
        os.dup2(write_end, 2)
        os.close(write_end)
        watch = cls(relay, real)
        watch._reader.start()
        return watch

    def _read(self) -> None:
        assert self._relay.stdout is not None
        quiet = _Throttle()
        for line in self._relay.stdout:
            reason, _, detail = line.decode("ascii", "replace").rstrip("\n").partition("\t")
            if reason == LOST:
                log.warning("%s failed TLS handshake(s) went uncounted (a burst)", detail)
                continue
            if reason not in TLS_HANDSHAKE_FAILURE_REASONS:
                reason = "other"
            TLS_HANDSHAKE_FAILURES.labels(reason=reason).inc()
            skipped = quiet.skipped(f"{reason}\t{detail}")
            if skipped is not None:  # a line per kind per second: clients cause these
                log.warning(
                    "TLS handshake refused (%s): %s; the client never reached a call%s",
                    reason,
                    detail,
                    f" ({skipped} more since the last such line)" if skipped else "",
                )
        if not self._stopping.is_set():
            os.dup2(self._real_stderr, 2)
            log.error(
                "the stderr relay exited (code %s): gRPC core writes to stderr directly "
                "again, and failed TLS handshakes are no longer counted",
                self._relay.wait(),
            )

    def stop(self) -> None:
        """Give file descriptor 2 back to the real stderr; the relay copies what is left
        in the pipe and ends (the pipe's last writer is gone)."""
        self._stopping.set()
        os.dup2(self._real_stderr, 2)
        try:
            self._relay.wait(DRAIN)
        except subprocess.TimeoutExpired:
            self._relay.kill()
            self._relay.wait()
        self._reader.join(DRAIN)


class _Throttle:
    """At most one log line per kind (OpenSSL's reason, a bounded set) per `INTERVAL`; how
    many were left out before it."""

    INTERVAL = 1.0

    def __init__(self) -> None:
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def skipped(self, kind: str) -> int | None:
        """None: leave this one out; else log it, saying how many were left out."""
        now = time.monotonic()
        if now - self._last.get(kind, -self.INTERVAL) < self.INTERVAL:
            self._count[kind] = self._count.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._count.pop(kind, 0)


def _python_writes_to(fd: int) -> None:
    """sys.stderr and the log handlers on it write to ``fd`` (the real stderr) from now on."""
    old = sys.stderr
    encoding = getattr(old, "encoding", None) or "utf-8"
    new = open(  # as long-lived as sys.stderr
        fd, "w", buffering=1, encoding=encoding, errors="backslashreplace", closefd=False
    )
    old.flush()
    sys.stderr = new
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is old:
            handler.setStream(new)
