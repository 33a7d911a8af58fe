"""Verified library images: the only Manufacturer Images the service will sign."""

from __future__ import annotations

from signer.errors import InvalidInput, NotFound, PolicyRefused
from signer.registry import library
from signer.service.caches import VerifiedImage
from signer.service.manufacturers import image_refusal
from signer.service.services import Services

_HEX = frozenset("0123456789abcdef")


def verified_image(svc: Services, image_id: str, *, field: str = "image_id") -> VerifiedImage:
    """The library image, only if it passed verification and the manufacturer certificate
    that verified it is not revoked (as of the call's trust snapshot: a revocation counts
    from the next call on)."""
    text = image_id.strip().lower()
    if len(text) != 64 or not _HEX.issuperset(text):
        raise InvalidInput(
            "an image ID is 64 hex digits (SHA-256 of the Manufacturer Image)", field=field
        )
    image = svc.images.get(text, lambda: library.get(svc.db, text))
    if image is None:
        if library.exists(svc.db, text):
            raise PolicyRefused(f"image {text} did not pass manufacturer verification")
        raise NotFound(f"image {text} is not in the firmware library")
    trusted = svc.trust.current(svc.db)
    refusal = image_refusal(trusted, svc.db, text, image.record.manufacturer_code, svc.clock())
    if refusal is not None:
        raise PolicyRefused(refusal)
    return image


def force_replace_for(image: VerifiedImage, requested: bool | None) -> bool:
    """The caller's choice, else the byte the manufacturer delivered, else 0x00."""
    if requested is not None:
        return requested
    return bool(image.record.force_replace)
