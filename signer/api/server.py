"""The gRPC server: limits raised for 10 MB images, health, reflection, graceful stop."""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.health import SERVICE, HealthMonitor
from signer.api.servicer import FirmwareSigner
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


def build_server(services: Services,
                 listen: str) -> tuple[grpc.Server, int, HealthMonitor]:
    """The signer service, gRPC health checking and server reflection on one port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=services.config.workers),
                         options=SERVER_OPTIONS)
    pb_grpc.add_FirmwareSignerServicer_to_server(FirmwareSigner(services), server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen}")
    return server, port, HealthMonitor(services, health_servicer)


def serve(services: Services, *, grace: float = 10.0,
          ready: threading.Event | None = None) -> None:
    server, port, monitor = build_server(services, services.config.listen)
    server.start()
    monitor.start()
    host = services.config.listen.rsplit(":", 1)[0]
    log.info("%s listening on %s:%d (with grpc.health.v1 and reflection)", SERVICE, host, port)
    print(f"READY {host}:{port}", flush=True)
    stopped = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping, %ss grace for calls in flight", signum, grace)
        monitor.stop()
        server.stop(grace).wait()
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if ready is not None:
        ready.set()
    stopped.wait()
    services.close()
