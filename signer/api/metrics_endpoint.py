"""/metrics over HTTP on its own port, apart from the gRPC port and its TLS.

The port answers ``/metrics`` only (GET and HEAD, any query string); every other path is
404 with a line saying where health is: the gRPC health service (`signer health`), never
this port, so nobody takes a 200 from it for the service being up.
"""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import REGISTRY, disable_created_metrics, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from signer.api.metrics_collector import ServiceCollector
from signer.errors import ConfigurationError
from signer.service.services import Services

PATH = "/metrics"
NOT_HERE = (
    b"not found: this port serves /metrics only; the health check is the gRPC health "
    b"service (signer health)\n"
)
_ALLOWED = ("GET", "HEAD")
StartResponse = Callable[..., Any]
App = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def metrics_only(app: App) -> App:
    """``app`` on `PATH` for GET and HEAD (HEAD without the body); 404 elsewhere, 405 for
    other methods."""

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if environ.get("PATH_INFO") != PATH:
            answer = _plain(start_response, "404 Not Found", NOT_HERE)
            return [] if method == "HEAD" else answer
        if method not in _ALLOWED:
            text = f"method {method} not allowed: GET or HEAD {PATH}\n".encode()
            return _plain(start_response, "405 Method Not Allowed", text, ", ".join(_ALLOWED))
        body = app({**environ, "REQUEST_METHOD": "GET"}, start_response)
        return [] if method == "HEAD" else body

    return serve


def _plain(
    start_response: StartResponse, status: str, body: bytes, allow: str | None = None
) -> list[bytes]:
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if allow is not None:
        headers.append(("Allow", allow))
    start_response(status, headers)
    return [body]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes are not logged."""


def _serve(bind: str, port: int) -> WSGIServer:
    """The metrics app on its own daemon thread, as prometheus_client's own server does."""
    family, *_rest, address = socket.getaddrinfo(
        bind, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    httpd = make_server(
        str(address[0]), port, metrics_only(make_wsgi_app(REGISTRY)), Server, handler_class=_Quiet
    )
    threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True).start()
    return httpd


def _split(listen: str) -> tuple[str, str, int]:
    """host as written (``[::1]``), host to bind (``::1``), port."""
    host, port = listen.rsplit(":", 1)
    return host, host.strip("[]"), int(port)


class MetricsEndpoint:
    """/metrics on its own port: bound at start-up, before the HSM and the database, then
    given the service's collector once those are open."""

    def __init__(self, listen: str) -> None:
        self.host, bind, port = _split(listen)
        # as Go's client does: no *_created series beside every counter and histogram
        disable_created_metrics()  # type: ignore[no-untyped-call]
        try:
            self._server = _serve(bind, port)
        except OSError as exc:
            reason = (
                "address already in use (another signer serve?)"
                if exc.errno == errno.EADDRINUSE
                else exc.strerror or str(exc)
            )
            raise ConfigurationError(f"metrics.listen {listen}: {reason}") from None
        self.port: int = self._server.server_port
        self._collector: ServiceCollector | None = None

    def start(self, services: Services) -> Callable[[], None]:
        """Add the service metrics (HSM, keys, build); returns the stop."""
        self._collector = ServiceCollector(services)
        REGISTRY.register(self._collector)
        return self.stop

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
            self._collector = None


def bind_metrics(listen: str) -> MetricsEndpoint:
    try:
        _split(listen)
    except ValueError:
        raise ConfigurationError(f"metrics.listen {listen!r} is not host:port") from None
    return MetricsEndpoint(listen)
