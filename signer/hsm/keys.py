"""Key pairs on the token: what a key is to the service, the policies it must meet, the scan.

Why the scan skips keys and checks the token after an empty search: docs/hsm.md ("Keys").
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, cast

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, ObjectClass

from signer.errors import NotFound

log = logging.getLogger(__name__)
RESCAN_INTERVAL = 2.0  # seconds

# Usages a signing key must and must not have: SoftHSM's defaults are permissive.
PRIVATE_KEY_POLICY: dict[Attribute, Any] = {
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
PUBLIC_KEY_POLICY: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.VERIFY: True,
    Attribute.ENCRYPT: False,
    Attribute.WRAP: False,
}
# Usages beyond signing that make a private key untrustworthy, by the name reports give them.
OTHER_USAGES = (
    ("decrypt", Attribute.DECRYPT),
    ("unwrap", Attribute.UNWRAP),
    ("derive", Attribute.DERIVE),
    ("sign-recover", Attribute.SIGN_RECOVER),
)


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

    def matches(
        self, label: str | None = None, key_id: bytes | None = None, ski: bytes | None = None
    ) -> bool:
        """Whether this key has every one of the given label, CKA_ID and SKI."""
        return (
            (label is None or self.label == label)
            and (key_id is None or self.key_id == key_id)
            and (ski is None or self.ski == ski)
        )


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

    @classmethod
    def read(cls, obj: pkcs11.PrivateKey) -> KeyProtection:
        """The protection attributes of one private key object (one PKCS#11 call each)."""
        return cls(
            label=obj.label,
            extractable=bool(obj[Attribute.EXTRACTABLE]),
            sensitive=bool(obj[Attribute.SENSITIVE]),
            always_sensitive=bool(obj[Attribute.ALWAYS_SENSITIVE]),
            never_extractable=bool(obj[Attribute.NEVER_EXTRACTABLE]),
            key_id=bytes(obj[Attribute.ID]),
            local=bool(obj[Attribute.LOCAL]),
            other_usages=tuple(name for name, attr in OTHER_USAGES if bool(obj[attr])),
        )

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


def private_keys(session: pkcs11.Session) -> list[pkcs11.PrivateKey]:
    """Every private key object on the token, materialised (one search at a time)."""
    objects = session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY})
    return [cast(pkcs11.PrivateKey, obj) for obj in objects]


class KeyCache:
    """The token's usable key pairs as last scanned, and the private key handle of each.

    Handles belong to one session: the session's recovery drops them (``forget``) whenever
    it drops the session, and ``rescan`` resolves them again by CKA_ID.
    """

    def __init__(self) -> None:
        self.keys: dict[bytes, TokenKey] | None = None  # replaced whole, never mutated
        self.scanned_at = -RESCAN_INTERVAL
        self._handles: dict[bytes, pkcs11.PrivateKey] = {}

    # -- what the session's recovery needs (signer.hsm.session.SessionObjects) ----------

    @property
    def held(self) -> int:
        return len(self._handles)

    def rescan(self, session: pkcs11.Session) -> int:
        self.keys = self.scan(session)
        return len(self.keys)

    def forget(self) -> None:
        self.keys = None
        self._handles.clear()

    # -- reads ----------------------------------------------------------------------------

    def stale(self) -> bool:
        """Whether a refresh may rescan: at most one every ``RESCAN_INTERVAL`` seconds."""
        return time.monotonic() - self.scanned_at >= RESCAN_INTERVAL

    def first_handle(self) -> pkcs11.PrivateKey | None:
        return next(iter(self._handles.values()), None)

    def handle(self, session: pkcs11.Session, key_id: bytes) -> pkcs11.PrivateKey:
        """The private key handle for a CKA_ID, rescanning once if it is not known."""
        if key_id not in self._handles:
            self.keys = self.scan(session)
        try:
            return self._handles[key_id]
        except KeyError:
            raise NotFound(f"key {key_id.hex()} is no longer on the token") from None

    def drop(self, key_id: bytes) -> None:
        """Forget one key (destroyed): the next read rescans."""
        self.keys = None
        self._handles.pop(key_id, None)

    def scan(self, session: pkcs11.Session) -> dict[bytes, TokenKey]:
        """Every usable EC key pair on the token; refreshes the handles, returns the keys."""
        certs: dict[bytes, x509.Certificate] = {}
        for obj in list(session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE})):
            certs[bytes(obj[Attribute.ID])] = x509.load_der_x509_certificate(obj[Attribute.VALUE])
        keys: dict[bytes, TokenKey] = {}
        self._handles.clear()
        # PKCS#11 allows one object search per session at a time: materialise each one.
        privates = list(
            session.get_objects(
                {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC}
            )
        )
        for obj in privates:
            priv = cast(pkcs11.PrivateKey, obj)
            key_id = bytes(priv[Attribute.ID])
            if priv[Attribute.EXTRACTABLE] or not priv[Attribute.SENSITIVE]:
                log.warning("private key %r is extractable or not sensitive; not used", priv.label)
                continue
            pubs = list(
                session.get_objects({Attribute.CLASS: ObjectClass.PUBLIC_KEY, Attribute.ID: key_id})
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
        session.token.slot.get_token()
        self.scanned_at = time.monotonic()
        return keys


def _public_key_from_point(ec_point: bytes) -> ec.EllipticCurvePublicKey:
    from asn1crypto.core import OctetString

    point = bytes(ec_point)
    if point[:1] == b"\x04" and len(point) != 65:  # DER-wrapped OCTET STRING
        point = OctetString.load(point).native
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
