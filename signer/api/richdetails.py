"""The standard rich error model on the wire: a `google.rpc.Status` in the
``grpc-status-details-bin`` trailer (grpcio-status), written by the server and read by
clients.

The Status has the call's own code and message, and as details:

* `google.rpc.ErrorInfo` always: ``reason`` an UPPER_SNAKE code (`signer.api.status`),
  ``domain`` `DOMAIN`, ``metadata`` what the reason is about (field, offset, device, ...);
* `google.rpc.BadRequest` for INVALID_ARGUMENT: the request field at fault and why, with
  the byte offset inside it where known;
* `google.rpc.PreconditionFailure` for FAILED_PRECONDITION: one violation per refused
  device (``type`` its reason code, ``subject`` the device ID), or one for the refusal.

The trailer travels in gRPC metadata, which clients cap at 8 KiB (grpc-core rejects more,
at random, as RESOURCE_EXHAUSTED; measured): `trailer` cuts the details to
`TRAILER_BUDGET`, dropping violations from the end (ErrorInfo says how many,
``violations_omitted``). `read_details` reads them back from a failed call.

Light on purpose (grpc, protobuf, grpcio-status; nothing of the service), so a client may
import it inside a command; `signer.api.richstatus` decides what each error says.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

DOMAIN = "signer.v1"
DETAILS_KEY = "grpc-status-details-bin"
#: bytes the message (sent twice: grpc-message and inside the Status) and the details may
#: take together, leaving room under the clients' 8 KiB for the other trailers
TRAILER_BUDGET = 7000
#: the most a status message may take on the wire (`wire_size`), so that details fit too
MAX_MESSAGE_BYTES = 2000


def wire_size(message: str) -> int:
    """Bytes ``message`` takes in ``grpc-message``: gRPC percent-encodes every UTF-8 byte
    outside printable ASCII, and "%", so an "é" costs 6 bytes, not 1."""
    return sum(1 if 0x20 <= b <= 0x7E and b != 0x25 else 3 for b in message.encode())


def fit_message(message: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    """``message`` cut (with " ...") to take at most ``limit`` bytes on the wire."""
    if wire_size(message) <= limit:
        return message
    room, kept = limit - len(" ..."), 0
    for i, char in enumerate(message):
        room -= wire_size(char)
        if room < 0:
            kept = i
            break
    return message[:kept] + " ..."


@dataclass(frozen=True)
class FieldViolation:
    """A request field at fault (`google.rpc.BadRequest.FieldViolation`)."""

    field: str
    description: str
    reason: str = ""


@dataclass(frozen=True)
class Violation:
    """One failed precondition (`google.rpc.PreconditionFailure.Violation`)."""

    type: str
    subject: str
    description: str


@dataclass(frozen=True)
class Details:
    """What an error status says beyond its code and message."""

    reason: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    violations: tuple[Violation, ...] = ()
    domain: str = DOMAIN


def status_message(code: grpc.StatusCode, message: str, details: Details) -> status_pb2.Status:
    """The `google.rpc.Status` of ``details``, all of them (see `trailer` for the budget)."""
    info = error_details_pb2.ErrorInfo(
        reason=details.reason, domain=details.domain, metadata=dict(details.metadata)
    )
    packed = [_packed(info)]
    if details.field_violations:
        bad = error_details_pb2.BadRequest()
        for f in details.field_violations:
            bad.field_violations.add(field=f.field, description=f.description, reason=f.reason)
        packed.append(_packed(bad))
    if details.violations:
        failure = error_details_pb2.PreconditionFailure()
        for v in details.violations:
            failure.violations.add(type=v.type, subject=v.subject, description=v.description)
        packed.append(_packed(failure))
    return status_pb2.Status(code=code.value[0], message=message, details=packed)


def _packed(message: Message) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(message)
    return out


def trailer(code: grpc.StatusCode, message: str, details: Details) -> tuple[tuple[str, bytes], ...]:
    """The ``grpc-status-details-bin`` trailer for a call ended with ``code`` and
    ``message`` (exactly as given to ``abort``), within `TRAILER_BUDGET`; empty if even the
    bare reason does not fit beside the message."""
    room = TRAILER_BUDGET - wire_size(message)
    for kept in _shrinking(details):
        status = status_message(code, message, kept)
        if status.ByteSize() <= room:
            return tuple(
                (key, value.encode() if isinstance(value, str) else value)
                for key, value in rpc_status.to_status(status).trailing_metadata
            )
    return ()


def _shrinking(details: Details) -> Iterator[Details]:
    """``details``, then with one violation fewer at a time, then the bare reason."""
    yield details
    omitted = int(details.metadata.get("violations_omitted", "0"))
    violations = details.violations
    for n in range(len(violations) - 1, -1, -1):
        left = {**details.metadata, "violations_omitted": str(omitted + len(violations) - n)}
        yield replace(details, metadata=left, violations=violations[:n])
    if details.field_violations:
        yield replace(details, violations=(), field_violations=())
    yield Details(details.reason, domain=details.domain)


def read_details(error: grpc.RpcError) -> Details | None:
    """The rich details of a failed call, or None when it carries none (or ones that do
    not match its code and message)."""
    if not isinstance(error, grpc.Call):
        return None
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return None
    if status is None:
        return None
    details: Details | None = None
    fields: tuple[FieldViolation, ...] = ()
    violations: tuple[Violation, ...] = ()
    for item in status.details:
        if item.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            item.Unpack(info)
            details = Details(info.reason, dict(info.metadata), domain=info.domain)
        elif item.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            item.Unpack(bad)
            fields += tuple(
                FieldViolation(f.field, f.description, f.reason) for f in bad.field_violations
            )
        elif item.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            item.Unpack(failure)
            violations += tuple(
                Violation(v.type, v.subject, v.description) for v in failure.violations
            )
    if details is None:
        return None
    return replace(details, field_violations=fields, violations=violations)
