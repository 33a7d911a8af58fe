"""What a FirmwareSigner client is told when a call fails, and every refusal it is told of.

Innermost interceptor, on the FirmwareSigner methods only (health and reflection keep
grpc's own handling): a `SignerError` becomes its status through `status.status_for`, with
the rich error details (`richstatus`: a `google.rpc.Status` in ``grpc-status-details-bin``)
and, for one more release, an `InvalidInput`'s field and offset as ``signer-field`` and
``signer-offset`` trailing metadata; any other exception is a bug, INTERNAL and logged with
its traceback, its text never sent. ``signer_refusals_total``
counts here and only here: devices and pre-commands refused inside a response, each device
of a call refused whole (`DevicesRefused`), a CS06 pre-command refused (`PreCommandRefused`).
Request bytes that do not decode (`decoding`) are INVALID_ARGUMENT here too; in a request
stream the call ends at the undecodable message, after the results already sent. Being
innermost, it also sets the response serializer that sends a response the servicer put into
wire form itself (`wire.Encoded`: Resign and BuildDUIS, whose megabytes are copied once).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf.descriptor import Descriptor

from signer.api import wire
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.decoding import Undecodable, UndecodableRequest, tolerant
from signer.api.handlers import (
    Behavior,
    Continuation,
    Handler,
    Rpc,
    ServerInterceptor,
    Wrapped,
    wrap,
)
from signer.api.richdetails import Details, fit_message, trailer
from signer.api.richstatus import error_details
from signer.api.status import INTERNAL, refusal_reason, status_for
from signer.errors import DevicesRefused, InvalidInput, SignerError
from signer.metrics import REFUSALS
from signer.service.precommands import PreCommandRefused

log = logging.getLogger("signer.api.servicer")  # the name these lines have always logged under
_SERVICE = pb.DESCRIPTOR.services_by_name["FirmwareSigner"]
#: the refusal messages of the API, and the field of each that holds its reason code
_REASON_FIELD = {
    pb.DeviceRefusal.DESCRIPTOR.full_name: "reason",
    pb.PreCommandRefusal.DESCRIPTOR.full_name: "code",
}


def count_refusals(reasons: list[str]) -> None:
    """One increment per reason code, not per device: 50,000 refusals cost a few calls."""
    tally: dict[str, int] = {}
    for r in reasons:
        label = refusal_reason(r)
        tally[label] = tally.get(label, 0) + 1
    for label, n in tally.items():
        REFUSALS.labels(reason=label).inc(n)


@dataclass(frozen=True)
class RefusalField:
    """Where a response carries refusals: ``refused[]``, or ``results[].refused`` (a oneof)."""

    repeated: str
    inner: str | None
    reason: str

    def reasons(self, message: Any) -> list[str]:
        items = getattr(message, self.repeated)
        if self.inner is None:
            return [getattr(r, self.reason) for r in items]
        inner = self.inner
        return [getattr(getattr(i, inner), self.reason) for i in items if i.HasField(inner)]


def refusal_fields(response: Descriptor) -> tuple[RefusalField, ...]:
    """Read from the proto, so a new RPC that returns refusals is counted with nothing to add."""
    found = []
    for f in response.fields:
        if f.message_type is None or not f.is_repeated:
            continue
        reason = _REASON_FIELD.get(f.message_type.full_name)
        if reason is not None:
            found.append(RefusalField(f.name, None, reason))
            continue
        for g in f.message_type.fields:
            if g.message_type is not None and not g.is_repeated:
                reason = _REASON_FIELD.get(g.message_type.full_name)
                if reason is not None:
                    found.append(RefusalField(f.name, g.name, reason))
    return tuple(found)


def error_reasons(error: SignerError) -> list[str]:
    """The reason codes of a call refused whole."""
    if isinstance(error, DevicesRefused):
        return [reason for _device, reason, _detail in error.refusals]
    if isinstance(error, PreCommandRefused):
        return [error.code]
    return []


class OutcomeInterceptor(ServerInterceptor):
    """Map errors and count refusals once for every FirmwareSigner handler, unary or not."""

    def __init__(self) -> None:
        self._fields = {
            f"/{_SERVICE.full_name}/{m.name}": refusal_fields(m.output_type)
            for m in _SERVICE.methods
        }
        self._inputs = {f"/{_SERVICE.full_name}/{m.name}": m.input_type for m in _SERVICE.methods}
        self._wrapped = Wrapped()

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if details.method not in self._fields or handler is None:
            return handler

        def make() -> Handler | None:
            assert handler is not None
            decode = tolerant(handler.request_deserializer, self._inputs[details.method])
            encode = wire.serializer(handler.response_serializer)
            return wrap(handler, details, self._around, decode, encode)

        return self._wrapped.get(handler, details, make)

    def _around(self, rpc: Rpc, behavior: Behavior) -> Behavior:
        fields = self._fields[rpc.full_method]
        client_streams = rpc.grpc_type in ("client_stream", "bidi_stream")
        if rpc.streams_responses:

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                requests = _Decoded(request) if client_streams else None
                try:
                    _refuse_undecodable(request)
                    items = behavior(requests if requests is not None else request, context)
                    try:
                        for message in items:
                            _count(wire.inspectable(message), fields)
                            yield message
                    finally:
                        items.close()  # at once, as `yield from` would: the client went away
                    _refuse_undecodable(requests)
                except SignerError as exc:
                    _abort(context, _fault_of(requests) or exc, rpc.method)
                except Exception:
                    _internal(context, rpc.method, _fault_of(requests))

            return streaming

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            requests = _Decoded(request) if client_streams else None
            try:
                _refuse_undecodable(request)
                response = behavior(requests if requests is not None else request, context)
                _refuse_undecodable(requests)
                _count(wire.inspectable(response), fields)
                return response
            except SignerError as exc:
                _abort(context, _fault_of(requests) or exc, rpc.method)
            except Exception:
                _internal(context, rpc.method, _fault_of(requests))

        return unary


class _Decoded:
    """A request stream that ends in `UndecodableRequest` at its first undecodable message,
    and remembers it: a handler that swallowed the error does not turn it into success."""

    def __init__(self, inner: Iterator[Any]) -> None:
        self._inner = inner
        self._index = 0
        self.fault: UndecodableRequest | None = None

    def __iter__(self) -> _Decoded:
        return self

    def __next__(self) -> Any:
        if self.fault is not None:
            raise self.fault
        item = next(self._inner)
        index, self._index = self._index, self._index + 1
        if isinstance(item, Undecodable):
            self.fault = item.error(index)
            raise self.fault
        return item

    next = __next__  # grpc's own request iterator has it too


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, Undecodable):
        raise request.error()
    if isinstance(request, _Decoded) and request.fault is not None:
        raise request.fault


def _fault_of(requests: _Decoded | None) -> UndecodableRequest | None:
    return requests.fault if requests is not None else None


def _count(message: Any, fields: tuple[RefusalField, ...]) -> None:
    for f in fields:
        count_refusals(f.reasons(message))


def _internal(
    context: grpc.ServicerContext, method: str, fault: UndecodableRequest | None = None
) -> NoReturn:
    """A bug: the traceback goes to the log, never to the client; unless the request stream
    had an undecodable message, which is then what the handler failed on and what the client
    is told."""
    if fault is not None:
        _abort(context, fault, method)
    log.exception("%s failed unexpectedly", method)
    message = "internal error; see the server log"
    context.set_trailing_metadata(trailer(INTERNAL.code, message, Details(INTERNAL.reason)))
    context.abort(INTERNAL.code, message)


def _abort(context: grpc.ServicerContext, exc: SignerError, method: str) -> NoReturn:
    remaining = context.time_remaining()
    deadline_passed = remaining is not None and remaining <= 0
    code = status_for(exc, deadline_passed=deadline_passed)
    count_refusals(error_reasons(exc))
    meta: list[tuple[str, str | bytes]] = []
    if isinstance(exc, InvalidInput):  # superseded by the rich details; kept for one release
        meta.append(("signer-field", exc.field or ""))
        if exc.offset is not None:
            meta.append(("signer-offset", str(exc.offset)))
    message = fit_message(str(exc))  # status details travel in a size-limited trailer
    subject = f"{_SERVICE.full_name}/{method}"
    details = error_details(exc, subject=subject, deadline_passed=deadline_passed)
    meta.extend(trailer(code, message, details))
    context.set_trailing_metadata(tuple(meta))
    log.info("%s refused: %s %s", method, code.name, message)
    context.abort(code, message)
