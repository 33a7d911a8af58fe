"""Certificates that fuzz/ found reaching past ``load_certificate`` with the library's own
exception (``cryptography`` decodes names lazily): each is now one FormatError at load.

The inputs are published test certificates with the one byte the fuzzer changed.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from signer.errors import FormatError
from signer.smki.certificate import check_profile_basics, load_certificate
from tests.support.vectors import vector_bytes

NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)


def patched_der(name: str, offset: int, old: int, new: int) -> bytes:
    der = bytearray(
        x509.load_pem_x509_certificate(vector_bytes("certs", name)).public_bytes(Encoding.DER)
    )
    assert der[offset] == old, "the vector changed: the regression input no longer applies"
    der[offset] = new
    return bytes(der)


@pytest.mark.parametrize(
    ("name", "offset", "old", "new", "said"),
    [
        # issuer: a PrintableString tag turned context-specific: ValueError from .issuer
        ("Z1-accessControlBroker-dSPXmlSign.pem", 67, 0x13, 0x93, "not a DER X.509"),
        # subject: an OCTET STRING tag turned BIT STRING under the OU OID: TypeError
        ("Z1b-accessControlBroker-ka.pem", 125, 0x04, 0x31, "not a DER X.509"),
        ("Z1b-accessControlBroker-ka.pem", 116, 0x30, 0xDA, "not a DER X.509"),
    ],
)
def test_broken_names_are_refused_at_load(
    name: str, offset: int, old: int, new: int, said: str
) -> None:
    data = patched_der(name, offset, old, new)
    with pytest.raises(FormatError, match=said) as exc:
        check_profile_basics(load_certificate(data), NOW)
    assert exc.value.field == "certificate"
    assert len(str(exc.value)) < 200
