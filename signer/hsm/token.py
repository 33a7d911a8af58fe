"""The one door to the HSM.

Everything PKCS#11 goes through ``Token``: it owns the module, the single login and the
process-wide lock. python-pkcs11 initialises the module without OS locking, so SoftHSM2 runs
without its own mutexes and two concurrent calls of any kind (sign, find, open, close) can
crash the process; hence one lock around every call, not only around ``sign``. The lock
belongs to the loaded module, so tokens of one module share it.
Nothing outside this package imports ``pkcs11``.

Failures are classified in one place, ``Token._run``:

* transient (device, session, token, handle errors, or no token after a re-initialisation):
  the token recovers and the operation is retried once. Recovering means: after a handle
  error, a rescan in the same session if that session still sees the token and its keys;
  otherwise the module is re-initialised (at most once per ``RECOVERY_INTERVAL`` per
  module), the token found again by label, a new logged-in session opened and the keys
  rescanned. If recovery or the retry fails, the token is
  down: calls fail fast with ``HsmUnavailable`` without touching PKCS#11 until the interval
  has passed, and the next call then tries again, so the service comes back by itself.
* bad PIN: fatal. The token stays down with ``HsmLoginFailed`` and never logs in again in
  this process (another try could lock the PIN).
* anything else (mechanism, argument, policy errors): reported, not recovered.

The same place times every operation (``signer_hsm_operation_seconds{operation}``, from the
``what`` given to ``_run``, plus ``login`` and ``reinitialize``) and counts each failure by
the class above (``signer_hsm_errors_total{error}``: transient, login, other, down when the
token is marked down, fail_fast for each call refused meanwhile).

Re-initialising the module invalidates every session and object handle of the process, and
SoftHSM2 hands the same handle numbers out again afterwards (measured: an old key handle then
signs with whatever object got its number). So each session is tagged with the module's
generation, and nothing of an older generation is ever used: handles are resolved again by
CKA_ID from a fresh scan.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.util.ec import (
    decode_ec_private_key,
    decode_ec_public_key,
    encode_named_curve_parameters,
)

from signer.errors import (
    HsmLoginFailed,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignerError,
)
from signer.hsm.pin import Pin
from signer.metrics import HSM_ERRORS, HSM_OPERATION_SECONDS

log = logging.getLogger(__name__)
RESCAN_INTERVAL = 2.0  # seconds
RECOVERY_INTERVAL = 1.0  # seconds: at most one module re-initialisation per interval
SIGN_CHUNK = 64  # signatures per hold of the lock in sign_digests (about 5 ms)
T = TypeVar("T")

_TRANSIENT = (
    pkcs11.DeviceError,
    pkcs11.DeviceMemory,
    pkcs11.DeviceRemoved,
    pkcs11.SessionClosed,
    pkcs11.SessionHandleInvalid,
    pkcs11.TokenNotPresent,
    pkcs11.TokenNotRecognised,
    pkcs11.GeneralError,
    pkcs11.FunctionFailed,
    pkcs11.UserNotLoggedIn,
    pkcs11.ObjectHandleInvalid,
    pkcs11.KeyHandleInvalid,
)
# A handle that died alone (its object destroyed by another process) needs only a rescan.
_HANDLE_ERRORS = (pkcs11.ObjectHandleInvalid, pkcs11.KeyHandleInvalid)
_BAD_PIN = (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange, pkcs11.PinLocked)

# Usages a signing key must and must not have: SoftHSM's defaults are permissive.
PRIVATE_KEY_POLICY: dict[Any, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.SIGN_RECOVER: False,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
}
PUBLIC_KEY_POLICY: dict[Any, Any] = {
    Attribute.TOKEN: True,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}


@dataclass(frozen=True)
class TokenKey:
    """Public facts about a key pair on the token: what selection and listing need."""

    label: str
    key_id: bytes
    public_key: ec.EllipticCurvePublicKey
    certificate: x509.Certificate | None
    can_sign: bool = True  # CKA_SIGN of the private key: false once the key is retired
    ski: bytes | None = field(init=False)  # of the certificate, read once: selection uses it
    fingerprint: bytes | None = field(init=False)  # SHA-256 of the certificate

    def __post_init__(self) -> None:
        ski = None
        fingerprint = None
        if self.certificate is not None:
            fingerprint = self.certificate.fingerprint(hashes.SHA256())
            try:
                ext = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
                ski = ext.value.digest
            except x509.ExtensionNotFound:
                pass
        object.__setattr__(self, "ski", ski)
        object.__setattr__(self, "fingerprint", fingerprint)


@dataclass(frozen=True)
class KeyProtection:
    """The attributes that say a private key can never leave the token."""

    label: str
    extractable: bool
    sensitive: bool
    always_sensitive: bool
    never_extractable: bool
    key_id: bytes = b""
    local: bool = False  # generated inside the token (CKA_LOCAL), not imported
    other_usages: tuple[str, ...] = ()  # usages beyond signing (decrypt, unwrap, derive, ...)

    def problems(self) -> list[str]:
        """Why this key may not be trusted to sign: empty when it is sensitive, never
        extractable and sign-only."""
        out = []
        if self.extractable:
            out.append("it is extractable")
        if not self.sensitive:
            out.append("it is not sensitive")
        if self.local and not (self.never_extractable and self.always_sensitive):
            # an imported key cannot have these; one generated here must
            out.append("it was extractable or not sensitive at some time")
        if self.other_usages:
            out.append(f"it also allows {', '.join(self.other_usages)}")
        return out


class Token:
    """A logged-in PKCS#11 token behind its module's lock, recovering from outages."""

    def __init__(self, module_path: str, token_label: str, pin: Pin) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self._pin = pin
        self._module = _module(module_path)
        self._lock = self._module.lock
        self._session: Any = None
        self._generation: int | None = None  # of the module when the session was opened
        self._keys: dict[bytes, TokenKey] | None = None
        self._handles: dict[bytes, Any] = {}
        self._scanned_at = -RESCAN_INTERVAL
        self._wanted = False  # open() was called and close() was not
        self._down: str | None = None  # why the token is unusable right now
        self._retry_at = 0.0  # while down: no recovery attempt before this monotonic time
        self._fatal: str | None = None  # the PIN was refused: down for good
        self._depth = 0  # nesting of _run in the thread that holds the lock

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Load the module and log in once for the whole process."""
        self._fail_fast()
        with self._lock:
            self._wanted = True
            self._ensure_session("open")

    def close(self) -> None:
        with self._lock:
            if self._session is not None and self._generation == self._module.generation:
                # a handle of an older generation may be another session's now: never close it
                try:
                    self._session.close()
                except pkcs11.PKCS11Error:
                    pass
            self._wanted = False
            self._generation = None
            self._drop_session()
            if self._fatal is None:
                self._down = None

    def __enter__(self) -> Token:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> tuple[bool, str]:
        """Up or not, and why: a cheap read that makes no PKCS#11 call."""
        if self._fatal is not None:
            return False, self._fatal
        if self._down is not None:
            return False, self._down
        if not self._wanted:
            return False, "the token session is not open"
        return True, "ok"

    def probe(self) -> bool:
        """Check the token and the session with the HSM now, recovering if need be.

        C_GetTokenInfo fails once SoftHSM2 has lost the token (its object searches then
        silently find nothing), and reading an attribute of a private key fails on a dead
        or logged-out session.
        """

        def check() -> None:
            self._session.token.slot.get_token()
            for handle in list(self._handles.values())[:1]:
                handle[Attribute.SIGN]

        try:
            self._run("probe", check)
        except SignerError:
            return False
        return True

    # -- reads -------------------------------------------------------------------------

    def keys(self, *, refresh: bool = False) -> list[TokenKey]:
        """Every usable EC key pair on the token with its certificate, if one is stored.

        A refresh rescans the token (keys added by another process) at most once every
        ``RESCAN_INTERVAL`` seconds, so callers cannot keep the lock busy with rescans.
        """
        snapshot = self._keys  # replaced whole, never mutated: readable without the lock
        stale = refresh and time.monotonic() - self._scanned_at >= RESCAN_INTERVAL
        if snapshot is not None and not stale and self._down is None:
            return list(snapshot.values())

        def current() -> list[TokenKey]:
            if self._keys is None or stale:
                self._keys = self._scan()
            return list(self._keys.values())

        return self._run("list keys", current)

    def find(
        self, *, label: str | None = None, key_id: bytes | None = None, ski: bytes | None = None
    ) -> TokenKey:
        """Find one key by label, CKA_ID or its certificate's SKI; rescans once on a miss."""
        for refresh in (False, True):
            matches = [k for k in self.keys(refresh=refresh) if _matches(k, label, key_id, ski)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidInput(f"{len(matches)} keys match; name one by CKA_ID", field="key")
        wanted = label if label is not None else (key_id or ski or b"").hex()
        raise NotFound(f"no key {wanted} on token {self.token_label!r}")

    def protection(self) -> list[KeyProtection]:
        def read() -> list[KeyProtection]:
            out = []
            for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
                out.append(
                    KeyProtection(
                        label=obj.label,
                        extractable=bool(obj[Attribute.EXTRACTABLE]),
                        sensitive=bool(obj[Attribute.SENSITIVE]),
                        always_sensitive=bool(obj[Attribute.ALWAYS_SENSITIVE]),
                        never_extractable=bool(obj[Attribute.NEVER_EXTRACTABLE]),
                        key_id=bytes(obj[Attribute.ID]),
                        local=bool(obj[Attribute.LOCAL]),
                        other_usages=tuple(name for name, attr in _OTHER_USAGES if bool(obj[attr])),
                    )
                )
            return out

        return self._run("read key attributes", read)

    # -- the signing primitive -----------------------------------------------------------

    def sign_digest(self, key: TokenKey, digest: bytes) -> bytes:
        """ECDSA P-256 over a SHA-256 digest the caller computed; raw r||s.

        ``CKM_ECDSA`` given more than 32 bytes silently signs a prefix, so refuse anything
        that is not a digest. The private key handle is looked up by CKA_ID on every try, so
        a retry after recovery signs with the same key or not at all (``NotFound``).
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

        A batch of a campaign signs back to back, up to ``SIGN_CHUNK`` per hold of the lock:
        the token's code and key stay warm (measured: 77 instead of 107 us per signature
        when each is interleaved with building its document), and another caller waits for
        one chunk at most. A retry after recovery goes on from the first digest not yet
        signed, so no digest is signed twice by one call.

        ``into`` receives each signature as it is made, so a caller still knows what was
        signed when a later one fails. ``check(digest, signature)`` runs on the first
        signature made with each handle looked up (every chunk, every retry): one raising
        stops the call, so every handle that signed was proven by a signature of its own.
        """
        for i, digest in enumerate(digests):
            if len(digest) != 32:
                raise ValueError(
                    f"sign_digests takes 32-byte SHA-256 digests (#{i} is {len(digest)} bytes)"
                )
        out: list[bytes] = [] if into is None else into
        if out:
            raise ValueError("sign_digests fills an empty list")
        for start in range(0, len(digests), SIGN_CHUNK):
            stop = min(len(digests), start + SIGN_CHUNK)

            def sign(stop: int = stop) -> None:
                handle = self._private_handle(key.key_id)
                if not hasattr(handle, "sign"):
                    # python-pkcs11 builds the handle without its sign method when CKA_SIGN
                    # was false at scan time: the key was retired (see disable_signing).
                    raise PolicyRefused(
                        f"the token refuses to sign with key {key.label!r}: "
                        "its CKA_SIGN is false (retired)"
                    )
                first = True
                while len(out) < stop:
                    digest = digests[len(out)]
                    try:
                        signature = handle.sign(digest, mechanism=Mechanism.ECDSA)
                    except pkcs11.PKCS11Error as exc:
                        if not isinstance(exc, _TRANSIENT) and not _may_sign(handle):
                            self._keys = None
                            raise PolicyRefused(
                                f"the token refuses to sign with key "
                                f"{key.label!r}: its CKA_SIGN is false "
                                "(retired)"
                            ) from None
                        raise
                    if len(signature) != 64:
                        raise HsmUnavailable(
                            f"token returned a {len(signature)}-byte ECDSA signature"
                        )
                    if first and check is not None:
                        check(digest, bytes(signature))
                    first = False
                    out.append(bytes(signature))

            # a chunk is one operation to the metrics: its own label keeps "sign" per signature
            self._run("sign" if stop - start == 1 else "sign batch", sign)
        return out

    # -- writes (key administration) -------------------------------------------------------

    def import_key(
        self, label: str, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> TokenKey:
        """Import a test key as non-extractable and sensitive, with its certificate."""
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise InvalidInput("only P-256 keys are supported", field="key")
        if certificate.public_key() != private_key.public_key():
            raise InvalidInput("the certificate does not belong to this key", field="cert")
        key_id = _ski_or_random(certificate)
        sec1 = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        spki = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

        def create() -> None:
            self._refuse_duplicate(label, key_id)
            priv = decode_ec_private_key(sec1)
            priv.update(PRIVATE_KEY_POLICY)
            priv.update({Attribute.LABEL: label, Attribute.ID: key_id})
            pub = decode_ec_public_key(spki)
            pub.update(PUBLIC_KEY_POLICY)
            pub.update({Attribute.LABEL: label, Attribute.ID: key_id})
            self._session.create_object(priv)
            self._session.create_object(pub)
            self._store_certificate(label, key_id, certificate)
            self._keys = None

        self._run("import key", create)
        return self.find(key_id=key_id)

    def generate_key(self, label: str, key_id: bytes | None = None) -> TokenKey:
        """A P-256 key pair made inside the token; the private half never exists outside."""
        new_id = key_id or secrets.token_bytes(8)

        def generate() -> None:
            self._refuse_duplicate(label, new_id)
            params = self._session.create_domain_parameters(
                KeyType.EC,
                {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True,
            )
            params.generate_keypair(
                store=True,
                label=label,
                id=new_id,
                private_template=dict(PRIVATE_KEY_POLICY),
                public_template=dict(PUBLIC_KEY_POLICY),
            )
            self._keys = None

        self._run("generate key", generate)
        return self.find(key_id=new_id)

    def store_certificate(self, key: TokenKey, certificate: x509.Certificate) -> TokenKey:
        if certificate.public_key() != key.public_key:
            raise InvalidInput("the certificate's public key is not this key's", field="cert")

        def store() -> None:
            for old in list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key.key_id}
                )
            ):
                old.destroy()
            self._store_certificate(key.label, key.key_id, certificate)
            self._keys = None

        self._run("store certificate", store)
        return self.find(key_id=key.key_id)

    def disable_signing(self, key: TokenKey) -> TokenKey:
        """Clear CKA_SIGN on the private key, so the token itself refuses a retired key.

        The key ledger is the authority (CKA_SIGN can be set again); this is the second
        barrier, and it stops a service instance whose view of the ledger is stale.
        """

        def disable() -> None:
            self._private_handle(key.key_id)[Attribute.SIGN] = False
            self._keys = None

        self._run("disable signing", disable)
        return self.find(key_id=key.key_id)

    def destroy_key(self, key: TokenKey) -> None:
        """Remove a key pair and its certificate: only to undo a generation nobody recorded."""

        def destroy() -> None:
            objects = list(self._session.get_objects({Attribute.ID: key.key_id}))
            for obj in objects:
                obj.destroy()
            self._keys = None
            self._handles.pop(key.key_id, None)

        self._run("destroy key", destroy)

    # -- internals: the one place that classifies failures and recovers ---------------------

    def _run(self, what: str, fn: Callable[[], T]) -> T:
        """Run one operation under the lock; on a transient failure recover and retry once."""
        self._fail_fast()
        with self._lock:
            if self._depth:  # inside another operation: the outer _run handles failures
                return fn()
            self._depth += 1
            started = time.perf_counter()  # under the lock: the HSM's time, not the queue's
            try:
                self._ensure_session(what)
                try:
                    return self._mapped(what, fn)
                except _Recoverable as first:
                    self._recover(
                        f"{what} failed: {first.reason}",
                        handles_only=isinstance(first.__cause__, _HANDLE_ERRORS),
                    )
                try:
                    return self._mapped(what, fn)
                except _Recoverable as second:
                    reason = f"{what} failed again after recovery: {second.reason}"
                    self._mark_down(reason)  # the next try, after the interval, recovers
                    raise HsmUnavailable(reason) from second.__cause__
            finally:
                self._depth -= 1
                _observe(what, started)

    def _fail_fast(self) -> None:
        """Without the lock and without PKCS#11: refuse at once while the token is down."""
        if self._fatal is not None:
            HSM_ERRORS.labels(error="fail_fast").inc()
            raise HsmLoginFailed(self._fatal)
        down = self._down
        if down is not None and time.monotonic() < self._retry_at:
            HSM_ERRORS.labels(error="fail_fast").inc()
            raise HsmUnavailable(f"token {self.token_label!r} is down: {down}")

    def _ensure_session(self, what: str) -> None:
        """Under the lock: a session of the module's current generation, or an error."""
        self._fail_fast()  # again: another thread may have failed while this one waited
        if not self._wanted:
            raise HsmUnavailable("the token session is not open")
        if self._session is not None and self._generation == self._module.generation:
            return
        if self._down is None and self._generation is None:
            self._connect_or_raise(what)  # a first open: no session of this module state yet
            return
        self._recover(
            "retrying after the outage"
            if self._down is not None
            else "the PKCS#11 module was re-initialised"
        )

    def _mapped(self, what: str, fn: Callable[[], T]) -> T:
        """Run fn; transient failures become _Recoverable, the rest the signer's errors."""
        try:
            return fn()
        except SignerError:
            raise
        except _BAD_PIN as exc:
            HSM_ERRORS.labels(error="login").inc()
            raise self._refused(exc) from None
        except _TRANSIENT as exc:
            HSM_ERRORS.labels(error="transient").inc()
            raise _Recoverable(type(exc).__name__) from exc
        except pkcs11.PKCS11Error as exc:
            HSM_ERRORS.labels(error="other").inc()
            raise HsmUnavailable(f"{what} failed: {type(exc).__name__}") from exc

    def _recover(self, cause: str, *, handles_only: bool = False) -> None:
        """Under the lock: re-initialise the module if need be, log in again, rescan.

        After a handle error, a rescan in the same session comes first; it is trusted unless
        it fails or sees no private key where there were some (a logged-out session sees
        none, and SoftHSM2 without its token directory finds nothing).
        Raises ``HsmUnavailable`` (token down until the interval has passed) or
        ``HsmLoginFailed`` (down for good) when the token cannot be brought back.
        """
        if (
            handles_only
            and self._session is not None
            and self._generation == self._module.generation
        ):
            had = len(self._handles)
            try:
                keys = self._scan()
            except pkcs11.PKCS11Error as exc:
                cause = f"{cause}, then the rescan: {type(exc).__name__}"
            else:
                if keys or not had:
                    self._keys = keys
                    log.info(
                        "token %r: %s; key handles resolved again by a rescan",
                        self.token_label,
                        cause,
                    )
                    return
                cause = f"{cause}, then the rescan found no key"
        self._drop_session()
        module = self._module
        now = time.monotonic()
        if self._generation == module.generation:  # the failure happened in this state
            if now < module.reinit_at + RECOVERY_INTERVAL:
                reason = f"{cause}; module re-initialised less than {RECOVERY_INTERVAL} s ago"
                self._mark_down(reason, retry_at=module.reinit_at + RECOVERY_INTERVAL)
                raise HsmUnavailable(reason)
            log.warning(
                "token %r: %s; re-initialising PKCS#11 module %s",
                self.token_label,
                cause,
                self.module_path,
            )
            try:
                with HSM_OPERATION_SECONDS.labels(operation="reinitialize").time():
                    module.reinitialize(now)
            except pkcs11.PKCS11Error as exc:
                reason = f"{cause}; re-initialising the module failed: {type(exc).__name__}"
                self._mark_down(reason)
                raise HsmUnavailable(reason) from exc
        else:
            log.warning("token %r: %s; opening a new session", self.token_label, cause)
        self._retry_at = now + RECOVERY_INTERVAL  # if down: callers fail fast meanwhile
        self._connect_or_raise(f"recovery ({cause})")
        try:
            self._keys = self._mapped("rescan", self._scan)
        except _Recoverable as exc:
            reason = f"recovery ({cause}) failed: rescan: {exc.reason}"
            self._mark_down(reason)
            raise HsmUnavailable(reason) from exc.__cause__
        except HsmLoginFailed:
            raise
        except HsmUnavailable as exc:
            self._mark_down(f"recovery ({cause}) failed: rescan: {exc}")
            raise
        log.info("token %r recovered: session reopened, %d keys", self.token_label, len(self._keys))

    def _connect_or_raise(self, what: str) -> None:
        """Find the token by label and log in; the failure leaves the token down."""
        try:
            self._connect(what)
        except _Recoverable as exc:
            reason = f"{what} failed: {exc.reason}"
            self._mark_down(reason)
            raise HsmUnavailable(reason) from exc.__cause__
        except HsmLoginFailed:
            raise
        except HsmUnavailable as exc:
            self._mark_down(str(exc))
            raise

    def _connect(self, what: str) -> None:
        lib = self._module.load()
        self._generation = self._module.generation

        def find_and_log_in() -> Any:
            try:
                token = lib.get_token(token_label=self.token_label)
            except pkcs11.NoSuchToken:
                raise _Recoverable(f"no token labelled {self.token_label!r}") from None
            except pkcs11.MultipleTokensReturned:
                raise HsmUnavailable(f"more than one token labelled {self.token_label!r}") from None
            return _login(token, self._pin)

        with HSM_OPERATION_SECONDS.labels(operation="login").time():
            self._session = self._mapped(what, find_and_log_in)
        self._generation = self._module.generation
        self._down = None
        log.info("logged in to token %r via %s", self.token_label, self.module_path)

    def _refused(self, exc: BaseException) -> HsmLoginFailed:
        """The PIN was refused: down for good, never another login in this process."""
        self._drop_session()
        self._fatal = (
            f"token {self.token_label!r} refused the PIN ({type(exc).__name__}); "
            "not logging in again until the service restarts"
        )
        self._down = self._fatal
        log.error("%s", self._fatal)
        return HsmLoginFailed(self._fatal)

    def _mark_down(self, reason: str, retry_at: float | None = None) -> None:
        """No session until a recovery, and none tried before ``retry_at``."""
        self._drop_session()
        HSM_ERRORS.labels(error="down").inc()
        self._retry_at = time.monotonic() + RECOVERY_INTERVAL if retry_at is None else retry_at
        self._down = reason
        log.warning("token %r is down: %s", self.token_label, reason)

    def _drop_session(self) -> None:
        """Forget the session and every handle from it; no PKCS#11 call."""
        self._session = None
        self._keys = None
        self._handles.clear()

    def _scan(self) -> dict[bytes, TokenKey]:
        certs: dict[bytes, x509.Certificate] = {}
        for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
            certs[bytes(obj[Attribute.ID])] = x509.load_der_x509_certificate(obj[Attribute.VALUE])
        keys: dict[bytes, TokenKey] = {}
        self._handles.clear()
        # PKCS#11 allows one object search per session at a time: materialise each one.
        privates = list(
            self._session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC}
            )
        )
        for priv in privates:
            key_id = bytes(priv[Attribute.ID])
            if priv[Attribute.EXTRACTABLE] or not priv[Attribute.SENSITIVE]:
                log.warning("private key %r is extractable or not sensitive; not used", priv.label)
                continue
            pubs = list(
                self._session.get_objects(
                    {Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id}
                )
            )
            if not pubs:
                log.warning("private key %r has no public key object; skipped", priv.label)
                continue
            public_key = _public_key_from_point(pubs[0][Attribute.EC_POINT])
            cert = certs.get(key_id)
            if cert is not None and cert.public_key() != public_key:
                log.warning(
                    "certificate stored with key %r is for another key; not used", priv.label
                )
                continue
            keys[key_id] = TokenKey(
                label=priv.label,
                key_id=key_id,
                public_key=public_key,
                certificate=cert,
                can_sign=bool(priv[Attribute.SIGN]),
            )
            self._handles[key_id] = priv
        # SoftHSM2 that lost its token directory finds nothing instead of failing; the token
        # info call does fail then (GeneralError), so an empty view is never taken for real.
        self._session.token.slot.get_token()
        self._scanned_at = time.monotonic()
        return keys

    def _private_handle(self, key_id: bytes) -> Any:
        if key_id not in self._handles:
            self._keys = self._scan()
        try:
            return self._handles[key_id]
        except KeyError:
            raise NotFound(f"key {key_id.hex()} is no longer on the token") from None

    def _refuse_duplicate(self, label: str, key_id: bytes) -> None:
        for k in self._scan().values():
            if k.label == label:
                raise InvalidInput(f"a key labelled {label!r} already exists", field="label")
            if k.key_id == key_id:
                raise InvalidInput(f"a key with CKA_ID {key_id.hex()} already exists", field="id")

    def _store_certificate(self, label: str, key_id: bytes, certificate: x509.Certificate) -> None:
        from asn1crypto import x509 as asn1_x509  # local: only certificate storage needs it

        der = certificate.public_bytes(serialization.Encoding.DER)
        parsed = asn1_x509.Certificate.load(der)
        self._session.create_object(
            {
                Attribute.CLASS: ObjectClass.CERTIFICATE,
                Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
                Attribute.TOKEN: True,
                Attribute.LABEL: label,
                Attribute.ID: key_id,
                Attribute.SUBJECT: parsed.subject.dump(),
                Attribute.ISSUER: parsed.issuer.dump(),
                Attribute.SERIAL_NUMBER: parsed["tbs_certificate"]["serial_number"].dump(),
                Attribute.VALUE: der,
            }
        )


