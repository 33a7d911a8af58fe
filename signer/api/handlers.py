"""Wrapping gRPC method handlers: the one mechanism every server interceptor here uses.

A server interceptor only sees the method name and metadata; the peer's certificate, the
status code and the response stream live in the handler's behaviour. So each interceptor
rebuilds the handler with its behaviour wrapped by an `Around`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc


@dataclass(frozen=True)
class Rpc:
    """One RPC as metrics and policy name it: ``/signer.v1.FirmwareSigner/Resign``."""

    full_method: str
    grpc_type: str  # unary, client_stream, server_stream, bidi_stream

    @property
    def service(self) -> str:
        return self.full_method.lstrip("/").rsplit("/", 1)[0]

    @property
    def method(self) -> str:
        return self.full_method.rsplit("/", 1)[-1]

    @property
    def streams_responses(self) -> bool:
        return self.grpc_type in ("server_stream", "bidi_stream")


# the type stubs make these generic; the runtime classes are not subscriptable
if TYPE_CHECKING:
    Handler: TypeAlias = grpc.RpcMethodHandler[Any, Any]
    ServerInterceptor: TypeAlias = grpc.ServerInterceptor[Any, Any]
else:
    Handler = grpc.RpcMethodHandler
    ServerInterceptor = grpc.ServerInterceptor
Continuation = Callable[[grpc.HandlerCallDetails], "Handler | None"]
Behavior = Callable[[Any, grpc.ServicerContext], Any]
#: (rpc, behaviour) -> wrapped behaviour; for streaming responses both return iterators
Around = Callable[[Rpc, Behavior], Behavior]


def wrap(
    handler: Handler | None,
    details: grpc.HandlerCallDetails,
    around: Around,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> Handler | None:
    """``handler`` with its behaviour wrapped by ``around`` (and its request deserializer
    and response serializer replaced by those given)."""
    if handler is None:
        return None
    method = details.method
    deserializer = request_deserializer or handler.request_deserializer
    serializer = response_serializer or handler.response_serializer
    for kind, attr, factory in (
        ("unary", "unary_unary", grpc.unary_unary_rpc_method_handler),
        ("server_stream", "unary_stream", grpc.unary_stream_rpc_method_handler),
        ("client_stream", "stream_unary", grpc.stream_unary_rpc_method_handler),
        ("bidi_stream", "stream_stream", grpc.stream_stream_rpc_method_handler),
    ):
        behavior = getattr(handler, attr)
        if behavior is not None:
            return factory(
                around(Rpc(method, kind), behavior),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
    return handler


class Wrapped:
    """Each interceptor's wrapped handlers, made once per method instead of once per call.

    gRPC asks every interceptor for a handler on every call; the wrapping depends only on
    the method and the inner handler (which the servicer's registry returns unchanged), so
    it is kept. Bounded: past `LIMIT` pairs (an inner handler that changes per call) it
    wraps afresh instead of remembering more.
    """

    LIMIT = 512

    def __init__(self) -> None:
        self._made: dict[tuple[str, Handler], Handler] = {}
        self._lock = threading.Lock()

    def get(
        self,
        handler: Handler | None,
        details: grpc.HandlerCallDetails,
        make: Callable[[], Handler | None],
    ) -> Handler | None:
        if handler is None:
            return None
        key = (details.method, handler)
        found = self._made.get(key)
        if found is not None:
            return found
        made = make()
        if made is not None and len(self._made) < self.LIMIT:
            with self._lock:
                made = self._made.setdefault(key, made)
        return made


def status_of(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The status the client will see, once the behaviour has returned or raised."""
    code = context.code()  # type: ignore[attr-defined]
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


def final_code(context: grpc.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    """The code the client saw. A client that went away ended the call, whatever the handler
    then did: a response stream closed under it (GeneratorExit), or a handler that finished
    OK (health Watch ends its stream normally on cancellation) after the RPC was over."""
    code = status_of(context, error)
    gone = isinstance(error, GeneratorExit) or (
        code == grpc.StatusCode.OK and not context.is_active()
    )
    if not gone:
        return code
    if context.time_remaining() <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED
