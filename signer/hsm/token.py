"""The one door to the HSM.

Everything PKCS#11 goes through ``Token``: it owns the module, the single login and the
process-wide lock. python-pkcs11 initialises the module without OS locking, so SoftHSM2 runs
without its own mutexes and two concurrent calls of any kind (sign, find, open, close) can
crash the process; hence one lock around every call, not only around ``sign``.
Nothing outside this package imports ``pkcs11``.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

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
    PolicyRefusal,
    SignerError,
)
from signer.hsm.pin import Pin

log = logging.getLogger(__name__)
RESCAN_INTERVAL = 2.0  # seconds

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
                ext = self.certificate.extensions.get_extension_for_class(
                    x509.SubjectKeyIdentifier)
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


class Token:
    """A logged-in PKCS#11 token behind one lock."""

    def __init__(self, module_path: str, token_label: str, pin: Pin) -> None:
        self.module_path = module_path
        self.token_label = token_label
        self._pin = pin
        self._lock = threading.RLock()
        self._lib: Any = None
        self._session: Any = None
        self._keys: dict[bytes, TokenKey] | None = None
        self._handles: dict[bytes, Any] = {}
        self._scanned_at = -RESCAN_INTERVAL

    # -- lifecycle ---------------------------------------------------------------------

    def open(self) -> None:
        """Load the module and log in once for the whole process."""
        with self._call("open"):
            if self._session is not None:
                return
            self._lib = _load_module(self.module_path)
            try:
                token = self._lib.get_token(token_label=self.token_label)
            except pkcs11.NoSuchToken:
                raise HsmUnavailable(f"no token labelled {self.token_label!r}") from None
            self._session = token.open(user_pin=self._pin.reveal(), rw=True)
            log.info("logged in to token %r via %s", self.token_label, self.module_path)

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                try:
                    self._session.close()
                except pkcs11.PKCS11Error:
                    pass
            self._session = None
            self._keys = None
            self._handles.clear()

    def __enter__(self) -> Token:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -------------------------------------------------------------------------

    def keys(self, *, refresh: bool = False) -> list[TokenKey]:
        """Every usable EC key pair on the token with its certificate, if one is stored.

        A refresh rescans the token (keys added by another process) at most once every
        ``RESCAN_INTERVAL`` seconds, so callers cannot keep the lock busy with rescans.
        """
        snapshot = self._keys  # replaced whole, never mutated: readable without the lock
        stale = refresh and time.monotonic() - self._scanned_at >= RESCAN_INTERVAL
        if snapshot is not None and not stale:
            return list(snapshot.values())
        with self._call("list keys"):
            if self._keys is None or stale:
                self._keys = self._scan()
            return list(self._keys.values())

    def find(self, *, label: str | None = None, key_id: bytes | None = None,
             ski: bytes | None = None) -> TokenKey:
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
        with self._call("read key attributes"):
            out = []
            for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})):
                out.append(KeyProtection(
                    label=obj.label,
                    extractable=bool(obj[Attribute.EXTRACTABLE]),
                    sensitive=bool(obj[Attribute.SENSITIVE]),
                    always_sensitive=bool(obj[Attribute.ALWAYS_SENSITIVE]),
                    never_extractable=bool(obj[Attribute.NEVER_EXTRACTABLE]),
                ))
            return out

    # -- the signing primitive -----------------------------------------------------------

    def sign_digest(self, key: TokenKey, digest: bytes) -> bytes:
        """ECDSA P-256 over a SHA-256 digest the caller computed; raw r||s.

        ``CKM_ECDSA`` given more than 32 bytes silently signs a prefix, so refuse anything
        that is not a digest.
        """
        if len(digest) != 32:
            raise ValueError("sign_digest takes a 32-byte SHA-256 digest")
        with self._call("sign"):
            handle = self._private_handle(key.key_id)
            try:
                signature: bytes = handle.sign(digest, mechanism=Mechanism.ECDSA)
            except pkcs11.PKCS11Error:
                if not _may_sign(handle):
                    self._keys = None
                    raise PolicyRefusal(f"the token refuses to sign with key {key.label!r}: "
                                        "its CKA_SIGN is false (retired)") from None
                raise
        if len(signature) != 64:
            raise HsmUnavailable(f"token returned a {len(signature)}-byte ECDSA signature")
        return signature

    def sign_message(self, key: TokenKey, message: bytes) -> bytes:
        return self.sign_digest(key, hashlib.sha256(message).digest())

    # -- writes (key administration) -------------------------------------------------------

    def import_key(self, label: str, private_key: ec.EllipticCurvePrivateKey,
                   certificate: x509.Certificate) -> TokenKey:
        """Import a test key as non-extractable and sensitive, with its certificate."""
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise InvalidInput("only P-256 keys are supported", field="key")
        if certificate.public_key() != private_key.public_key():
            raise InvalidInput("the certificate does not belong to this key", field="cert")
        key_id = _ski_or_random(certificate)
        sec1 = private_key.private_bytes(serialization.Encoding.DER,
                                         serialization.PrivateFormat.TraditionalOpenSSL,
                                         serialization.NoEncryption())
        spki = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        with self._call("import key"):
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
        return self.find(key_id=key_id)

    def generate_key(self, label: str, key_id: bytes | None = None) -> TokenKey:
        """A P-256 key pair made inside the token; the private half never exists outside."""
        key_id = key_id or secrets.token_bytes(8)
        with self._call("generate key"):
            self._refuse_duplicate(label, key_id)
            params = self._session.create_domain_parameters(
                KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
                local=True)
            params.generate_keypair(store=True, label=label, id=key_id,
                                    private_template=dict(PRIVATE_KEY_POLICY),
                                    public_template=dict(PUBLIC_KEY_POLICY))
            self._keys = None
        return self.find(key_id=key_id)

    def store_certificate(self, key: TokenKey, certificate: x509.Certificate) -> TokenKey:
        if certificate.public_key() != key.public_key:
            raise InvalidInput("the certificate's public key is not this key's", field="cert")
        with self._call("store certificate"):
            for old in list(self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                                       Attribute.ID: key.key_id})):
                old.destroy()
            self._store_certificate(key.label, key.key_id, certificate)
            self._keys = None
        return self.find(key_id=key.key_id)

    def disable_signing(self, key: TokenKey) -> TokenKey:
        """Clear CKA_SIGN on the private key, so the token itself refuses a retired key.

        The key ledger is the authority (CKA_SIGN can be set again); this is the second
        barrier, and it stops a service instance whose view of the ledger is stale.
        """
        with self._call("disable signing"):
            self._private_handle(key.key_id)[Attribute.SIGN] = False
            self._keys = None
        return self.find(key_id=key.key_id)

    def destroy_key(self, key: TokenKey) -> None:
        """Remove a key pair and its certificate: only to undo a generation nobody recorded."""
        with self._call("destroy key"):
            objects = list(self._session.get_objects({Attribute.ID: key.key_id}))
            for obj in objects:
                obj.destroy()
            self._keys = None
            self._handles.pop(key.key_id, None)

    # -- internals -------------------------------------------------------------------------

    @contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Hold the lock and turn PKCS#11 failures into the signer's error families."""
        with self._lock:
            if self._session is None and what != "open":
                raise HsmUnavailable("the token session is not open")
            try:
                yield
            except SignerError:
                raise
            except _BAD_PIN:
                raise HsmLoginFailed(f"token {self.token_label!r} refused the PIN") from None
            except _TRANSIENT as exc:
                raise HsmUnavailable(f"{what} failed: {type(exc).__name__}") from exc
            except pkcs11.PKCS11Error as exc:
                raise HsmUnavailable(f"{what} failed: {type(exc).__name__}") from exc
            except RuntimeError as exc:  # module load failures
                raise HsmUnavailable(f"{what} failed: {exc}") from exc

    def _scan(self) -> dict[bytes, TokenKey]:
        certs: dict[bytes, x509.Certificate] = {}
        for obj in list(self._session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
            certs[bytes(obj[Attribute.ID])] = x509.load_der_x509_certificate(obj[Attribute.VALUE])
        keys: dict[bytes, TokenKey] = {}
        self._handles.clear()
        # PKCS#11 allows one object search per session at a time: materialise each one.
        privates = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY,
                                                   Attribute.KEY_TYPE: KeyType.EC}))
        for priv in privates:
            key_id = bytes(priv[Attribute.ID])
            if priv[Attribute.EXTRACTABLE] or not priv[Attribute.SENSITIVE]:
                log.warning("private key %r is extractable or not sensitive; not used",
                            priv.label)
                continue
            pubs = list(self._session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY,
                                                   Attribute.ID: key_id}))
            if not pubs:
                log.warning("private key %r has no public key object; skipped", priv.label)
                continue
            public_key = _public_key_from_point(pubs[0][Attribute.EC_POINT])
            cert = certs.get(key_id)
            if cert is not None and cert.public_key() != public_key:
                log.warning("certificate stored with key %r is for another key; not used",
                            priv.label)
                continue
            keys[key_id] = TokenKey(label=priv.label, key_id=key_id, public_key=public_key,
                                    certificate=cert, can_sign=bool(priv[Attribute.SIGN]))
            self._handles[key_id] = priv
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
        self._session.create_object({
            Attribute.CLASS: ObjectClass.CERTIFICATE,
            Attribute.CERTIFICATE_TYPE: pkcs11.CertificateType.X_509,
            Attribute.TOKEN: True,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
            Attribute.SUBJECT: parsed.subject.dump(),
            Attribute.ISSUER: parsed.issuer.dump(),
            Attribute.SERIAL_NUMBER: parsed["tbs_certificate"]["serial_number"].dump(),
            Attribute.VALUE: der,
        })


_modules: dict[str, Any] = {}
_modules_lock = threading.Lock()


def _load_module(path: str) -> Any:
    """Load each PKCS#11 module once per process: a second load raises 'already initialized'."""
    with _modules_lock:
        if path not in _modules:
            try:
                _modules[path] = pkcs11.lib(path)
            except RuntimeError as exc:
                raise HsmUnavailable(f"cannot load PKCS#11 module {path}: {exc}") from None
        return _modules[path]


def _matches(k: TokenKey, label: str | None, key_id: bytes | None, ski: bytes | None) -> bool:
    return ((label is None or k.label == label) and (key_id is None or k.key_id == key_id)
            and (ski is None or k.ski == ski))


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
