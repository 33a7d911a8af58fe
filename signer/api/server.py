"""The gRPC server: limits raised for 10 MB images, health, reflection, graceful stop."""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
from concurrent import futures
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.auth import AuthInterceptor, Policy
from signer.api.callctx import HANDLERS, CallContextInterceptor
from signer.api.health import SERVICE, HealthMonitor
from signer.api.metrics import MetricsInterceptor, start_metrics_server
from signer.api.servicer import FirmwareSigner
from signer.config import Config, TlsConfig
from signer.errors import ConfigurationError
from signer.service.context import Services

log = logging.getLogger(__name__)

# Images up to 10,240,000 bytes must pass both ways; the gRPC default of 4 MiB rejects them.
# The largest request is a 10 MB upgrade image with 50,000 device IDs (about 11.5 MB); the
# largest response a Resign with one 10 MB image per key, or a 13.7 MB DUIS document.
MAX_REQUEST = 16 * 1024 * 1024
MAX_RESPONSE = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST),
    ("grpc.max_send_message_length", MAX_RESPONSE),
]
#: for clients: the same limits seen from the other end
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_REQUEST),
    ("grpc.max_receive_message_length", MAX_RESPONSE),
]


def transport_policy(config: Config) -> Policy | None:
    """The role policy, or None in development mode; checked before the HSM is opened."""
    if config.tls is None and not config.dev_mode:
        raise ConfigurationError("[tls] cert, key, client_ca and policy are required: client "
                                 "certificates are mandatory unless server.dev_mode = true")
    return Policy.load(config.tls.policy) if config.tls is not None else None


def build_server(services: Services,
                 listen: str) -> tuple[grpc.Server, int, HealthMonitor]:
    """The signer service, gRPC health checking and server reflection on one port.

    Interceptors, outermost first: bind the caller (request ID, identity) so every log line
    carries it; count and time the call, refusals included; then apply the role policy.
    """
    config = services.config
    policy = transport_policy(config)
    if policy is None:
        log.warning("DEVELOPMENT MODE: plaintext gRPC, no client certificates, every call "
                    "allowed; never run production like this")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.workers),
                         options=SERVER_OPTIONS,
                         interceptors=[CallContextInterceptor(), MetricsInterceptor(),
                                       AuthInterceptor(policy)])
    pb_grpc.add_FirmwareSignerServicer_to_server(FirmwareSigner(services), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    if config.tls is not None:
        port = server.add_secure_port(listen, _credentials(config.tls))
    else:
        port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, port, HealthMonitor(services, health_servicer)


def _credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """The server's own TLS key (not an HSM key) and the CA every client must chain to."""
    def read(path: Path, name: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"tls.{name} {path}: {exc.strerror}") from None

    return grpc.ssl_server_credentials(
        [(read(tls.key, "key"), read(tls.cert, "cert"))],
        root_certificates=read(tls.client_ca, "client_ca"), require_client_auth=True)


#: after the grace period, how long cancelled handlers get to notice before we stop waiting
LINGER = 2.0


def serve(services: Services, *, ready: threading.Event | None = None) -> None:
    """Serve until SIGTERM/SIGINT: stop accepting calls, give those in flight
    ``server.shutdown_grace`` seconds, then return (the process exits 0).

    gRPC cancels calls still running after the grace period, but cannot stop their handler
    threads: one stuck in a hung HSM or database would hold the exit forever. Those get
    `LINGER` seconds, then the process exits 0 without them; their signatures, if any,
    were never released (nothing is returned before its audit record is committed).
    """
    grace = services.config.shutdown_grace
    server, port, monitor = build_server(services, services.config.listen)
    stopping = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        if not stopping.is_set():
            log.info("signal %d: stopping, %ss grace for calls in flight", signum, grace)
            stopping.set()

    signal.signal(signal.SIGTERM, _stop)  # before anything starts: a TERM at start-up is clean
    signal.signal(signal.SIGINT, _stop)
    stop_metrics = None
    if services.config.metrics_listen:
        m_host, m_port, stop_metrics = start_metrics_server(services,
                                                            services.config.metrics_listen)
        log.info("metrics on http://%s:%d/metrics", m_host, m_port)
        print(f"METRICS {m_host}:{m_port}", flush=True)
    # What start-up made (modules, schema, caches, the server) lives as long as the process:
    # moved out of the collector's reach, full collections during a campaign do not rescan
    # it (measured: 6 % of the activation path's time).
    gc.freeze()
    server.start()
    monitor.start()
    host = services.config.listen.rsplit(":", 1)[0]
    log.info("%s listening on %s:%d (with grpc.health.v1 and reflection)", SERVICE, host, port)
    print(f"READY {host}:{port}", flush=True)
    if ready is not None:
        ready.set()
    while not stopping.wait(1.0):  # a timed wait, so the signal handler runs promptly
        pass
    monitor.stop()
    server.stop(grace).wait()
    if stop_metrics is not None:
        stop_metrics()
    stuck = HANDLERS.wait_idle(LINGER)
    if stuck:
        log.error("%d call handler(s) still running %ss after the grace period (a hung HSM "
                  "or database?): exiting without them", stuck, LINGER)
        logging.shutdown()
        os._exit(0)
    services.close()
    log.info("stopped")
