"""Bind each call's `Caller` (who, which request) and log how the call ended.

Outermost interceptor: everything inside it, the policy check included, logs with the
request ID and the client identity. The identity is the verified client certificate's
subject. The request ID is always ours (audit records must not carry an ID a client can
choose); it goes back in the ``x-request-id`` response header, and an ID the client offered
in ``x-request-id`` metadata is kept beside it (``client_request_id``) for correlation.

It also counts the calls whose handlers are running, so a shutdown can tell a handler that
outlived the grace period (a hung HSM or database) and stop waiting for it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
from cryptography import x509

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
from signer.caller import Caller, bound, new_request_id, offered_request_id

log = logging.getLogger("signer.api.calls")
REQUEST_ID_HEADER = "x-request-id"
UNAUTHENTICATED = "unauthenticated"
#: request metadata naming the caller on a development server (docs/campaigns.md): two
#: approvers played on one machine; `signer.api.auth` refuses it outside development mode
DEV_IDENTITY_HEADER = "signer-dev-identity"
DEV_IDENTITY_PREFIX = "dev:"
_DEV_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def dev_identity_offered(context: grpc.ServicerContext) -> str | None:
    """The ``signer-dev-identity`` metadata value, if the call carries one."""
    for key, value in context.invocation_metadata() or ():
        if key == DEV_IDENTITY_HEADER:
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def valid_dev_name(name: str) -> bool:
    return _DEV_NAME.fullmatch(name) is not None


def caller_of(context: grpc.ServicerContext, rpc: Rpc, *, dev_mode: bool = False) -> Caller:
    offered = offered_request_id(dict(context.invocation_metadata()).get(REQUEST_ID_HEADER))
    request_id = new_request_id()
    dev_name = dev_identity_offered(context) if dev_mode else None
    if dev_name is not None and valid_dev_name(dev_name):
        # development mode only: the identity the client asks for ("dev:alice"), in place
        # of the certificate's (there is none in plaintext development mode)
        return Caller(
            identity=f"{DEV_IDENTITY_PREFIX}{dev_name}",
            request_id=request_id,
            method=rpc.method,
            common_name=dev_name,
            client_request_id=offered,
            active=_waiting(context),
        )
    pem = (context.auth_context().get("x509_pem_cert") or [b""])[0]
    if not isinstance(pem, bytes) or not pem:
        return Caller(
            identity=UNAUTHENTICATED,
            request_id=request_id,
            method=rpc.method,
            client_request_id=offered,
            active=_waiting(context),
        )
    cert = x509.load_pem_x509_certificate(pem)
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    # with several CNs "the" CN is ambiguous (DER order and RFC 4514 order differ): none
    cn = str(names[0].value) if len(names) == 1 else None
    return Caller(
        identity=cert.subject.rfc4514_string(),
        request_id=request_id,
        method=rpc.method,
        common_name=cn,
        alt_names=_alt_names(cert),
        client_request_id=offered,
        active=_waiting(context),
    )


class InFlight:
    """How many call handlers are running; shutdown waits for none, for a bounded time."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def enter(self) -> None:
        with self._idle:
            self._count += 1

    def leave(self) -> None:
        with self._idle:
            self._count -= 1
            if self._count == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> int:
        """Wait until no handler runs, at most ``timeout`` s; the number still running."""
        with self._idle:
            self._idle.wait_for(lambda: self._count == 0, timeout)
            return self._count


#: the handlers of this process's gRPC server
HANDLERS = InFlight()


def _waiting(context: grpc.ServicerContext) -> Callable[[], bool]:
    """Whether the client still waits: the call is live and its deadline has not passed
    (`is_active` can lag a passed deadline by a moment)."""

    def waiting() -> bool:
        remaining = context.time_remaining()
        return bool(context.is_active()) and (remaining is None or remaining > 0)

    return waiting


def _alt_names(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return ()
    out = [f"DNS:{v}" for v in san.get_values_for_type(x509.DNSName)]
    out += [f"URI:{v}" for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    out += [f"email:{v}" for v in san.get_values_for_type(x509.RFC822Name)]
    out += [f"IP:{v}" for v in san.get_values_for_type(x509.IPAddress)]
    return tuple(out)


class CallContextInterceptor(ServerInterceptor):
    """``dev_mode``: the server is in development mode, where ``signer-dev-identity`` names
    the caller."""

    def __init__(self, *, dev_mode: bool = False) -> None:
        self._wrapped = Wrapped()
        self.dev_mode = dev_mode

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        return self._wrapped.get(handler, details, lambda: wrap(handler, details, self._around))

    def _around(self, rpc: Rpc, behavior: Behavior) -> Behavior:
        return _around(rpc, behavior, self.dev_mode)


def _around(rpc: Rpc, behavior: Behavior, dev_mode: bool = False) -> Behavior:
    if rpc.streams_responses:

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            caller, start = _begin(rpc, context, dev_mode)
            error: BaseException | None = None
            try:
                with bound(caller):
                    items = iter(behavior(request, context))
                while True:
                    with bound(caller):
                        try:
                            item = next(items)
                        except StopIteration:
                            return
                    yield item
            except BaseException as exc:
                error = exc
                raise
            finally:
                with bound(caller):
                    _end(rpc, context, start, error)

        return streaming

    def unary(request: Any, context: grpc.ServicerContext) -> Any:
        caller, start = _begin(rpc, context, dev_mode)
        error: BaseException | None = None
        with bound(caller):
            try:
                return behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                _end(rpc, context, start, error)

    return unary


def _begin(rpc: Rpc, context: grpc.ServicerContext, dev_mode: bool) -> tuple[Caller, float]:
    caller = caller_of(context, rpc, dev_mode=dev_mode)
    context.send_initial_metadata(((REQUEST_ID_HEADER, caller.request_id),))
    HANDLERS.enter()  # left in _end, which the caller's try/finally always reaches
    return caller, time.perf_counter()


def _end(
    rpc: Rpc, context: grpc.ServicerContext, start: float, error: BaseException | None
) -> None:
    try:
        code = final_code(context, error)
        ms = (time.perf_counter() - start) * 1000
        # probes call the health service every few seconds: keep their successes out of INFO
        quiet = rpc.service.startswith("grpc.") and code == grpc.StatusCode.OK
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s in %.1f ms",
            rpc.method,
            code.name,
            ms,
            extra={
                "grpc_service": rpc.service,
                "grpc_method": rpc.method,
                "grpc_code": code.name,
                "duration_ms": round(ms, 3),
            },
        )
    finally:
        HANDLERS.leave()
