"""Placeholder: gRPC metrics and the metrics endpoint (replaced by the metrics work)."""

from __future__ import annotations

from collections.abc import Callable

import grpc
from prometheus_client import start_http_server

from signer.api.handlers import Continuation, Handler, ServerInterceptor, wrap
from signer.service.context import Services


class MetricsInterceptor(ServerInterceptor):
    def intercept_service(self, continuation: Continuation,
                          details: grpc.HandlerCallDetails) -> Handler | None:
        return wrap(continuation(details), details, lambda rpc, behavior: behavior)


def start_metrics_server(services: Services, listen: str) -> tuple[str, int, Callable[[], None]]:
    """Serve /metrics on its own port; returns host, bound port and a stop function."""
    host, port = listen.rsplit(":", 1)
    server, _thread = start_http_server(int(port), addr=host)
    return host, server.server_port, server.shutdown
