"""/metrics over HTTP on its own port, apart from the gRPC port and its TLS."""

from __future__ import annotations

import errno
from collections.abc import Callable

from prometheus_client import REGISTRY, disable_created_metrics, start_http_server

from signer.api.metrics_collector import ServiceCollector
from signer.errors import ConfigurationError
from signer.service.services import Services


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
            self._server, _thread = start_http_server(port, addr=bind)
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
