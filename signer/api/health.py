"""gRPC health (grpc.health.v1): SERVING only while the HSM and the database answer.

A prober thread checks both every ``interval`` seconds, so a load balancer or Kubernetes
stops sending calls while either is away and resumes when both are back, with no restart.
"""

from __future__ import annotations

import logging
import threading

from grpc_health.v1 import health, health_pb2

from signer.errors import SignerError
from signer.service.services import Services

log = logging.getLogger(__name__)
SERVICE = "signer.v1.FirmwareSigner"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthMonitor:
    def __init__(
        self, services: Services, servicer: health.HealthServicer, *, interval: float = 2.0
    ) -> None:
        self._svc = services
        self._servicer = servicer
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reason: str | None = "not checked yet"

    def check(self) -> str | None:
        """Probe both backends once and publish the result; the reason when not serving."""
        reasons = []
        try:
            if not self._svc.token.probe():
                reasons.append(f"HSM: {self._svc.token.status()[1]}")
        except SignerError as exc:
            reasons.append(f"HSM: {exc}")
        try:
            self._svc.db.ping()
        except SignerError as exc:
            reasons.append(f"database: {exc}")
        reason = "; ".join(reasons) or None
        if reason != self._reason:
            if reason is None:
                log.info("health: SERVING (HSM and database answer)")
            else:
                log.warning("health: NOT_SERVING: %s", reason)
        self._reason = reason
        status = SERVING if reason is None else NOT_SERVING
        for name in ("", SERVICE):
            self._servicer.set(name, status)
        return reason

    def start(self) -> None:
        self.check()
        self._thread = threading.Thread(target=self._run, name="health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop probing and answer NOT_SERVING from now on (shutdown has begun)."""
        self._stop.set()
        self._servicer.enter_graceful_shutdown()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.check()
            except Exception:  # never let the prober die silently
                log.exception("health probe failed")
