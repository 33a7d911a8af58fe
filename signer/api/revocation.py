"""Client certificate revocation: the CRLs of ``[tls] crls``, checked at every call.

grpcio's Python API takes no CRL for the handshake, so the check runs in the auth
interceptor against the verified peer certificate. Each CRL must be signed by a certificate
of ``[tls] client_ca`` and be current (``nextUpdate`` not passed, real clock, as the
handshake checks validity); once ``crls`` is set every client CA needs one. A CRL that
expires while the server runs fails closed: every client of that CA is refused until a
fresh one is installed and the server gets SIGHUP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from cryptography import x509
from cryptography.x509.oid import ExtensionOID

from signer.errors import ConfigurationError

#: `signer_auth_denied_total` reasons this module decides
REVOKED = "revoked"
REVOCATION_UNKNOWN = "revocation_unknown"


def utc_now() -> dt.datetime:
    """The real clock: CRLs are judged as the handshake judges certificates."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RevocationList:
    """One verified CRL: whose it is, what it revokes, until when it may be trusted."""

    issuer: x509.Name
    serials: frozenset[int]
    next_update: dt.datetime
    source: Path

    def describe(self) -> str:
        return (
            f"CRL {self.source} of {self.issuer.rfc4514_string()}: {len(self.serials)} "
            f"revoked, next update {self.next_update:%Y-%m-%dT%H:%M:%SZ}"
        )


@dataclass(frozen=True)
class Refusal:
    reason: str  # REVOKED or REVOCATION_UNKNOWN
    message: str  # sent to the client and logged


@dataclass(frozen=True)
class Revocations:
    """The CRLs by issuer; empty when ``[tls] crls`` is not set (nothing is checked)."""

    lists: Mapping[x509.Name, RevocationList]

    @classmethod
    def load(
        cls, paths: Iterable[Path], client_cas: list[x509.Certificate], now: dt.datetime
    ) -> Revocations:
        lists: dict[x509.Name, RevocationList] = {}
        for path in paths:
            crl = _verified(path, client_cas, now)
            if crl.issuer in lists:
                raise ConfigurationError(
                    f"tls.crls {path}: a second CRL for {crl.issuer.rfc4514_string()} "
                    f"(the first is {lists[crl.issuer].source}); give one per CA"
                )
            lists[crl.issuer] = crl
        if lists:
            for ca in client_cas:
                if ca.subject not in lists:
                    raise ConfigurationError(
                        f"tls.crls: no CRL for client CA {ca.subject.rfc4514_string()}; "
                        "once tls.crls is set every CA in tls.client_ca needs one"
                    )
        return cls(MappingProxyType(lists))

    def refusal(self, cert_pem: bytes, now: dt.datetime) -> Refusal | None:
        """None when the certificate is not revoked (or no CRL is configured), else why."""
        if not self.lists:
            return None
        issuer, serial, subject = _identify(cert_pem)
        crl = self.lists.get(issuer)
        if crl is None:  # issued by a CA of the chain that is not in client_ca
            return Refusal(
                REVOCATION_UNKNOWN,
                f"revocation status of client certificate {subject} unknown: no CRL for "
                f"its issuer {issuer.rfc4514_string()}",
            )
        if now > crl.next_update:
            return Refusal(
                REVOCATION_UNKNOWN,
                f"revocation status of client certificate {subject} unknown: the CRL of "
                f"{issuer.rfc4514_string()} expired at {crl.next_update:%Y-%m-%dT%H:%M:%SZ}",
            )
        if serial in crl.serials:
            return Refusal(
                REVOKED,
                f"client certificate {subject} (serial {serial:#x}) is revoked by the CRL "
                f"of {issuer.rfc4514_string()}",
            )
        return None

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.lists.values()) or "no CRLs"


def read_client_cas(data: bytes, path: Path) -> list[x509.Certificate]:
    """The certificates of the ``client_ca`` bundle (PEM), or one line saying why not."""
    try:
        cas = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigurationError(f"tls.client_ca {path}: not PEM certificates") from None
    if not cas:
        raise ConfigurationError(f"tls.client_ca {path}: no certificate in it")
    return cas


def _verified(path: Path, client_cas: list[x509.Certificate], now: dt.datetime) -> RevocationList:
    def fail(message: str) -> ConfigurationError:
        return ConfigurationError(f"tls.crls {path}: {message}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read it: {exc.strerror}") from None
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            crl = x509.load_pem_x509_crl(data)
        else:
            crl = x509.load_der_x509_crl(data)
    except ValueError:
        raise fail("not a CRL (PEM or DER)") from None
    issuer = crl.issuer.rfc4514_string()
    signers = [ca for ca in client_cas if ca.subject == crl.issuer]
    if not signers:
        raise fail(f"issued by {issuer}, which is not a certificate in tls.client_ca")
    try:
        valid = any(crl.is_signature_valid(ca.public_key()) for ca in signers)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise fail(f"its signature does not verify with the client CA {issuer}")
    next_update = crl.next_update_utc
    if next_update is None:
        raise fail("no nextUpdate: a CRL without one cannot be known to be current")
    if next_update < now:
        raise fail(
            f"expired at {next_update:%Y-%m-%dT%H:%M:%SZ} (nextUpdate); fetch a fresh "
            "CRL from the CA"
        )
    try:
        crl.extensions.get_extension_for_oid(ExtensionOID.DELTA_CRL_INDICATOR)
        raise fail("a delta CRL; give the complete CRL")
    except x509.ExtensionNotFound:
        pass
    return RevocationList(crl.issuer, frozenset(r.serial_number for r in crl), next_update, path)


@lru_cache(maxsize=1024)
def _identify(cert_pem: bytes) -> tuple[x509.Name, int, str]:
    """Issuer, serial and subject of a peer certificate (parsed once per certificate)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    return cert.issuer, cert.serial_number, cert.subject.rfc4514_string() or "(empty subject)"
