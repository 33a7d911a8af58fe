"""BuildDUIS: the signed SR 11.1 / 11.4 request that carries an upgrade image to the DCC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.duis.request import (
    MAX_FIRMWARE_IMAGE,
    RequestId,
    build_update_firmware,
    check_firmware_version,
)
from signer.duis.xmldsig import sign_document
from signer.errors import (
    CertificateRejected,
    DevicesRefused,
    InvalidInput,
    PolicyRefusal,
    SignatureInvalid,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import parse_upgrade_image
from signer.gbcs.signature import verify_p256_prehashed
from signer.hsm.token import TokenKey
from signer.registry import counters
from signer.registry.library import LibraryImage
from signer.service.context import Services
from signer.service.keyselect import KeyGroup, Refusal, parse_devices, select_keys
from signer.service.resign import sign_for_group, verified_image
from signer.smki.certificate import SmkiCertificate, check_xml_signing, parse_smki

SERVICES = ("11.1", "11.4")


@dataclass(frozen=True)
class DuisResult:
    document: bytes
    request_id: RequestId
    devices: tuple[Eui64, ...]
    refused: tuple[Refusal, ...]


def build_duis(svc: Services, *, image_id: str | None, upgrade_image: bytes | None,
               device_ids: Sequence[str], firmware_version: str, service: str,
               force_replace: bool = False) -> DuisResult:
    service = service or "11.1"
    if service not in SERVICES:
        raise InvalidInput(f"service {service!r} is not one of {', '.join(SERVICES)}",
                           field="service_reference")
    check_firmware_version(firmware_version)
    if (image_id is None) == (upgrade_image is None):
        raise InvalidInput("give exactly one of image_id or upgrade_image", field="image")
    if upgrade_image is not None and len(upgrade_image) > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(f"{len(upgrade_image)} bytes exceed the DUIS limit of "
                           f"{MAX_FIRMWARE_IMAGE}", field="upgrade_image")
    devices = parse_devices(device_ids)
    refused: list[Refusal] = []
    if service == "11.4":
        data, accepted = _ppmid_image(svc, image_id, upgrade_image), devices
    else:
        data, accepted, refused = _esme_image(svc, image_id, upgrade_image, devices, force_replace)
    if len(data) > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(f"the upgrade image has {len(data)} bytes, over the DUIS limit of "
                           f"{MAX_FIRMWARE_IMAGE}", field="image")
    xml_key, xml_cert = xml_signing_key(svc)
    counter = counters.reserve(svc.db, svc.config.supplier_eui)
    request_id = RequestId(originator=svc.config.supplier_eui, target=svc.config.dcc_eui,
                           counter=counter)
    root = build_update_firmware(request_id=request_id, service=service, firmware_image=data,
                                 firmware_version=firmware_version, devices=accepted)
    if svc.schema is not None:
        svc.schema.validate(root)
    document = sign_document(root, sign_digest=lambda d: svc.token.sign_digest(xml_key, d),
                             issuer_name=xml_cert.issuer_name, serial=xml_cert.serial)
    return DuisResult(document=document, request_id=request_id, devices=tuple(accepted),
                      refused=tuple(refused))


def xml_signing_key(svc: Services) -> tuple[TokenKey, SmkiCertificate]:
    """The configured XML-signing key, or the token's one key certified for XML signing."""
    now = svc.clock()
    label = svc.config.xml_signing_key
    if label is not None:
        key = svc.token.find(label=label)
        if key.certificate is None:
            raise PolicyRefusal(f"XML-signing key {label!r} has no certificate")
        return key, check_xml_signing(key.certificate, eui=svc.config.supplier_eui, now=now)
    candidates = []
    for key in svc.token.keys():
        if key.certificate is None:
            continue
        try:
            smki = parse_smki(key.certificate)
        except CertificateRejected:
            continue
        if smki.role == 0x87 and smki.eui == svc.config.supplier_eui:
            candidates.append(key)
    if len(candidates) != 1:
        raise PolicyRefusal(f"{len(candidates)} XML-signing keys for {svc.config.supplier_eui} "
                            "on the token; name one with supplier.xml_signing_key")
    key = candidates[0]
    assert key.certificate is not None
    return key, check_xml_signing(key.certificate, eui=svc.config.supplier_eui, now=now)


def _esme_image(svc: Services, image_id: str | None, upgrade_image: bytes | None,
                devices: list[Eui64], force_replace: bool
                ) -> tuple[bytes, list[Eui64], list[Refusal]]:
    selection = select_keys(svc, devices)
    refused = list(selection.refused)
    if image_id is not None:
        image = verified_image(svc, image_id)
        _require_tail(image)
        if not selection.groups:
            raise DevicesRefused("every device was refused", [r.as_tuple() for r in refused])
        if len(selection.groups) > 1:
            names = ", ".join(f"{g.key.label} ({len(g.devices)} devices)"
                              for g in selection.groups)
            raise PolicyRefusal(f"the devices trust {len(selection.groups)} different keys "
                                f"({names}); one DUIS request carries one image: call Resign "
                                "and send each upgrade image it returns with its devices")
        group = selection.groups[0]
        signed = sign_for_group(svc, image, group, force_replace)
        return signed.upgrade_image, list(group.devices), refused
    assert upgrade_image is not None
    parsed = parse_upgrade_image(upgrade_image, with_tail=True, field="upgrade_image")
    image = verified_image(svc, parsed.image_id)
    if parsed.header_bytes != image.header_bytes:
        raise PolicyRefusal("the upgrade image's OTA header differs from the verified one")
    assert parsed.signature is not None
    signer_group = _signing_group(selection.groups, parsed.image_id, parsed.signature)
    if signer_group is None:
        raise PolicyRefusal("the upgrade image's ARP signature was not made by any usable "
                            "key on this token for these devices; re-sign it with Resign")
    for g in selection.groups:
        if g is not signer_group:
            refused.extend(Refusal(d, "cell_names_other_key",
                                   f"the device trusts key {g.key.label!r}, not "
                                   f"{signer_group.key.label!r} that signed this image")
                           for d in g.devices)
    return upgrade_image, list(signer_group.devices), refused


def _signing_group(groups: Sequence[KeyGroup], image_id: str,
                   signature: bytes) -> KeyGroup | None:
    digest = bytes.fromhex(image_id)
    for g in groups:
        try:
            verify_p256_prehashed(g.key.public_key, digest, signature)
        except SignatureInvalid:
            continue
        return g
    return None


def _ppmid_image(svc: Services, image_id: str | None, upgrade_image: bytes | None) -> bytes:
    """SR 11.4 images carry no ARP signature: send the verified header || image as is."""
    if image_id is not None:
        image = verified_image(svc, image_id)
    else:
        assert upgrade_image is not None
        parsed = parse_upgrade_image(upgrade_image, with_tail=False, field="upgrade_image")
        image = verified_image(svc, parsed.image_id)
        if parsed.header_bytes != image.header_bytes:
            raise PolicyRefusal("the upgrade image's OTA header differs from the verified one")
    if image.with_tail:
        raise PolicyRefusal(f"image {image.image_id} has a signature tail: it is an SR 11.1 "
                            "image, not an SR 11.4 PPMID image")
    assert image.manufacturer_image is not None
    return image.header_bytes + image.manufacturer_image


def _require_tail(image: LibraryImage) -> None:
    if not image.with_tail:
        raise PolicyRefusal(f"image {image.image_id} is a tail-less SR 11.4 image; use 11.4")

