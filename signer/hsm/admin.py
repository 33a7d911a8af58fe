"""Key administration inside the token: create, certify, retire and destroy key pairs.

Each function is one operation on a live session, run by ``Token`` through the session's
"recover once" door; each leaves the key cache to be rescanned. Key policies: signer.hsm.keys.
"""

from __future__ import annotations

import secrets

import pkcs11
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.util.ec import (
    decode_ec_private_key,
    decode_ec_public_key,
    encode_named_curve_parameters,
)
from pkcs11.util.x509 import decode_x509_certificate

from signer.errors import InvalidInput
from signer.hsm.keys import PRIVATE_KEY_POLICY, PUBLIC_KEY_POLICY, KeyCache, TokenKey


class KeyImport:
    """A P-256 key and its certificate, checked and encoded for import before any HSM call."""

    def __init__(
        self, label: str, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise InvalidInput("only P-256 keys are supported", field="key")
        if certificate.public_key() != private_key.public_key():
            raise InvalidInput("the certificate does not belong to this key", field="cert")
        self.label = label
        self.certificate = certificate
        self.key_id = _ski_or_random(certificate)
        self._sec1 = private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self._spki = private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def create(self, session: pkcs11.Session, cache: KeyCache) -> None:
        """Create the key pair as non-extractable and sensitive, with its certificate."""
        refuse_duplicate(session, cache, self.label, self.key_id)
        priv = decode_ec_private_key(self._sec1)
        priv.update(PRIVATE_KEY_POLICY)
        priv.update({Attribute.LABEL: self.label, Attribute.ID: self.key_id})
        pub = decode_ec_public_key(self._spki)
        pub.update(PUBLIC_KEY_POLICY)
        pub.update({Attribute.LABEL: self.label, Attribute.ID: self.key_id})
        session.create_object(priv)
        session.create_object(pub)
        _store_certificate(session, self.label, self.key_id, self.certificate)
        cache.keys = None


def generate(session: pkcs11.Session, cache: KeyCache, label: str, key_id: bytes) -> None:
    """A P-256 key pair made inside the token: the private half never exists outside."""
    refuse_duplicate(session, cache, label, key_id)
    params = session.create_domain_parameters(
        KeyType.EC,
        {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
        local=True,
    )
    params.generate_keypair(
        store=True,
        label=label,
        id=key_id,
        private_template=dict(PRIVATE_KEY_POLICY),
        public_template=dict(PUBLIC_KEY_POLICY),
    )
    cache.keys = None


def replace_certificate(
    session: pkcs11.Session, cache: KeyCache, key: TokenKey, certificate: x509.Certificate
) -> None:
    """Destroy the key's stored certificates and store this one."""
    for old in list(
        session.get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE, Attribute.ID: key.key_id})
    ):
        old.destroy()
    _store_certificate(session, key.label, key.key_id, certificate)
    cache.keys = None


def disable_signing(session: pkcs11.Session, cache: KeyCache, key: TokenKey) -> None:
    """Clear CKA_SIGN on the private key (why: ``Token.disable_signing``)."""
    cache.handle(session, key.key_id)[Attribute.SIGN] = False
    cache.keys = None


def destroy(session: pkcs11.Session, cache: KeyCache, key: TokenKey) -> None:
    """Destroy every object with the key's CKA_ID: the pair and its certificate."""
    objects = list(session.get_objects({Attribute.ID: key.key_id}))
    for obj in objects:
        obj.destroy()
    cache.drop(key.key_id)


def refuse_duplicate(session: pkcs11.Session, cache: KeyCache, label: str, key_id: bytes) -> None:
    """No second key with this label or CKA_ID (a fresh scan, not the cached view)."""
    for k in cache.scan(session).values():
        if k.label == label:
            raise InvalidInput(f"a key labelled {label!r} already exists", field="label")
        if k.key_id == key_id:
            raise InvalidInput(f"a key with CKA_ID {key_id.hex()} already exists", field="id")


def new_key_id() -> bytes:
    return secrets.token_bytes(8)


def _store_certificate(
    session: pkcs11.Session, label: str, key_id: bytes, certificate: x509.Certificate
) -> None:
    template = decode_x509_certificate(certificate.public_bytes(serialization.Encoding.DER))
    template.update({Attribute.TOKEN: True, Attribute.LABEL: label, Attribute.ID: key_id})
    session.create_object(template)


def _ski_or_random(certificate: x509.Certificate) -> bytes:
    try:
        ext = certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        return bytes(ext.value.digest)
    except x509.ExtensionNotFound:
        return new_key_id()
