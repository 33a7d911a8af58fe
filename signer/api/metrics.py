"""gRPC metrics (go-grpc-prometheus semantics) and the /metrics endpoint on its own port.

`MetricsInterceptor` sits inside the call-context interceptor and outside the policy check,
so refused calls are counted with the code their client saw. The endpoint also serves what
is read at scrape time: whether the HSM is up, each key's certificate expiry, build info.
"""

from __future__ import annotations

import errno
import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from prometheus_client import REGISTRY, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from signer.api._proto.signer.v1 import signer_pb2
from signer.api.handlers import (
    Behavior,
    Continuation,
    Handler,
    Rpc,
    ServerInterceptor,
    final_code,
    wrap,
)
from signer.errors import ConfigurationError, SignerError
from signer.metrics import (
    GRPC_HANDLED,
    GRPC_HANDLING_SECONDS,
    GRPC_MSG_RECEIVED,
    GRPC_MSG_SENT,
    GRPC_STARTED,
    go_code_name,
)
from signer.service.keyviews import list_keys
from signer.service.services import Services

log = logging.getLogger(__name__)
KEY_CACHE_SECONDS = 15.0  # key expiry changes when a certificate is installed: rarely
SCRAPE_WAIT_SECONDS = 1.0  # a scrape waits no longer than this for the key ledger / HSM
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
        for service in signer_pb2.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                rpc = Rpc(f"/{service.full_name}/{m.name}", _kind(m))
                self._series[rpc] = _Series(rpc)

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        return wrap(continuation(details), details, self._around)

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


# -- the endpoint and what it reads at scrape time -------------------------------------------


def _versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"

    return {
        "version": version("signer"),
        "python": platform.python_version(),
        "grpc": grpc.__version__,
        "cryptography": version("cryptography"),
        "pkcs11": version("python-pkcs11"),
        "prometheus_client": version("prometheus-client"),
    }


class _KeyExpiry:
    """Each certified key's not-after, refreshed in the background at most every few seconds.

    A scrape waits ``wait`` seconds at most for a refresh: a hung HSM or database leaves
    the last known values (a certificate's expiry does not change while the HSM is away)
    instead of a hung scrape, and only one refresh runs at a time.
    """

    def __init__(
        self,
        services: Services,
        *,
        ttl: float = KEY_CACHE_SECONDS,
        wait: float = SCRAPE_WAIT_SECONDS,
    ) -> None:
        self._svc = services
        self._ttl = ttl
        self._wait = wait
        self._lock = threading.Lock()
        self._values: list[tuple[str, str, str, float]] = []  # key, purpose, state, not-after
        self._at: float | None = None
        self._thread: threading.Thread | None = None
        self._failing = False

    def current(self) -> list[tuple[str, str, str, float]]:
        with self._lock:
            stale = self._at is None or time.monotonic() - self._at >= self._ttl
            if stale and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(
                    target=self._refresh, name="metrics-keys", daemon=True
                )
                self._thread.start()
            thread = self._thread
        if thread is not None:
            thread.join(self._wait)
        return self._values

    def _refresh(self) -> None:
        try:
            views = list_keys(self._svc)
        except Exception as exc:  # HSM or database away: said once per outage, not per scrape
            if not self._failing:
                log.warning(
                    "metrics: cannot list keys, keeping the last expiry values: %s",
                    exc,
                    exc_info=not isinstance(exc, SignerError),
                )
            self._failing = True
            return
        if self._failing:
            log.info("metrics: key expiry values current again")
        self._failing = False
        seen: set[str] = set()
        values = []
        for v in views:
            if v.not_after is None or v.label in seen:
                continue
            seen.add(v.label)
            values.append((v.label, v.purpose, v.state, v.not_after.timestamp()))
        self._values = values  # replaced whole: readers never see it half-built
        self._at = time.monotonic()


class ServiceCollector(Collector):
    """signer_hsm_up, signer_key_not_after_timestamp_seconds and signer_build_info."""

    def __init__(self, services: Services) -> None:
        self._svc = services
        self._keys = _KeyExpiry(services)
        self._build = _versions()
        self._keys.current()  # start the first refresh now, so the first scrape has keys

    def describe(self) -> Iterable[Metric]:
        """Names only: registering must not read the HSM."""
        return self._families(hsm_up=None, keys=[])

    def collect(self) -> Iterable[Metric]:
        up, _why = self._svc.token.status()  # no PKCS#11 call: never blocks on a dead HSM
        return self._families(hsm_up=up, keys=self._keys.current())

    def _families(
        self, *, hsm_up: bool | None, keys: list[tuple[str, str, str, float]]
    ) -> list[Metric]:
        up = GaugeMetricFamily(
            "signer_hsm_up",
            "1 while the token answers (as of its last operation or health "
            "probe, every 2 s), 0 while it is down.",
        )
        if hsm_up is not None:
            up.add_metric([], 1.0 if hsm_up else 0.0)
        expiry = GaugeMetricFamily(
            "signer_key_not_after_timestamp_seconds",
            "End of validity (Unix time) of each token key's certificate.",
            labels=["key", "purpose", "state"],
        )
        for label, purpose, state, not_after in keys:
            expiry.add_metric([label, purpose, state], not_after)
        info = InfoMetricFamily("signer_build", "Versions of the signer and what it runs on.")
        info.add_metric([], self._build)
        return [up, expiry, info]


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
