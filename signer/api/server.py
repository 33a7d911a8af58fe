"""The gRPC server: limits raised for 10 MB images, health, reflection, graceful stop."""

from __future__ import annotations

import errno
import gc
import logging
import os
import signal
import socket
import threading
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.auth import AuthInterceptor
from signer.api.callctx import HANDLERS, CallContextInterceptor
from signer.api.handshakes import HandshakeWatch
from signer.api.health import SERVICE, HealthMonitor
from signer.api.metrics_endpoint import MetricsEndpoint, bind_metrics
from signer.api.metrics_interceptor import MetricsInterceptor
from signer.api.outcome import OutcomeInterceptor
from signer.api.reflection import enable_server_reflection
from signer.api.reload import TransportState
from signer.api.servicer import FirmwareSigner
from signer.config import Config
from signer.errors import ConfigurationError
from signer.limits import SERVER_OPTIONS
from signer.service.services import Services

log = logging.getLogger(__name__)


def transport_state(config: Config) -> TransportState | None:
    """Policy, CRLs and TLS files (reloadable on SIGHUP), or None in development mode;
    checked in full before the HSM is opened."""
    if config.tls is None and not config.dev_mode:
        raise ConfigurationError(
            "[tls] cert, key, client_ca and policy are required: client "
            "certificates are mandatory unless server.dev_mode = true"
        )
    return TransportState(config.tls) if config.tls is not None else None


@dataclass
class Listeners:
    """The gRPC and metrics ports, bound before the HSM or the database is touched, so a port
    already in use stops the start with one line and nothing created or migrated."""

    server: grpc.Server
    port: int
    metrics: MetricsEndpoint | None
    health: grpc.Server | None = None  # the plaintext health-only port, if configured
    health_port: int = 0
    transport: TransportState | None = None  # None in development mode


#: calls that reached the port but that grpcio has not yet taken from gRPC core's queue
#: (its poll thread needs the GIL, busy handlers delay it); see `admission_options`
PENDING_PER_ADMITTED = 10
PENDING_FLOOR = 10_000
#: seconds a call may wait in that queue; the client's own deadline normally ends it first
PENDING_WAIT = 3600


def admission_options(config: Config) -> list[tuple[str, int]]:
    """Saturation is answered, never a bare CANCELLED: beyond ``server.max_concurrent_rpcs``
    grpcio answers RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!". But it counts only
    calls it has taken from gRPC core, and under load its poll thread takes them slower than
    they arrive; core cancels calls waiting there beyond 1,000-3,000 or after 30 s, answering
    CANCELLED with no reason (measured: 403 of a 3,000-call burst). A deeper, longer core
    queue lets every call reach grpcio's own admission, which answers or serves it."""
    pending = max(PENDING_FLOOR, PENDING_PER_ADMITTED * config.max_concurrent_rpcs)
    return [
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", pending),
        ("grpc.server_max_unrequested_time_in_server", PENDING_WAIT),
    ]


def bind(config: Config) -> Listeners:
    """Bind both ports exclusively: grpcio shares a port by default (SO_REUSEPORT), so a
    second server would silently take part of the traffic; here it fails instead."""
    transport = transport_state(config)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.workers),
        options=[*SERVER_OPTIONS, *admission_options(config), ("grpc.so_reuseport", 0)],
        maximum_concurrent_rpcs=config.max_concurrent_rpcs,
        interceptors=[
            CallContextInterceptor(dev_mode=config.dev_mode),
            MetricsInterceptor(),
            AuthInterceptor(transport, dev_mode=config.dev_mode),
            OutcomeInterceptor(),
        ],
    )
    listen = config.listen
    ensure_free(listen, "server.listen")
    try:
        if transport is not None:
            port = server.add_secure_port(listen, transport.credentials())
        else:
            port = server.add_insecure_port(listen)
    except RuntimeError:
        port = 0
    if port == 0:
        raise ConfigurationError(
            f"server.listen {listen}: cannot listen there (address in use or not this host's)"
        )
    health, health_port = None, 0
    if config.health_listen:
        ensure_free(config.health_listen, "server.health_listen")
        health = grpc.server(
            futures.ThreadPoolExecutor(max_workers=2), options=[("grpc.so_reuseport", 0)]
        )
        try:
            health_port = health.add_insecure_port(config.health_listen)
        except RuntimeError:
            health_port = 0
        if health_port == 0:
            raise ConfigurationError(
                f"server.health_listen {config.health_listen}: cannot listen there"
            )
    metrics = bind_metrics(config.metrics_listen) if config.metrics_listen else None
    return Listeners(server, port, metrics, health, health_port, transport)


