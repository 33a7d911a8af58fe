"""Resign: the Manufacturer Image signed with the key each target device trusts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.errors import (
    DevicesRefused,
    HsmUnavailable,
    PolicyRefused,
    SignatureInvalid,
)
from signer.gbcs.ota import build_upgrade_image
from signer.gbcs.signature import verify_p256_prehashed
from signer.service import signing
from signer.service.caches import VerifiedImage
from signer.service.devices import parse_devices
from signer.service.images import force_replace_for, verified_image
from signer.service.keys.selection import KeyGroup
from signer.service.pathways import select_eligible
from signer.service.refusal import DeviceRefusal
from signer.service.services import Services
from signer.service.signing import SigningBatch
from signer.smki.lifecycle import KeyPurpose


@dataclass(frozen=True)
class SignedUpgradeImage:
    upgrade_image: bytes
    group: KeyGroup


@dataclass(frozen=True)
class ResignResult:
    image_id: str
    images: tuple[SignedUpgradeImage, ...]
    refused: tuple[DeviceRefusal, ...]


def resign(
    svc: Services, image_id: str, device_ids: Sequence[str], force_replace: bool | None
) -> ResignResult:
    from signer.service.campaigns.policy import check_direct

    check_direct(svc, len(device_ids), "Resign")
    with svc.trust.pinned(svc.db):  # one view of the CPL, certificates and ledger per call
        return _resign(svc, image_id, device_ids, force_replace)


def _resign(
    svc: Services, image_id: str, device_ids: Sequence[str], force_replace: bool | None
) -> ResignResult:
    devices = parse_devices(device_ids)
    image = verified_image(svc, image_id)
    from signer.service.campaigns.policy import check_direct, recheck_direct

    check_direct(svc, len(device_ids), "Resign", image.record.image_id)  # over the window
    if not image.record.with_tail:
        raise PolicyRefused(
            f"image {image.record.image_id} is a tail-less SR 11.4 image: it "
            "carries no ARP signature to replace"
        )
    selection = select_eligible(svc, image, devices)
    if not selection.groups:
        raise DevicesRefused("every device was refused", [r.as_tuple() for r in selection.refused])
    force = force_replace_for(image, force_replace)
    with signing.batch(svc) as signer:
        images = tuple(sign_for_group(signer, image, group, force) for group in selection.groups)
        recheck_direct(svc, signer, "Resign", image.record.image_id)  # as it commits
    return ResignResult(image_id=image.record.image_id, images=images, refused=selection.refused)


def sign_for_group(
    signer: SigningBatch, image: VerifiedImage, group: KeyGroup, force_replace: bool
) -> SignedUpgradeImage:
    """Sign the Manufacturer Image in the token and check it with the key's certificate.

    A signature that does not verify means the token misbehaved: nothing is returned.
    """
    signature = signer.sign(
        group.key,
        image.digest,
        purpose=KeyPurpose.SUPPLIER_DS,
        operation=signing.RESIGN,
        image_id=image.record.image_id,
        device_count=len(group.devices),
        details={"force_replace": force_replace},
    )
    try:
        verify_p256_prehashed(group.certificate.public_key, image.digest, signature)
    except SignatureInvalid:
        raise HsmUnavailable(
            f"key {group.key.label!r} produced a signature that does not "
            "verify with its certificate"
        ) from None
    data = build_upgrade_image(
        image.record.header_bytes,
        image.manufacturer_image,
        force_replace=force_replace,
        signature=signature,
    )
    return SignedUpgradeImage(upgrade_image=data, group=group)
