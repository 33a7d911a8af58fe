"""Keys named as the CLI and configuration name them: a label or a PKCS#11 URI (RFC 7512)."""

from __future__ import annotations

from dataclasses import dataclass

from signer.errors import InvalidInput, NotFound, PolicyRefused
from signer.hsm.token import Token, TokenKey
from signer.hsm.uri import KeyRef, parse_key_ref
from signer.registry import keys as ledger
from signer.registry.keys import KeyRecord
from signer.service.services import Services


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


@dataclass(frozen=True)
class Located:
    """A key as named: its token half (None if gone from the token) and its ledger entry."""

    key: TokenKey | None
    record: KeyRecord | None

    @property
    def label(self) -> str:
        if self.key is not None:
            return self.key.label
        assert self.record is not None
        return self.record.label

    @property
    def key_id(self) -> bytes:
        if self.key is not None:
            return self.key.key_id
        assert self.record is not None
        return self.record.key_id

    def on_token(self) -> TokenKey:
        if self.key is None:
            raise NotFound(f"key {self.label!r} is in the key ledger but no longer on the token")
        return self.key

    def in_ledger(self) -> KeyRecord:
        if self.record is None:
            raise PolicyRefused(
                f"key {self.label!r} is not in the key ledger; adopt it with "
                "`signer keys activate` or generate keys with `signer keys generate`"
            )
        return self.record


def locate(svc: Services, name: str, *, field: str = "label") -> Located:
    """Find a key by label or PKCS#11 URI on the token, else in the ledger (a key gone from
    the token can still be retired)."""
    ref = key_ref(svc.token, name, field=field)
    try:
        key = svc.token.find(label=ref.label, key_id=ref.key_id)
    except NotFound:
        records = [
            r
            for r in ledger.all_keys(svc.db, svc.token.token_label).values()
            if (ref.label is None or r.label == ref.label)
            and (ref.key_id is None or r.key_id == ref.key_id)
        ]
        if len(records) != 1:
            raise
        return Located(None, records[0])
    return Located(key, ledger.get(svc.db, svc.token.token_label, key.key_id))
