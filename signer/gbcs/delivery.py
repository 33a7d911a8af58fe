"""The three shapes in which a Device Manufacturer delivers firmware (spec §2).

All three normalise to one ManufacturerDelivery, so verification and re-signing never care which
shape arrived. The manufacturer signs ``OTA Header || Manufacturer Image``; the Hash is SHA-256
of the Manufacturer Image.
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from functools import cached_property

from cryptography.hazmat.primitives.asymmetric import ec

from signer.errors import FormatError, SignatureInvalid
from signer.gbcs.ota import (
    OFF_TOTAL_IMAGE_SIZE,
    TAIL_LENGTH,
    OtaHeader,
    parse_ota_header,
    parse_upgrade_image,
)
from signer.gbcs.signature import normalise_ecdsa_signature, verify_p256_prehashed

_HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")
_ASCII_WHITESPACE = b" \t\r\n\x0b\x0c"


class DeliveryShape(enum.Enum):
    SEPARATE = "separate"
    GBCS = "gbcs"
    COMBINED = "combined"


@dataclass(frozen=True)
class ManufacturerDelivery:
    """A manufacturer's firmware, whatever shape it came in; ``signature`` is raw r||s."""

    shape: DeliveryShape
    header: OtaHeader
    header_bytes: bytes
    manufacturer_image: bytes
    signature: bytes
    hash_given: bytes | None
    force_replace: bool | None
    with_tail: bool

    @property
    def signed_bytes(self) -> bytes:
        """What the manufacturer signed. Copies the image: prefer ``signed_digest`` for checks."""
        return self.header_bytes + self.manufacturer_image

    @cached_property
    def signed_digest(self) -> bytes:
        """SHA-256 of ``header || image`` computed without concatenating a 10 MB copy."""
        digest = hashlib.sha256(self.header_bytes)
        digest.update(self.manufacturer_image)
        return digest.digest()

    @cached_property
    def computed_hash(self) -> bytes:
        return hashlib.sha256(self.manufacturer_image).digest()

    @property
    def image_id(self) -> str:
        return self.computed_hash.hex()

    def verify(self, public_key: ec.EllipticCurvePublicKey) -> None:
        """Raise SignatureInvalid unless the given Hash (if any) and the signature both match.

        A Hash that disagrees with the image is treated like a failed signature: either way the
        delivery is not what the manufacturer vouched for.
        """
        if self.hash_given is not None and self.hash_given != self.computed_hash:
            raise SignatureInvalid(
                f"manufacturer's Hash {self.hash_given.hex()} does not match the SHA-256 of "
                f"the Manufacturer Image {self.image_id}"
            )
        verify_p256_prehashed(public_key, self.signed_digest, self.signature)


def parse_hash_text(data: bytes | str, field: str = "hash") -> bytes:
    """Accept the Hash as 32 raw bytes or 64 hex characters (surrounding whitespace allowed)."""
    if isinstance(data, str):
        try:
            data = data.encode("ascii")
        except UnicodeEncodeError as exc:
            raise FormatError("hash text is not ASCII hex", field=field, offset=exc.start) from None
    if len(data) == 32:
        return bytes(data)
    text = data.strip(_ASCII_WHITESPACE)
    lead = len(data) - len(data.lstrip(_ASCII_WHITESPACE))
    for index, byte in enumerate(text):
        if byte not in _HEX_DIGITS:
            raise FormatError(
                f"hash is not 32 raw bytes and byte 0x{byte:02X} is not a hex digit",
                field=field,
                offset=lead + index,
            )
    if len(text) != 64:
        raise FormatError(
            f"hash must be 32 raw bytes or 64 hex characters, got {len(text)} hex characters",
            field=field,
            offset=lead,
        )
    return bytes.fromhex(text.decode("ascii"))


def _with_tail(header: OtaHeader, image_length: int, *, field: str) -> bool:
    """Decide from the header's total size whether the finished image gets a signature tail."""
    tailed = header.header_length + image_length + TAIL_LENGTH
    bare = header.header_length + image_length
    if header.total_image_size == tailed:
        return True
    if header.total_image_size == bare:
        return False
    raise FormatError(
        f"total image size in the header is {header.total_image_size}; with a "
        f"{header.header_length}-byte header and a {image_length}-byte Manufacturer Image it "
        f"must be {tailed} (SR 11.1, signature tail) or {bare} (SR 11.4, no tail)",
        field=field,
        offset=OFF_TOTAL_IMAGE_SIZE,
    )


def _require_image(image_length: int, *, field: str, offset: int) -> None:
    if image_length <= 0:
        raise FormatError("Manufacturer Image is empty", field=field, offset=offset)


def from_separate(
    *, ota_header: bytes, manufacturer_image: bytes, signature: bytes, hash: bytes | str
) -> ManufacturerDelivery:
    """Shape 1: header, image, signature and Hash as four separate elements."""
    header = parse_ota_header(ota_header, field="ota_header")
    if len(ota_header) != header.header_length:
        raise FormatError(
            f"OTA header element is {len(ota_header)} bytes but its header length says "
            f"{header.header_length}",
            field="ota_header",
            offset=min(len(ota_header), header.header_length),
        )
    _require_image(len(manufacturer_image), field="manufacturer_image", offset=0)
    with_tail = _with_tail(header, len(manufacturer_image), field="ota_header")
    return ManufacturerDelivery(
        shape=DeliveryShape.SEPARATE,
        header=header,
        header_bytes=bytes(ota_header),
        manufacturer_image=bytes(manufacturer_image),
        signature=normalise_ecdsa_signature(signature, field="signature"),
        hash_given=parse_hash_text(hash, "hash"),
        force_replace=None,
        with_tail=with_tail,
    )


def from_gbcs(upgrade_image: bytes, *, hash: bytes | str | None = None) -> ManufacturerDelivery:
    """Shape 2: a finished SR 11.1 image whose signature slot holds the manufacturer's r||s."""
    image = parse_upgrade_image(upgrade_image, with_tail=True, field="upgrade_image")
    if image.signature is None:  # pragma: no cover - with_tail=True always yields a tail
        raise FormatError("upgrade image has no signature tail", field="upgrade_image")
    return ManufacturerDelivery(
        shape=DeliveryShape.GBCS,
        header=image.header,
        header_bytes=image.header_bytes,
        manufacturer_image=image.manufacturer_image,
        signature=image.signature,
        hash_given=None if hash is None else parse_hash_text(hash, "hash"),
        force_replace=image.force_replace,
        with_tail=True,
    )


def from_combined(
    *, header_and_image: bytes, signature: bytes, hash: bytes | str
) -> ManufacturerDelivery:
    """Shape 3: one ``header || image`` file plus separate signature and Hash."""
    header = parse_ota_header(header_and_image, field="header_and_image")
    header_length = header.header_length
    image_length = len(header_and_image) - header_length
    _require_image(image_length, field="header_and_image", offset=header_length)
    with_tail = _with_tail(header, image_length, field="header_and_image")
    return ManufacturerDelivery(
        shape=DeliveryShape.COMBINED,
        header=header,
        header_bytes=bytes(header_and_image[:header_length]),
        manufacturer_image=bytes(header_and_image[header_length:]),
        signature=normalise_ecdsa_signature(signature, field="signature"),
        hash_given=parse_hash_text(hash, "hash"),
        force_replace=None,
        with_tail=with_tail,
    )
