"""Resign: the Manufacturer Image signed with the key each target device trusts."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from signer.errors import DevicesRefused, InvalidInput, NotFound, PolicyRefusal
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import build_upgrade_image
from signer.gbcs.signature import verify_p256_prehashed
from signer.registry import library
from signer.registry.library import LibraryImage
from signer.service.context import Services
from signer.service.keyselect import KeyGroup, Refusal, parse_devices, select_keys


@dataclass(frozen=True)
class SignedUpgradeImage:
    upgrade_image: bytes
    group: KeyGroup


@dataclass(frozen=True)
class ResignResult:
    image_id: str
    images: tuple[SignedUpgradeImage, ...]
    refused: tuple[Refusal, ...]


def verified_image(svc: Services, image_id: str) -> LibraryImage:
    """The library image, only if it passed verification."""
    text = image_id.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise InvalidInput("an image ID is 64 hex digits (SHA-256 of the Manufacturer Image)",
                           field="image_id")
    image = library.get(svc.db, text)
    if image is None:
        raise NotFound(f"image {text} is not in the firmware library")
    if not image.verified or image.manufacturer_image is None:
        raise PolicyRefusal(f"image {text} did not pass manufacturer verification")
    return image


def resign(svc: Services, image_id: str, device_ids: Sequence[str],
           force_replace: bool) -> ResignResult:
    devices = parse_devices(device_ids)
    image = verified_image(svc, image_id)
    if not image.with_tail:
        raise PolicyRefusal(f"image {image.image_id} is a tail-less SR 11.4 image: it carries "
                            "no ARP signature to replace")
    selection = select_keys(svc, devices)
    if not selection.groups:
        raise DevicesRefused("every device was refused",
                             [r.as_tuple() for r in selection.refused])
    images = tuple(sign_for_group(svc, image, group, force_replace)
                   for group in selection.groups)
    return ResignResult(image_id=image.image_id, images=images, refused=selection.refused)


def sign_for_group(svc: Services, image: LibraryImage, group: KeyGroup,
                   force_replace: bool) -> SignedUpgradeImage:
    """Sign the Manufacturer Image in the token and check the result before returning it."""
    assert image.manufacturer_image is not None
    digest = hashlib.sha256(image.manufacturer_image).digest()
    signature = svc.token.sign_digest(group.key, digest)
    verify_p256_prehashed(group.key.public_key, digest, signature)
    data = build_upgrade_image(image.header_bytes, image.manufacturer_image,
                               force_replace=force_replace, signature=signature)
    return SignedUpgradeImage(upgrade_image=data, group=group)


def devices_of(groups: Sequence[KeyGroup]) -> list[Eui64]:
    return [d for g in groups for d in g.devices]
