"""Is this DUIS response from the DCC? Its XML signature, by a pinned DCC certificate.

Device credentials (SR 6.24.1) decide which key signs and CS06 pre-commands decide what is
activated, so a DUIS response carrying either is acted on only when it verifies in the DCC
XMLDSig profile (``xmldsig.verify_document``) with one of the configured DCC certificates,
chosen by the Signature's KeyInfo X509IssuerSerial: never a certificate the document brings.
Every refusal of a response is one ``InvalidInput`` naming ``dcc_response``, so a client can
tell its input was not authenticated from a policy refusal further on; with no DCC
certificates configured at all it is a ``PolicyRefused`` (server state, not the input).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

from cryptography import x509

from signer.duis.xmldsig import VerifiedSignature, verify_document
from signer.errors import InvalidInput, PolicyRefused, SignatureInvalid, Unsigned

FIELD: Final = "dcc_response"


def authenticate_dcc_response(
    xml: bytes, *, certificates: Sequence[x509.Certificate], now: dt.datetime
) -> VerifiedSignature:
    """The verified response (``.root`` without its Signature), or one refusal naming why.

    ``now`` is the service's clock: a DCC certificate outside its validity authenticates
    nothing.
    """
    if not certificates:
        raise PolicyRefused(
            f"{FIELD}: no DCC certificates are configured ([dcc] certificates), so no DUIS "
            "response can be authenticated"
        )
    try:
        return verify_document(xml, certificates=certificates, now=now, field=FIELD)
    except Unsigned:
        raise InvalidInput(
            "unsigned: the DUIS response carries no DCC XML signature (ds:Signature)",
            field=FIELD,
        ) from None
    except SignatureInvalid as exc:
        raise InvalidInput(f"not authenticated as the DCC's: {exc}", field=FIELD) from None


def signer_of(verified: VerifiedSignature) -> str:
    """Which DCC certificate signed, as the audit trail records it: issuer / serial."""
    return f"{verified.issuer_name[:120]} / {verified.serial}"
