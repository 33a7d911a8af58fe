"""The one place where signer errors become gRPC status codes.

Anything a client sent that we cannot use is INVALID_ARGUMENT; a rule that says no is
FAILED_PRECONDITION; a missing object NOT_FOUND; the HSM or database away UNAVAILABLE.
"""

from __future__ import annotations

import logging

import grpc

from signer.errors import (
    CallEnded,
    ConfigurationError,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignerError,
    Unavailable,
)

log = logging.getLogger(__name__)

_CODES: tuple[tuple[type[SignerError], grpc.StatusCode], ...] = (
    (CallEnded, grpc.StatusCode.CANCELLED),
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (PolicyRefused, grpc.StatusCode.FAILED_PRECONDITION),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ConfigurationError, grpc.StatusCode.FAILED_PRECONDITION),
)


def status_for(error: SignerError, *, deadline_passed: bool = False) -> grpc.StatusCode:
    if isinstance(error, CallEnded) and deadline_passed:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    for family, code in _CODES:
        if isinstance(error, family):
            return code
    return grpc.StatusCode.INTERNAL
