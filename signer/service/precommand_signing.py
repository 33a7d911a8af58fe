"""Signing CS06 pre-commands that passed every check: the CS06 signatures of one key, then
the DUIS SignedPreCommand requests around them, each phase over the whole group."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.duis.activation import build_signed_pre_command
from signer.duis.request import RequestId
from signer.duis.xmldsig import PendingSignature, prepare_signature
from signer.errors import HsmUnavailable, SignatureInvalid
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import PreCommand, pre_command_digest, signed_pre_command
from signer.gbcs.signature import verify_p256_prehashed
from signer.registry.activations import IssuedActivation
from signer.service import signing
from signer.service.dcc import Origin
from signer.service.duis import xml_signing_key
from signer.service.keys.selection import KeyGroup
from signer.service.services import Services
from signer.service.signing import SigningBatch
from signer.smki.lifecycle import KeyPurpose


@dataclass(frozen=True)
class SignedPreCommand:
    device: Eui64
    request_id: RequestId
    signed_command: bytes
    document: bytes


@dataclass(frozen=True)
class Claimed:
    """A pre-command that passed every check and whose claim this call holds."""

    index: int
    pc: PreCommand
    issued: IssuedActivation
    request_id: RequestId
    group: KeyGroup


def sign_claimed(
    svc: Services, signer: SigningBatch, items: Sequence[Claimed], origin: Origin
) -> list[SignedPreCommand]:
    """Pre-commands of one key and one image: their CS06 signatures, then the
    SignedPreCommand requests around them, each phase over all of them (the token signs
    back to back; see activation.stream_activations).

    The first CS06 signature made with each key handle the token looks up (each chunk of
    ``SIGN_CHUNK``, each retry) is verified with the key's certificate: every handle that
    signed is proven to be the key the devices' cells name before anything of the batch is
    released. The others are not (a verification costs as much as a signature; a faulty
    signature is refused by the meter, which checks every command).
    """
    group, image_id = items[0].group, items[0].issued.image_id
    request_ids = [c.request_id for c in items]

    def check(digest: bytes, signature: bytes) -> None:
        try:
            verify_p256_prehashed(group.certificate.public_key, digest, signature)
        except SignatureInvalid:
            raise HsmUnavailable(
                f"key {group.key.label!r} produced a signature that does "
                "not verify with its certificate"
            ) from None

    raw = signer.sign_all(
        group.key,
        [pre_command_digest(c.pc) for c in items],
        request_ids,
        purpose=KeyPurpose.SUPPLIER_DS,
        operation=signing.PRECOMMAND_SIGN,
        image_id=image_id,
        device_count=1,
        details=origin.details(),
        check=check,
    )
    commands = [signed_pre_command(c.pc, r) for c, r in zip(items, raw, strict=True)]
    xml_key, xml_cert = xml_signing_key(svc)
    pending: list[PendingSignature] = []
    for c, command in zip(items, commands, strict=True):
        root = build_signed_pre_command(
            request_id=c.request_id, signed_command=command, parsed=c.pc
        )
        if svc.schema is not None:
            svc.schema.validate(root)
        pending.append(
            prepare_signature(root, issuer_name=xml_cert.issuer_name, serial=xml_cert.serial)
        )
    xml_raw = signer.sign_all(
        xml_key,
        [p.digest for p in pending],
        request_ids,
        purpose=KeyPurpose.XML_SIGN,
        operation=signing.PRECOMMAND_DUIS_SIGN,
        image_id=image_id,
        device_count=1,
        details=origin.details(),
    )
    return [
        SignedPreCommand(
            device=c.issued.device,
            request_id=c.request_id,
            signed_command=command,
            document=p.finish(sig),
        )
        for c, command, p, sig in zip(items, commands, pending, xml_raw, strict=True)
    ]
