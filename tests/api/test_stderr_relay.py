"""The stderr relay: every byte copied as written, each failed handshake reported once.

The lines are gRPC core's own, as grpcio 1.85 writes them (the TLS server tests in
`test_auth.py` check a real server still writes them so)."""

from __future__ import annotations

import os
import threading

import pytest

from signer.api.stderr_relay import MAX_DETAIL, classify, relay
from signer.metrics import TLS_HANDSHAKE_FAILURE_REASONS

PREFIX = b"I1203 14:12:34.546151   27033 ssl_transport_security.cc:2563] "
LINES = {
    b"Handshake failed with error SSL_ERROR_SSL: error:100000c0:SSL routines:OPENSSL_internal:"
    b"PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate verification context": (
        "no_certificate",
        "PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate verification context",
    ),
    b"Handshake failed with error SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
    b"CERTIFICATE_VERIFY_FAILED: certificate has expired": (
        "certificate_verify_failed",
        "CERTIFICATE_VERIFY_FAILED: certificate has expired",
    ),
    b"Handshake failed with error SSL_ERROR_SSL: error:100000f7:SSL routines:OPENSSL_internal:"
    b"WRONG_VERSION_NUMBER: Invalid certificate verification context": (
        "not_tls",
        "WRONG_VERSION_NUMBER: Invalid certificate verification context",
    ),
    b"Handshake failed with error SSL_ERROR_SSL: error:1000009c:SSL routines:OPENSSL_internal:"
    b"HTTP_REQUEST: Invalid certificate verification context": (
        "not_tls",
        "HTTP_REQUEST: Invalid certificate verification context",
    ),
    b"Handshake failed with error SSL_ERROR_SSL: error:10000410:SSL routines:OPENSSL_internal:"
    b"SSLV3_ALERT_HANDSHAKE_FAILURE": ("other", "SSLV3_ALERT_HANDSHAKE_FAILURE"),
    b"Handshake failed with error SSL_ERROR_SYSCALL": ("other", "SSL_ERROR_SYSCALL"),
}


@pytest.mark.parametrize("message", list(LINES))
def test_grpc_cores_handshake_lines_are_classified(message: bytes) -> None:
    assert classify(PREFIX + message) == LINES[message]
    assert classify(PREFIX + message + b"\r") == LINES[message]


def test_every_reason_is_a_label_the_metric_declares() -> None:
    assert {reason for reason, _ in LINES.values()} == set(TLS_HANDSHAKE_FAILURE_REASONS)


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"Handshake failed with error SSL_ERROR_SSL",  # not gRPC core's line
        b'{"level": "WARNING", "message": "Handshake failed with error SSL_ERROR_SSL"}',
        PREFIX + b"Security handshake failed: Cancelled",
        PREFIX.replace(b"I1203", b"X1203") + b"Handshake failed with error SSL_ERROR_SSL",
        b"\xff\xfe" * 100,
    ],
)
def test_other_lines_are_not_handshake_failures(line: bytes) -> None:
    assert classify(line) is None


def test_details_are_short_printable_and_tab_free() -> None:
    found = classify(
        PREFIX + b"Handshake failed with error SSL_ERROR_SSL: OPENSSL_internal:X: "
        b"a\tb\x1b[31m\xff" + b"z" * 1000
    )
    assert found is not None
    reason, detail = found
    assert reason == "other" and "\t" not in detail and "\x1b" not in detail
    assert detail.startswith("X: a b") and "\\xff" in detail
    assert len(detail) == MAX_DETAIL + 3


def run_relay(chunks: list[bytes]) -> tuple[bytes, list[str]]:
    """Feed ``chunks`` through a pipe to `relay`; what reached the sink, and the events."""
    source_r, source_w = os.pipe()
    sink_r, sink_w = os.pipe()
    events_r, events_w = os.pipe()
    os.set_blocking(events_w, False)
    copied: list[bytes] = []
    drain = threading.Thread(target=lambda: copied.append(_read_all(sink_r)))
    drain.start()
    feeder = threading.Thread(target=_feed, args=(source_w, chunks))
    feeder.start()
    relay(source_r, sink_w, events_w)
    for fd in (sink_w, events_w, source_r):
        os.close(fd)
    feeder.join()
    drain.join()
    events = _read_all(events_r).decode().splitlines()
    os.close(sink_r)
    os.close(events_r)
    return copied[0], events


def _feed(fd: int, chunks: list[bytes]) -> None:
    for chunk in chunks:
        os.write(fd, chunk)
    os.close(fd)


def _read_all(fd: int) -> bytes:
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    return out


def test_every_byte_is_copied_and_each_failure_reported_once() -> None:
    expired = PREFIX + list(LINES)[1]
    plaintext = PREFIX + list(LINES)[2]
    stream = [
        b"not utf-8 \xff\xfe\n",
        expired[:40],  # a line split across writes
        expired[40:] + b"\n" + b"x" * 200_000,  # then a long line without an end
        b"\n" + plaintext + b"\n",
        b"a last line with no newline",
    ]
    copied, events = run_relay(stream)
    assert copied == b"".join(stream)
    assert events == [
        "certificate_verify_failed\tCERTIFICATE_VERIFY_FAILED: certificate has expired",
        "not_tls\tWRONG_VERSION_NUMBER: Invalid certificate verification context",
    ]


def test_copying_goes_on_when_the_server_stops_reading_events() -> None:
    source_r, source_w = os.pipe()
    sink_r, sink_w = os.pipe()
    events_r, events_w = os.pipe()
    os.close(events_r)  # the server is gone
    line = PREFIX + next(iter(LINES)) + b"\n"
    os.write(source_w, line + b"after\n")
    os.close(source_w)
    relay(source_r, sink_w, events_w)
    os.close(sink_w)
    assert _read_all(sink_r) == line + b"after\n"
    for fd in (source_r, sink_r, events_w):
        os.close(fd)


def test_a_server_slow_to_read_events_never_stalls_the_copy() -> None:
    """The events pipe full: copying goes on, the events that did not fit are dropped,
    and their number is sent once there is room again."""
    source_r, source_w = os.pipe()
    sink_r, sink_w = os.pipe()
    events_r, events_w = os.pipe()
    os.set_blocking(events_w, False)
    filler = 0
    for size in (4096, 1):  # to the last byte
        try:
            while True:
                filler += os.write(events_w, b"#" * size)
        except BlockingIOError:
            pass
    failure = PREFIX + list(LINES)[1] + b"\n"
    done = threading.Thread(target=relay, args=(source_r, sink_w, events_w))
    done.start()
    os.write(source_w, failure * 2)
    copied = b""
    while len(copied) < len(failure) * 2:  # copied although nothing could be reported
        copied += os.read(sink_r, 65536)
    os.write(source_w, b"sync\n")  # copied only once the relay tried to report those two
    while not copied.endswith(b"sync\n"):
        copied += os.read(sink_r, 65536)
    while filler:  # the server catches up
        filler -= len(os.read(events_r, filler))
    os.write(source_w, failure)
    os.close(source_w)
    done.join(10)
    os.close(sink_w)
    copied += _read_all(sink_r)
    os.close(events_w)
    assert copied == failure * 2 + b"sync\n" + failure
    assert _read_all(events_r).decode().splitlines() == [
        "lost\t2",
        "certificate_verify_failed\tCERTIFICATE_VERIFY_FAILED: certificate has expired",
    ]
    for fd in (source_r, sink_r, events_r):
        os.close(fd)