def ensure_free(listen: str, setting: str) -> None:
    """Fail with the setting's name if ``listen`` is taken (grpcio itself only logs why)."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"  # noqa: S104 - the operator's own setting
    try:
        port = int(port_text)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (ValueError, socket.gaierror) as exc:
        raise ConfigurationError(f"{setting} {listen!r} is not host:port ({exc})") from None
    if port == 0:
        return
    for family, kind, proto, _name, address in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigurationError(
                        f"{setting} {listen}: address already in use (another signer serve?)"
                    ) from None
                raise ConfigurationError(f"{setting} {listen}: {exc.strerror}") from None


def attach(listeners: Listeners, services: Services) -> HealthMonitor:
    """The signer service, gRPC health checking and server reflection on the bound port.

    Interceptors, outermost first: bind the caller (request ID, identity) so every log line
    carries it; count and time the call, refusals included; apply the role policy; then map
    signer errors to status codes and count refused devices and pre-commands.
    """
    server = listeners.server
    if services.config.tls is None:
        log.warning(
            "DEVELOPMENT MODE: plaintext gRPC, no client certificates, every call "
            "allowed; never run production like this"
        )
    pb_grpc.add_FirmwareSignerServicer_to_server(FirmwareSigner(services), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if listeners.health is not None:  # the same answers, without TLS, and nothing else
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, listeners.health)
    enable_server_reflection((SERVICE, health.SERVICE_NAME), server)  # v1 and v1alpha
    return HealthMonitor(services, health_servicer)


#: after the grace period, how long cancelled handlers get to notice before we stop waiting
LINGER = 2.0


def serve(
    services: Services, listeners: Listeners, *, ready: threading.Event | None = None
) -> None:
    """Serve until SIGTERM/SIGINT: stop accepting calls, give those in flight
    ``server.shutdown_grace`` seconds, then return (the process exits 0). SIGHUP reloads
    the policy, the CRLs and the TLS files (`signer.api.reload`). With TLS, failed
    handshakes are counted from gRPC core's stderr (`signer.api.handshakes`).

    gRPC cancels calls still running after the grace period, but cannot stop their handler
    threads: one stuck in a hung HSM or database would hold the exit forever. Those get
    `LINGER` seconds, then the process exits 0 without them; their signatures, if any,
    were never released (nothing is returned before its audit record is committed).
    """
    grace = services.config.shutdown_grace
    server, port = listeners.server, listeners.port
    monitor = attach(listeners, services)
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            log.info("signal %d: stopping, %ss grace for calls in flight", signum, grace)
            stopping.set()

    signal.signal(signal.SIGTERM, _stop)  # before anything starts: a TERM at start-up is clean
    signal.signal(signal.SIGINT, _stop)
    handshakes = None
    if listeners.transport is not None:  # policy, CRLs and TLS files reload on SIGHUP
        listeners.transport.install_sighup(stopping)
        handshakes = HandshakeWatch.start()
    else:  # not the default action (exit): development mode has nothing to reload
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop_metrics = None
    if listeners.metrics is not None:
        stop_metrics = listeners.metrics.start(services)
        m_host, m_port = listeners.metrics.host, listeners.metrics.port
        log.info("metrics on http://%s:%d/metrics", m_host, m_port)
        print(f"METRICS {m_host}:{m_port}", flush=True)
    # What start-up made (modules, schema, caches, the server) lives as long as the process:
    # moved out of the collector's reach, full collections during a campaign do not rescan
    # it (measured: 6 % of the activation path's time).
    gc.freeze()
    server.start()
    monitor.start()
    if listeners.health is not None:
        listeners.health.start()
        h_host = str(services.config.health_listen).rsplit(":", 1)[0]
        log.info("grpc.health.v1 (plaintext, health only) on %s:%d", h_host, listeners.health_port)
        print(f"HEALTH {h_host}:{listeners.health_port}", flush=True)
    host = services.config.listen.rsplit(":", 1)[0]
    log.info("%s listening on %s:%d (with grpc.health.v1 and reflection)", SERVICE, host, port)
    print(f"READY {host}:{port}", flush=True)
    if ready is not None:
        ready.set()
    while not stopping.wait(1.0):  # a timed wait, so the signal handler runs promptly
        pass
    monitor.stop()
    if listeners.health is not None:
        listeners.health.stop(0)
    server.stop(grace).wait()
    if stop_metrics is not None:
        stop_metrics()
    stuck = HANDLERS.wait_idle(LINGER)
    if stuck:
        log.error(
            "%d call handler(s) still running %ss after the grace period (a hung HSM "
            "or database?): exiting without them",
            stuck,
            LINGER,
        )
        if handshakes is not None:
            handshakes.stop()
        logging.shutdown()
        os._exit(0)
    services.close()
    log.info("stopped")
    if handshakes is not None:
        handshakes.stop()
