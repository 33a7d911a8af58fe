"""The gRPC server metrics, with go-grpc-prometheus semantics, counted around every call.

`MetricsInterceptor` sits inside the call-context interceptor and outside the policy check,
so refused calls are counted with the code their client saw. The metrics themselves are
defined in `signer.metrics`; what is read at scrape time is in `metrics_collector`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc

from signer.api._proto.signer.v1 import signer_pb2
from signer.api.handlers import (
    Behavior,
    Continuation,
    Handler,
    Rpc,
    ServerInterceptor,
    Wrapped,
    final_code,
    wrap,
)
from signer.metrics import (
    GRPC_HANDLED,
    GRPC_HANDLING_SECONDS,
    GRPC_MSG_RECEIVED,
    GRPC_MSG_SENT,
    GRPC_STARTED,
)


def go_code_name(python_name: str) -> str:
    """``INVALID_ARGUMENT`` -> ``InvalidArgument``: the grpc_code value Go servers emit."""
    if python_name == "CANCELLED":
        return "Canceled"
    if python_name == "OK":
        return "OK"
    return "".join(part.capitalize() for part in python_name.split("_"))


GO_CODES = {code: go_code_name(code.name) for code in grpc.StatusCode}


def _kind(method: Any) -> str:
    """grpc_type of a method descriptor, as go-grpc-prometheus names it."""
    if method.client_streaming:
        return "bidi_stream" if method.server_streaming else "client_stream"
    return "server_stream" if method.server_streaming else "unary"


class _Series:
    """The label children of one method, bound once instead of looked up on every call."""

    def __init__(self, rpc: Rpc) -> None:
        labels = (rpc.grpc_type, rpc.service, rpc.method)
        self.started = GRPC_STARTED.labels(*labels)
        self.seconds = GRPC_HANDLING_SECONDS.labels(*labels)
        self.received = GRPC_MSG_RECEIVED.labels(*labels)
        self.sent = GRPC_MSG_SENT.labels(*labels)
        self.handled = {
            code: GRPC_HANDLED.labels(*labels, GO_CODES[code]) for code in grpc.StatusCode
        }


class MetricsInterceptor(ServerInterceptor):
    """started on entry; handled with the final code and handling_seconds on exit.

    Every method of ``signer.v1.FirmwareSigner`` is registered at zero with every code, as
    go-grpc-prometheus's InitializeMetrics does: a counter that appears at 1 shows no
    increase, so without this the first error after a restart would escape the alerts.
    Other services (health, reflection) get their series on their first call.
    """

    def __init__(self) -> None:
        self._series: dict[Rpc, _Series] = {}
        self._wrapped = Wrapped()
        for service in signer_pb2.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                rpc = Rpc(f"/{service.full_name}/{m.name}", _kind(m))
                self._series[rpc] = _Series(rpc)

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        return self._wrapped.get(handler, details, lambda: wrap(handler, details, self._around))

    def _series_of(self, rpc: Rpc) -> _Series:
        # only methods with a handler get here, so the set of series is bounded
        series = self._series.get(rpc)
        if series is None:
            series = self._series.setdefault(rpc, _Series(rpc))
        return series

    def _around(self, rpc: Rpc, behavior: Behavior) -> Behavior:
        s = self._series_of(rpc)
        client_streams = rpc.grpc_type in ("client_stream", "bidi_stream")
        if rpc.streams_responses:

            def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                request, start = _begin(s, request, client_streams)
                error: BaseException | None = None
                try:
                    for item in behavior(request, context):
                        s.sent.inc()
                        yield item
                except BaseException as exc:  # GeneratorExit too: the client went away
                    error = exc
                    raise
                finally:
                    _end(s, context, start, error)

            return streaming

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            request, start = _begin(s, request, client_streams)
            error: BaseException | None = None
            try:
                response = behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                code = _end(s, context, start, error)
            if code == grpc.StatusCode.OK:
                s.sent.inc()
            return response

        return unary


def _begin(s: _Series, request: Any, client_streams: bool) -> tuple[Any, float]:
    """Count the start (and the request message, or wrap the request stream to count them)."""
    s.started.inc()
    if client_streams:
        request = _Counted(request, s.received)
    else:
        s.received.inc()
    return request, time.perf_counter()


def _end(
    s: _Series, context: grpc.ServicerContext, start: float, error: BaseException | None
) -> grpc.StatusCode:
    code = final_code(context, error)
    s.handled[code].inc()
    s.seconds.observe(time.perf_counter() - start)
    return code


class _Counted:
    """A request stream that counts the messages the handler reads from it."""

    def __init__(self, inner: Iterator[Any], counter: Any) -> None:
        self._inner = inner
        self._counter = counter

    def __iter__(self) -> _Counted:
        return self

    def __next__(self) -> Any:
        item = next(self._inner)
        self._counter.inc()
        return item

    next = __next__  # grpc's own request iterator has it too
