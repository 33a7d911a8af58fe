"""Keys named as the CLI and configuration name them: a label or a PKCS#11 URI (RFC 7512)."""

from __future__ import annotations

from signer.errors import InvalidInput
from signer.hsm.token import Token, TokenKey
from signer.hsm.uri import KeyRef, parse_key_ref


def key_ref(token: Token, text: str, *, field: str) -> KeyRef:
    """Parse a key name and check that a URI names this service's token."""
    ref = parse_key_ref(text, field=field)
    if ref.token is not None and ref.token != token.token_label:
        raise InvalidInput(
            f"{ref.describe()} names token {ref.token!r}, but this service "
            f"uses token {token.token_label!r}",
            field=field,
        )
    return ref


def find_key(token: Token, text: str, *, field: str) -> TokenKey:
    ref = key_ref(token, text, field=field)
    return token.find(label=ref.label, key_id=ref.key_id)
