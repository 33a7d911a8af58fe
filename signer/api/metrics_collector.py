"""The metrics read at scrape time: whether the HSM is up, each key's expiry, build info.

They call use cases (the key ledger, the token), which the shared `signer.metrics` may not,
so they live here; `metrics_endpoint` registers this collector once the service is open.
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Iterable

import grpc
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from signer.errors import SignerError
from signer.service.keys.views import list_keys
from signer.service.services import Services

log = logging.getLogger("signer.api.metrics")  # the name these lines have always logged under
KEY_CACHE_SECONDS = 15.0  # key expiry changes when a certificate is installed: rarely
SCRAPE_WAIT_SECONDS = 1.0  # a scrape waits no longer than this for the key ledger / HSM


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
