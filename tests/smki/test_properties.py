"""Properties of the certificate loaders: a broken certificate is one FormatError (or a
profile rejection), never the library's own exception from a later, lazy read."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from signer.smki.certificate import check_profile_basics, load_certificate, parse_smki
from tests.support.strategies import (
    certificate_seeds,
    mutated,
    only_signer_errors,
    property_settings,
    sampled,
)

SETTINGS = property_settings()
NOW = dt.datetime(2024, 6, 1, 12, tzinfo=dt.UTC)


@SETTINGS
@given(st.one_of(mutated(sampled(certificate_seeds), max_mutations=2), st.binary(max_size=100)))
def test_certificates_raise_only_signer_errors(data: bytes) -> None:
    only_signer_errors(lambda d: check_profile_basics(load_certificate(d), NOW), data)
    only_signer_errors(lambda d: parse_smki(load_certificate(d)), data)


@SETTINGS
@given(mutated(sampled(certificate_seeds), max_mutations=2))
def test_pem_armour_changes_nothing(der: bytes) -> None:
    """PEM and DER of the same bytes are refused or accepted alike."""
    import base64

    pem = (
        b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(der) + b"-----END CERTIFICATE-----\n"
    )
    only_signer_errors(load_certificate, pem)
