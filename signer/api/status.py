"""The one place where signer errors become gRPC status codes and machine-readable reasons.

Anything a client sent that we cannot use is INVALID_ARGUMENT; a rule that says no is
FAILED_PRECONDITION; a missing object NOT_FOUND; the HSM or database away UNAVAILABLE.
Each family also has its reason code, UPPER_SNAKE as `google.rpc.ErrorInfo` spells
reasons (`signer.api.richstatus` sends it); a refusal that already has a reason code (a
pre-command's ``pre_command_*``, a device's ``unknown_device``, a campaign's
``SELF_APPROVAL``) is sent as that code, upper-cased, so the error details and the
response messages name a refusal alike.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import grpc

from signer.api.decoding import UndecodableRequest
from signer.errors import (
    CallEnded,
    CampaignRefused,
    CertificateRejected,
    ConfigurationError,
    DevicesRefused,
    FormatError,
    HsmLoginFailed,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignatureInvalid,
    SignerError,
    Unavailable,
    Unsigned,
)
from signer.service.keys.lifecycle import KeysStillTrusted
from signer.service.precommands import PreCommandRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Family:
    """One family of the error hierarchy: its status code and its reason code."""

    kind: type[SignerError]
    code: grpc.StatusCode
    reason: str


_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_REFUSED = grpc.StatusCode.FAILED_PRECONDITION
#: most specific first: the first family an error belongs to decides
_FAMILIES: tuple[Family, ...] = (
    Family(CallEnded, grpc.StatusCode.CANCELLED, "CALL_ENDED"),
    Family(UndecodableRequest, _INVALID, "UNDECODABLE_REQUEST"),
    Family(FormatError, _INVALID, "MALFORMED_INPUT"),
    Family(InvalidInput, _INVALID, "INVALID_INPUT"),
    Family(DevicesRefused, _REFUSED, "DEVICES_REFUSED"),
    Family(PreCommandRefused, _REFUSED, "PRE_COMMAND_REFUSED"),  # sent as its own code
    Family(KeysStillTrusted, _REFUSED, "KEY_STILL_TRUSTED"),
    Family(CampaignRefused, _REFUSED, "CAMPAIGN_REFUSED"),  # sent as its own reason
    Family(Unsigned, _REFUSED, "UNSIGNED"),
    Family(SignatureInvalid, _REFUSED, "SIGNATURE_INVALID"),
    Family(CertificateRejected, _REFUSED, "CERTIFICATE_REJECTED"),
    Family(PolicyRefused, _REFUSED, "POLICY_REFUSED"),
    Family(NotFound, grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
    Family(HsmLoginFailed, grpc.StatusCode.UNAVAILABLE, "HSM_LOGIN_FAILED"),
    Family(HsmUnavailable, grpc.StatusCode.UNAVAILABLE, "HSM_UNAVAILABLE"),
    Family(Unavailable, grpc.StatusCode.UNAVAILABLE, "BACKEND_UNAVAILABLE"),
    Family(ConfigurationError, _REFUSED, "CONFIGURATION_ERROR"),
)
#: anything else that fails a call: a bug, its text never sent
INTERNAL = Family(SignerError, grpc.StatusCode.INTERNAL, "INTERNAL_ERROR")
DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
#: reason codes are identifiers; anything else (free text) is counted and sent as this
OTHER_REASON = "other"
_REASON = re.compile(r"[a-z][a-z0-9_]{0,47}")


def family_of(error: SignerError) -> Family:
    for family in _FAMILIES:
        if isinstance(error, family.kind):
            return family
    return INTERNAL


def status_for(error: SignerError, *, deadline_passed: bool = False) -> grpc.StatusCode:
    if isinstance(error, CallEnded) and deadline_passed:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return family_of(error).code


def reason_for(error: SignerError, *, deadline_passed: bool = False) -> str:
    """The machine-readable reason of a failed call (`google.rpc.ErrorInfo.reason`)."""
    if isinstance(error, CallEnded) and deadline_passed:
        return DEADLINE_EXCEEDED
    if isinstance(error, PreCommandRefused):
        return reason_code(error.code)
    if isinstance(error, CampaignRefused):  # SELF_APPROVAL, PLAN_STALE, ...
        return reason_code(error.reason.lower())
    return family_of(error).reason


def refusal_reason(code: str) -> str:
    """A reason code as a label value: free text never becomes a series of its own."""
    return code if _REASON.fullmatch(code) else OTHER_REASON


def reason_code(code: str) -> str:
    """A refusal's reason code (``unknown_device``) as an error detail's reason
    (``UNKNOWN_DEVICE``); free text is ``OTHER``."""
    return refusal_reason(code).upper()
