"""Keys made inside the token with a self-issued certificate in the SMKI profile.

For development and tests: production certificates come from the SMKI issuing CA.
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.hsm.token import Token, TokenKey
from signer.smki.certificate import smki_extensions, smki_name
from signer.smki.issuance import issue_certificate


def generate_self_certified(token: Token, label: str, *, role: RemotePartyRole, eui: Eui64,
                            not_before: dt.datetime, not_after: dt.datetime,
                            issuer_cn: str = "DEV") -> TokenKey:
    """A P-256 key generated in the token, certified by itself as ``CN=<issuer_cn>,OU=07``."""
    key = token.generate_key(label)
    cert = issue_certificate(
        subject=smki_name(int(role), eui, label),
        issuer=smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, issuer_cn),
        public_key=key.public_key, serial=x509.random_serial_number(),
        not_before=not_before, not_after=not_after,
        extensions=smki_extensions(public_key=key.public_key, key_usage="digitalSignature"),
        sign_digest=lambda digest: token.sign_digest(key, digest))
    return token.store_certificate(key, cert)