class _Recoverable(Exception):
    """Internal: a transient failure that a recovery may cure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Module:
    """One PKCS#11 module of the process: the library, its lock and its generation.

    The generation counts re-initialisations: sessions and handles of an older one are dead,
    and their numbers may already name other sessions and objects.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.lib: Any = None
        self.generation = 0
        self.reinit_at = -math.inf  # monotonic time of the last re-initialisation

    def load(self) -> Any:
        """Load once per process (the caller holds the lock): a second load raises."""
        if self.lib is None:
            try:
                self.lib = pkcs11.lib(self.path)
            except RuntimeError as exc:
                raise HsmUnavailable(f"cannot load PKCS#11 module {self.path}: {exc}") from None
        return self.lib

    def reinitialize(self, now: float) -> None:
        """C_Finalize and C_Initialize (the caller holds the lock): every session dies."""
        self.reinit_at = now
        self.generation += 1
        if self.lib is not None:
            self.lib.reinitialize()


_modules: dict[str, _Module] = {}
_modules_lock = threading.Lock()


def _module(path: str) -> _Module:
    with _modules_lock:
        if path not in _modules:
            _modules[path] = _Module(path)
        return _modules[path]


def _observe(what: str, started: float) -> None:
    """``what`` is one of the literals given to ``Token._run``: a bounded label set."""
    HSM_OPERATION_SECONDS.labels(operation=what.replace(" ", "_")).observe(
        time.perf_counter() - started
    )


