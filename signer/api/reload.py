"""What mTLS rests on, reloadable on SIGHUP: policy, CRLs, server certificate, client CA.

Everything is read into one immutable `Snapshot`, checked in full (a policy that parses, CRLs
that verify against the client CA and are current, a key that matches its certificate), and
only then swapped in with one assignment: a call reads the snapshot once, so it is judged by
the old configuration or the new, never a mix. A reload that fails keeps the old snapshot and
logs one line naming the file; there is never a moment without a policy.

TLS files reach new handshakes through `grpc.dynamic_ssl_server_credentials`: gRPC asks the
fetcher for the certificate configuration at every handshake, and it answers with the new
one once after a reload. Connections already open keep what they were accepted with; calls
in flight finish; each new call is checked against the new policy and CRLs.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import cast

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

from signer.api.auth import Policy
from signer.api.revocation import Revocations, read_client_cas, utc_now
from signer.config import TlsConfig
from signer.errors import ConfigurationError
from signer.metrics import RELOADS, TLS_HANDSHAKES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TlsFiles:
    """The server's key and certificate chain and the client CA bundle, as bytes."""

    key: bytes
    cert: bytes
    client_ca: bytes

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.cert)], root_certificates=self.client_ca
        )


@dataclass(frozen=True)
class Snapshot:
    policy: Policy
    revocations: Revocations
    tls: TlsFiles
    server_serial: int

    def describe(self) -> str:
        return (
            f"{self.policy.describe()}; {self.revocations.describe()}; "
            f"server certificate serial {self.server_serial:#x}"
        )


def load_snapshot(tls: TlsConfig, now: dt.datetime) -> Snapshot:
    """Read and check every file; `ConfigurationError` names the first that is wrong.

    Whatever else a library raises on a hostile file (an unsupported curve, an extension
    parsed lazily) is a `ConfigurationError` too: a reload must never die of it."""
    try:
        return _load_snapshot(tls, now)
    except ConfigurationError:
        raise
    except Exception as exc:
        log.debug("loading the [tls] files failed", exc_info=True)
        raise ConfigurationError(
            f"[tls] files ({tls.cert}, {tls.key}, {tls.client_ca}, {tls.policy}, crls): "
            f"cannot use them: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def _load_snapshot(tls: TlsConfig, now: dt.datetime) -> Snapshot:

    def read(path: Path, name: str) -> bytes:
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ConfigurationError(f"tls.{name} {path}: {exc.strerror}") from None

    key, cert = read(tls.key, "key"), read(tls.cert, "cert")
    client_ca = read(tls.client_ca, "client_ca")
    try:
        chain = x509.load_pem_x509_certificates(cert)
    except ValueError:
        raise ConfigurationError(f"tls.cert {tls.cert}: not PEM certificates") from None
    try:
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(f"tls.key {tls.key}: not an unencrypted PEM private key") from None
    if not chain or chain[0].public_key() != private.public_key():
        raise ConfigurationError(
            f"tls.key {tls.key}: not the key of the certificate in tls.cert {tls.cert}"
        )
    cas = read_client_cas(client_ca, tls.client_ca)
    return Snapshot(
        policy=Policy.load(tls.policy),
        revocations=Revocations.load(tls.crls, cas, now),
        tls=TlsFiles(key, cert, client_ca),
        server_serial=chain[0].serial_number,
    )


class TransportState:
    """The current snapshot, the credentials that follow it, and the SIGHUP reload."""

    def __init__(self, tls: TlsConfig) -> None:
        self.tls = tls
        self.current = load_snapshot(tls, utc_now())
        if not tls.crls:
            log.warning(
                "mTLS without [tls] crls: client certificates are not checked for revocation "
                "(a CRL can be added only with a restart; SIGHUP re-reads the files listed)"
            )
        self._served = self.current.tls  # what gRPC's handshakes were last given
        self._requested = threading.Event()
        self._lock = threading.Lock()  # one reload at a time

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(
            self.current.tls.configuration(), self._fetch, require_client_authentication=True
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration:
        """Called by gRPC at the start of every TLS handshake: None keeps what it has."""
        TLS_HANDSHAKES.inc()
        files = self.current.tls
        if files == self._served:
            return cast(grpc.ServerCertificateConfiguration, None)
        self._served = files
        return files.configuration()

    def reload(self) -> bool:
        """Load everything again; on any error keep the old snapshot. Whether it took."""
        with self._lock:
            try:
                fresh = load_snapshot(self.tls, utc_now())
            except ConfigurationError as exc:
                RELOADS.labels(result="failed").inc()
                log.error("reload refused, keeping the previous configuration: %s", exc)
                return False
            self.current = fresh  # one assignment: calls see the old or the new, whole
            RELOADS.labels(result="ok").inc()
            log.info("reloaded: %s", fresh.describe())
            return True

    def install_sighup(self, stopping: threading.Event) -> None:
        """Reload on SIGHUP, on a thread of its own (never inside the signal handler)."""

        def handler(_signum: int, _frame: FrameType | None) -> None:
            self._requested.set()

        def worker() -> None:
            while not stopping.is_set():
                if self._requested.wait(1.0):
                    self._requested.clear()
                    log.info("SIGHUP: reloading the policy, the CRLs and the TLS files")
                    try:
                        self.reload()
                    except Exception:  # the thread must outlive any one reload
                        RELOADS.labels(result="failed").inc()
                        log.exception("reload failed, keeping the previous configuration")

        signal.signal(signal.SIGHUP, handler)
        threading.Thread(target=worker, name="sighup-reload", daemon=True).start()
