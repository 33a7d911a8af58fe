"""Every error family has its status code, and an absent HSM is UNAVAILABLE."""

from __future__ import annotations

import grpc
import pytest

from signer.api.status import status_for
from signer.errors import (
    CallEnded,
    CertificateRejected,
    DevicesRefused,
    FormatError,
    HsmLoginFailed,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    SignatureInvalid,
    Unavailable,
)
from signer.hsm.pin import Pin
from signer.hsm.token import Token


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("x", field="f"), grpc.StatusCode.INVALID_ARGUMENT),
        (FormatError("x", field="f", offset=3), grpc.StatusCode.INVALID_ARGUMENT),
        (CertificateRejected("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (SignatureInvalid("x"), grpc.StatusCode.FAILED_PRECONDITION),
        (
            DevicesRefused("all refused", [("d", "unknown_device", "t")]),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (NotFound("x"), grpc.StatusCode.NOT_FOUND),
        (Unavailable("db"), grpc.StatusCode.UNAVAILABLE),
        (HsmUnavailable("hsm"), grpc.StatusCode.UNAVAILABLE),
        (HsmLoginFailed("pin"), grpc.StatusCode.UNAVAILABLE),
    ],
)
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_for(error) is code  # type: ignore[arg-type]


def test_a_call_that_ended_is_what_the_client_saw() -> None:
    assert status_for(CallEnded("gone")) is grpc.StatusCode.CANCELLED
    assert status_for(CallEnded("gone"), deadline_passed=True) is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_for(Unavailable("db"), deadline_passed=True) is grpc.StatusCode.UNAVAILABLE


def test_format_error_says_where() -> None:
    assert str(FormatError("bad tail byte 0x41", field="upgrade_image", offset=296)) == (
        "upgrade_image @ offset 296: bad tail byte 0x41"
    )


def test_a_missing_pkcs11_module_is_hsm_unavailable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = Token(str(tmp_path / "no-such-module.so"), "t", Pin("1234"))
    with pytest.raises(HsmUnavailable, match="cannot load PKCS#11 module"):
        token.open()