def _login(token: Any, pin: Pin) -> Any:
    """The one place that logs in: a read-write session with the user PIN."""
    return token.open(user_pin=pin.reveal(), rw=True)


def _matches(k: TokenKey, label: str | None, key_id: bytes | None, ski: bytes | None) -> bool:
    return (
        (label is None or k.label == label)
        and (key_id is None or k.key_id == key_id)
        and (ski is None or k.ski == ski)
    )


_OTHER_USAGES = (
    ("decrypt", Attribute.DECRYPT),
    ("unwrap", Attribute.UNWRAP),
    ("derive", Attribute.DERIVE),
    ("sign-recover", Attribute.SIGN_RECOVER),
)


def _may_sign(handle: Any) -> bool:
    try:
        return bool(handle[Attribute.SIGN])
    except pkcs11.PKCS11Error:
        return True  # cannot tell: let the original error speak


def _public_key_from_point(ec_point: bytes) -> ec.EllipticCurvePublicKey:
    from asn1crypto.core import OctetString

    point = bytes(ec_point)
    if point[:1] == b"\x04" and len(point) != 65:  # DER-wrapped OCTET STRING
        point = OctetString.load(point).native
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


def _ski_or_random(certificate: x509.Certificate) -> bytes:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return bytes(ext.value.digest)
    except x509.ExtensionNotFound:
        return secrets.token_bytes(8)
