"""Authenticating what the DCC sends before acting on it: DUIS responses or flagged raw GBCS.

A DUIS response is acted on only if one of the configured DCC certificates
(``[dcc] certificates``) signed it (``signer.duis.dcc``). Raw GBCS (a 6.24.1 payload, a CS06
pre-command) carries no signature of the DCC, so it is refused unless the caller says, with an
explicit flag, that it accepts it unauthenticated; each such use is logged with the caller's
identity and recorded in the audit trail as ``{"dcc_authenticated": false}``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from signer.caller import current
from signer.duis.dcc import authenticate_dcc_response, signer_of
from signer.errors import ConfigurationError, InvalidInput, SignerError
from signer.smki.certificate import load_certificate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Whether the DCC's signature vouched for an input, as its audit records say."""

    dcc_authenticated: bool
    dcc_signer: str | None = None  # issuer / serial of the DCC certificate that signed

    def details(self) -> dict[str, Any]:
        out: dict[str, Any] = {"dcc_authenticated": self.dcc_authenticated}
        if self.dcc_signer is not None:
            out["dcc_signer"] = self.dcc_signer
        return out


UNAUTHENTICATED = Origin(dcc_authenticated=False)


def load_dcc_certificates(paths: Iterable[Path]) -> tuple[x509.Certificate, ...]:
    """The configured DCC XML-signing certificates; each must be readable and P-256."""
    certs = []
    for path in paths:
        setting = f"dcc.certificates ({path})"
        try:
            cert = load_certificate(path.read_bytes(), field=str(path))
        except OSError as exc:
            raise ConfigurationError(f"{setting}: cannot read it: {exc.strerror}") from None
        except SignerError as exc:
            raise ConfigurationError(f"{setting}: {exc}") from None
        key = cert.public_key()
        if not (isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)):
            raise ConfigurationError(
                f"{setting}: not a P-256 key; the DCC XMLDSig profile signs with ECDSA P-256"
            )
        certs.append(cert)
    return tuple(certs)


def authenticated(
    xml: bytes, certificates: Sequence[x509.Certificate], now: dt.datetime
) -> tuple[etree._Element, Origin]:
    """The DUIS response's root (Signature removed) once a configured DCC certificate's
    signature on it verified, and the origin its records will carry."""
    verified = authenticate_dcc_response(xml, certificates=certificates, now=now)
    return verified.root, Origin(dcc_authenticated=True, dcc_signer=signer_of(verified))


def accept_raw(accept_unauthenticated: bool, *, field: str, flag: str, what: str) -> Origin:
    """Raw GBCS in ``field``: refused unless ``flag`` was given, and then logged."""
    if not accept_unauthenticated:
        raise InvalidInput(
            f"raw GBCS is not authenticated as the DCC's: send the DUIS response the DCC "
            f"signed instead, or set {flag} to accept it unauthenticated (recorded in the "
            "audit trail)",
            field=field,
        )
    caller = current()
    log.warning(
        "unauthenticated GBCS accepted (%s) for %s by client %s: the DCC's signature is "
        "not checked",
        flag,
        what,
        caller.identity,
    )
    return UNAUTHENTICATED
