"""The token's signing primitive: ECDSA P-256 over SHA-256 digests, in chunks, raw r||s.

Why digests only, why chunks and what a retried chunk may sign: docs/hsm.md ("Signing").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pkcs11
from pkcs11 import Attribute, Mechanism
from pkcs11.types import SignMixin

from signer.errors import HsmUnavailable, PolicyRefused
from signer.hsm.keys import KeyCache, TokenKey
from signer.hsm.session import TRANSIENT

SIGN_CHUNK = 64  # signatures per hold of the lock in sign_digests (about 5 ms)

Check = Callable[[bytes, bytes], None]


def check_digests(digests: Sequence[bytes]) -> None:
    """``CKM_ECDSA`` given more than 32 bytes silently signs a prefix: refuse a non-digest."""
    for i, digest in enumerate(digests):
        if len(digest) != 32:
            raise ValueError(
                f"sign_digests takes 32-byte SHA-256 digests (#{i} is {len(digest)} bytes)"
            )


def sign_chunk(
    session: pkcs11.Session,
    cache: KeyCache,
    key: TokenKey,
    digests: Sequence[bytes],
    out: list[bytes],
    stop: int,
    check: Check | None,
) -> None:
    """Sign ``digests[len(out):stop]`` into ``out`` with a handle looked up by CKA_ID now.

    Goes on from the first digest not yet signed, so a retry after recovery signs no digest
    twice. ``check`` sees the first signature made with the handle.
    """
    handle = cache.handle(session, key.key_id)
    if not isinstance(handle, SignMixin):
        # python-pkcs11 builds the handle without its sign method when CKA_SIGN was false at
        # scan time: the key was retired (see Token.disable_signing).
        raise _retired(key)
    first = True
    while len(out) < stop:
        digest = digests[len(out)]
        try:
            signature = handle.sign(digest, mechanism=Mechanism.ECDSA)
        except pkcs11.PKCS11Error as exc:
            if not isinstance(exc, TRANSIENT) and not _may_sign(handle):
                cache.keys = None
                raise _retired(key) from None
            raise
        if len(signature) != 64:
            raise HsmUnavailable(f"token returned a {len(signature)}-byte ECDSA signature")
        if first and check is not None:
            check(digest, bytes(signature))
        first = False
        out.append(bytes(signature))


def _retired(key: TokenKey) -> PolicyRefused:
    return PolicyRefused(
        f"the token refuses to sign with key {key.label!r}: its CKA_SIGN is false (retired)"
    )


def _may_sign(handle: pkcs11.PrivateKey) -> bool:
    try:
        return bool(handle[Attribute.SIGN])
    except pkcs11.PKCS11Error:
        return True  # cannot tell: let the original error speak
