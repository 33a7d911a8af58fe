"""Resign: the Manufacturer Image signed with the key each target device trusts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.errors import (
    DevicesRefused,
    HsmUnavailable,
    InvalidInput,
    NotFound,
    PolicyRefusal,
    SignatureInvalid,
)
from signer.gbcs.ota import build_upgrade_image
from signer.gbcs.signature import verify_p256_prehashed
from signer.registry import library
from signer.service.caches import VerifiedImage
from signer.service.context import Services
from signer.service.keyselect import KeyGroup, parse_devices, select_keys
from signer.service.refusal import Refusal

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class SignedUpgradeImage:
    upgrade_image: bytes
    group: KeyGroup


@dataclass(frozen=True)
class ResignResult:
    image_id: str
    images: tuple[SignedUpgradeImage, ...]
    refused: tuple[Refusal, ...]


def verified_image(svc: Services, image_id: str, *, field: str = "image_id") -> VerifiedImage:
    """The library image, only if it passed verification."""
    text = image_id.strip().lower()
    if len(text) != 64 or not _HEX.issuperset(text):
        raise InvalidInput("an image ID is 64 hex digits (SHA-256 of the Manufacturer Image)",
                           field=field)
    image = svc.images.get(text, lambda: library.get(svc.db, text))
    if image is None:
        if library.exists(svc.db, text):
            raise PolicyRefusal(f"image {text} did not pass manufacturer verification")
        raise NotFound(f"image {text} is not in the firmware library")
    return image


def force_replace_for(image: VerifiedImage, requested: bool | None) -> bool:
    """The caller's choice, else the byte the manufacturer delivered, else 0x00."""
    if requested is not None:
        return requested
    return bool(image.record.force_replace)


def resign(svc: Services, image_id: str, device_ids: Sequence[str],
           force_replace: bool | None) -> ResignResult:
    devices = parse_devices(device_ids)
    image = verified_image(svc, image_id)
    if not image.record.with_tail:
        raise PolicyRefusal(f"image {image.record.image_id} is a tail-less SR 11.4 image: it "
                            "carries no ARP signature to replace")
    selection = select_keys(svc, devices)
    if not selection.groups:
        raise DevicesRefused("every device was refused",
                             [r.as_tuple() for r in selection.refused])
    force = force_replace_for(image, force_replace)
    images = tuple(sign_for_group(svc, image, group, force) for group in selection.groups)
    return ResignResult(image_id=image.record.image_id, images=images,
                        refused=selection.refused)


def sign_for_group(svc: Services, image: VerifiedImage, group: KeyGroup,
                   force_replace: bool) -> SignedUpgradeImage:
    """Sign the Manufacturer Image in the token and check it with the key's certificate.

    A signature that does not verify means the token misbehaved: nothing is returned.
    """
    signature = svc.token.sign_digest(group.key, image.digest)
    try:
        verify_p256_prehashed(group.certificate.public_key, image.digest, signature)
    except SignatureInvalid:
        raise HsmUnavailable(f"key {group.key.label!r} produced a signature that does not "
                             "verify with its certificate") from None
    data = build_upgrade_image(image.record.header_bytes, image.manufacturer_image,
                               force_replace=force_replace, signature=signature)
    return SignedUpgradeImage(upgrade_image=data, group=group)
