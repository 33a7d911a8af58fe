"""The one door to the HSM: ``Token``, a thin façade over its session, keys and signing.

Everything PKCS#11 goes through ``Token``; nothing outside this package imports ``pkcs11``.
Every call runs through ``TokenSession.run`` (signer.hsm.session): one process-wide lock per
module, one login, failures classified and recovered once, fail fast while down. The facts
behind it (SoftHSM2's locking, handle reuse after a re-initialisation, what each failure
means, the metrics) are in docs/hsm.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute

from signer.errors import InvalidInput, NotFound, SignerError
from signer.hsm import admin
from signer.hsm.keys import RESCAN_INTERVAL, KeyCache, KeyProtection, TokenKey, private_keys
from signer.hsm.module import module
from signer.hsm.pin import Pin
from signer.hsm.session import RECOVERY_INTERVAL, TokenSession
from signer.hsm.signing import SIGN_CHUNK, check_digests, sign_chunk

__all__ = [  # what the rest of the service imports from here
    "RECOVERY_INTERVAL",
    "RESCAN_INTERVAL",
    "SIGN_CHUNK",
    "KeyProtection",
    "Token",
    "TokenKey",
]


class Token:
    """A logged-in PKCS#11 token behind its module's lock, recovering from outages."""

    def __init__(self, module_path: str, token_label: str, pin: Pin) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self._cache = KeyCache()
        self._session = TokenSession(module(module_path), token_label, pin, self._cache)

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Load the module and log in once for the whole process."""
        self._session.open()

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Token:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> tuple[bool, str]:
        """Up or not, and why: a cheap read that makes no PKCS#11 call."""
        return self._session.status()

    def probe(self) -> bool:
        """Check the token and the session with the HSM now, recovering if need be.

        C_GetTokenInfo fails once SoftHSM2 has lost the token (its object searches then
        silently find nothing), and reading an attribute of a private key fails on a dead
        or logged-out session.
        """

        def check(session: pkcs11.Session) -> None:
            session.token.slot.get_token()
            handle = self._cache.first_handle()
            if handle is not None:
                handle[Attribute.SIGN]

        try:
            self._session.run("probe", check)
        except SignerError:
            return False
        return True

    # -- reads -------------------------------------------------------------------------

    def keys(self, *, refresh: bool = False) -> list[TokenKey]:
        """Every usable EC key pair on the token with its certificate, if one is stored.

        A refresh rescans the token (keys added by another process) at most once every
        ``RESCAN_INTERVAL`` seconds, so callers cannot keep the lock busy with rescans.
        """
        cache = self._cache
        snapshot = cache.keys  # replaced whole, never mutated: readable without the lock
        stale = refresh and cache.stale()
        if snapshot is not None and not stale and self._session.down is None:
            return list(snapshot.values())

        def current(session: pkcs11.Session) -> list[TokenKey]:
            if cache.keys is None or stale:
                cache.keys = cache.scan(session)
            return list(cache.keys.values())

        return self._session.run("list keys", current)

    def find(
        self, *, label: str | None = None, key_id: bytes | None = None, ski: bytes | None = None
    ) -> TokenKey:
        """Find one key by label, CKA_ID or its certificate's SKI; rescans once on a miss."""
        for refresh in (False, True):
            matches = [k for k in self.keys(refresh=refresh) if k.matches(label, key_id, ski)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(f"{len(matches)} keys match; name one by CKA_ID", field="key")
        wanted = label if label is not None else (key_id or ski or b"").hex()
        raise NotFound(f"no key {wanted} on token {self.token_label!r}")

    def protection(self) -> list[KeyProtection]:
        def read(session: pkcs11.Session) -> list[KeyProtection]:
            return [KeyProtection.read(obj) for obj in private_keys(session)]

        return self._session.run("read key attributes", read)

    # -- the signing primitive -----------------------------------------------------------

    def sign_digest(self, key: TokenKey, digest: bytes) -> bytes:
        """ECDSA P-256 over a SHA-256 digest the caller computed; raw r||s.

        Only a 32-byte digest is accepted. The private key handle is looked up by CKA_ID on
        every try, so a retry after recovery signs with the same key or not at all
        (``NotFound``).
        """
        return self.sign_digests(key, [digest])[0]

    def sign_digests(
        self,
        key: TokenKey,
        digests: Sequence[bytes],
        *,
        into: list[bytes] | None = None,
        check: Callable[[bytes, bytes], None] | None = None,
    ) -> list[bytes]:
        """``sign_digest`` for many digests with one key, in order.

        Up to ``SIGN_CHUNK`` per hold of the lock (docs/hsm.md, "Signing"); a retry after
        recovery goes on from the first digest not yet signed, so no digest is signed twice
        by one call. ``into`` receives each signature as it is made, so a caller still knows
        what was signed when a later one fails. ``check(digest, signature)`` runs on the
        first signature made with each handle looked up (every chunk, every retry): one
        raising stops the call, so every handle that signed was proven by a signature of
        its own.
        """
        check_digests(digests)
        out: list[bytes] = [] if into is None else into
        if out:
            raise ValueError("sign_digests fills an empty list")
        for start in range(0, len(digests), SIGN_CHUNK):
            stop = min(len(digests), start + SIGN_CHUNK)

            def sign(session: pkcs11.Session, stop: int = stop) -> None:
                sign_chunk(session, self._cache, key, digests, out, stop, check)

            # a chunk is one operation to the metrics: its own label keeps "sign" per signature
            self._session.run("sign" if stop - start == 1 else "sign batch", sign)
        return out

    # -- writes (key administration, signer.hsm.admin) ---------------------------------------

    def import_key(
        self, label: str, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> TokenKey:
        """Import a test key as non-extractable and sensitive, with its certificate."""
        imported = admin.KeyImport(label, private_key, certificate)
        self._session.run("import key", lambda s: imported.create(s, self._cache))
        return self.find(key_id=imported.key_id)

    def generate_key(self, label: str, key_id: bytes | None = None) -> TokenKey:
        """A P-256 key pair made inside the token; the private half never exists outside."""
        new_id = key_id or admin.new_key_id()
        self._session.run("generate key", lambda s: admin.generate(s, self._cache, label, new_id))
        return self.find(key_id=new_id)

    def store_certificate(self, key: TokenKey, certificate: x509.Certificate) -> TokenKey:
        if certificate.public_key() != key.public_key:
            raise InvalidInput("the certificate's public key is not this key's", field="cert")
        self._session.run(
            "store certificate",
            lambda s: admin.replace_certificate(s, self._cache, key, certificate),
        )
        return self.find(key_id=key.key_id)

    def disable_signing(self, key: TokenKey) -> TokenKey:
        """Clear CKA_SIGN on the private key, so the token itself refuses a retired key.

        The key ledger is the authority (CKA_SIGN can be set again); this is the second
        barrier, and it stops a service instance whose view of the ledger is stale.
        """
        self._session.run("disable signing", lambda s: admin.disable_signing(s, self._cache, key))
        return self.find(key_id=key.key_id)

    def destroy_key(self, key: TokenKey) -> None:
        """Remove a key pair and its certificate: only to undo a generation nobody recorded."""
        self._session.run("destroy key", lambda s: admin.destroy(s, self._cache, key))
