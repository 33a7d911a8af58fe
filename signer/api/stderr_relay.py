"""The process between gRPC core and stderr, which sees the failed TLS handshakes.

gRPC core tells Python nothing about a handshake it refused; it writes one line per failure
to file descriptor 2, at INFO (printed unless ``GRPC_VERBOSITY`` is raised), for example::

    I1203 14:12:34.546151   27033 ssl_transport_security.cc:2563] Handshake failed with
    error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:
    CERTIFICATE_VERIFY_FAILED: certificate has expired

`signer serve` with TLS makes a pipe its file descriptor 2 and runs this program on the
other end (`signer.api.handshakes`). It copies every byte to the real stderr before looking
at it, then reports each failed handshake on its stdout as ``reason<TAB>detail`` (never
waiting for the server to read them: one it cannot take is dropped, and counted). It is a
process of its own so that what the server writes just before it dies (a gRPC core FATAL
line before abort) is still copied: the pipe outlives the writer. Standard library only, so
it starts in milliseconds.
"""

from __future__ import annotations

import os
import re
import signal
import sys

#: the OpenSSL reason codes a client causes, as `signer_tls_handshake_failures_total` names them
REASONS = {
    b"PEER_DID_NOT_RETURN_A_CERTIFICATE": "no_certificate",
    b"CERTIFICATE_VERIFY_FAILED": "certificate_verify_failed",  # untrusted, expired, ...
    b"WRONG_VERSION_NUMBER": "not_tls",  # plaintext gRPC to the TLS port
    b"HTTP_REQUEST": "not_tls",
    b"HTTPS_PROXY_REQUEST": "not_tls",
}
OTHER = "other"
#: gRPC core's line: severity, date, time, thread, source, then the message
HANDSHAKE_FAILED = re.compile(
    rb"^[IWEF]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] Handshake failed with error (\w+)(?:: (.*))?$"
)
OPENSSL_REASON = re.compile(rb"OPENSSL_internal:([A-Z0-9_]+)(?:: (.*))?$")
#: longer lines are not gRPC core's: dropped from the search (still copied whole)
MAX_LINE = 16 * 1024
MAX_DETAIL = 200


def classify(line: bytes) -> tuple[str, str] | None:
    """(reason, detail) if ``line`` is gRPC core reporting a failed TLS handshake."""
    found = HANDSHAKE_FAILED.match(line.rstrip(b"\r"))
    if found is None:
        return None
    error, rest = found.group(1), found.group(2) or b""
    code = OPENSSL_REASON.search(rest)
    if code is None:
        return OTHER, _text(error + b" " + rest)
    detail = code.group(1) + (b": " + code.group(2) if code.group(2) else b"")
    return REASONS.get(code.group(1), OTHER), _text(detail)


def _text(raw: bytes) -> str:
    """One tab- and newline-free printable line, short: it becomes a log field."""
    text = raw.decode("ascii", "backslashreplace").strip()
    text = "".join(c if c.isprintable() and c != "\t" else " " for c in text)
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL] + "..."


#: the event a relay sends when it had to drop some (the server read too slowly)
LOST = "lost"


def relay(source: int, sink: int, events: int) -> None:
    """Copy ``source`` to ``sink`` until end of file, reporting failed handshakes on the
    ``events`` descriptor, which must be non-blocking: copying never waits for the server
    to read its events (gRPC core would block writing to a full pipe). Events that do not
    fit are dropped and their number sent once there is room."""
    pending = b""
    lost = 0
    while chunk := os.read(source, 65536):
        _write_all(sink, chunk)  # first: a line is never held back for the search
        pending += chunk
        *lines, pending = pending.split(b"\n")
        if len(pending) > MAX_LINE:
            pending = b""
        for found in filter(None, map(classify, lines)):
            if lost and _send(events, f"{LOST}\t{lost}\n"):
                lost = 0
            if not _send(events, f"{found[0]}\t{found[1]}\n"):
                lost += 1


def _send(fd: int, line: str) -> bool:
    """One event line, whole or not at all (shorter than PIPE_BUF: pipe writes are atomic)."""
    try:
        os.write(fd, line.encode())
    except BlockingIOError:
        return False
    except OSError:  # the server is gone: keep copying what it left in the pipe
        return True
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError:  # stderr closed: nothing to copy to, still reporting
            return


def main() -> None:
    # the server decides when this ends (by closing the pipe); a terminal's Ctrl-C or a
    # signal to the process group must not cut its last lines
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    events = sys.stdout.fileno()
    os.set_blocking(events, False)
    relay(sys.stdin.fileno(), sys.stderr.fileno(), events)


if __name__ == "__main__":
    main()
