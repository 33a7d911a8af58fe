"""BuildDUIS: the signed SR 11.1 / 11.4 request that carries an upgrade image to the DCC."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from signer.cpl.model import file_version_text
from signer.duis.request import (
    MAX_FIRMWARE_IMAGE,
    RequestId,
    build_update_firmware,
    check_firmware_version,
)
from signer.duis.xmldsig import sign_document
from signer.errors import (
    CertificateRejected,
    ConfigurationError,
    DevicesRefused,
    InvalidInput,
    NotFound,
    PolicyRefused,
    SignatureInvalid,
)
from signer.gbcs.eui import Eui64
from signer.gbcs.ota import TAIL_LENGTH, parse_upgrade_image
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.signature import verify_p256_prehashed
from signer.hsm.token import TokenKey
from signer.registry import counters
from signer.service import signing
from signer.service.caches import VerifiedImage
from signer.service.devices import parse_devices
from signer.service.images import force_replace_for, verified_image
from signer.service.keys.naming import find_key
from signer.service.keys.selection import KeyGroup, signing_refusal
from signer.service.pathways import screen, select_eligible, target_entry
from signer.service.refusal import DeviceRefusal
from signer.service.resign import sign_for_group
from signer.service.schema_check import schema_check
from signer.service.services import Services
from signer.service.signing import SigningBatch
from signer.smki.certificate import SmkiCertificate, check_xml_signing, parse_smki
from signer.smki.lifecycle import KeyPurpose

SERVICES = ("11.1", "11.4")
#: Images from this size (bytes) are validated on the schema's thread: a thread hand-off
#: costs about 0.1 ms, validating a 1 MB document 4 ms
VALIDATE_ASIDE = 1 << 20


@dataclass(frozen=True)
class DuisResult:
    document: bytes
    request_id: RequestId
    devices: tuple[Eui64, ...]
    refused: tuple[DeviceRefusal, ...]


def build_duis(
    svc: Services,
    *,
    image_id: str | None,
    upgrade_image: bytes | None,
    device_ids: Sequence[str],
    firmware_version: str,
    service: str,
    force_replace: bool | None = None,
) -> DuisResult:
    from signer.service.campaigns.policy import check_direct

    check_direct(svc, len(device_ids), "BuildDUIS")
    with svc.trust.pinned(svc.db):  # one view of the CPL, certificates and ledger per call
        return _build_duis(
            svc,
            image_id=image_id,
            upgrade_image=upgrade_image,
            device_ids=device_ids,
            firmware_version=firmware_version,
            service=service,
            force_replace=force_replace,
        )


def _build_duis(
    svc: Services,
    *,
    image_id: str | None,
    upgrade_image: bytes | None,
    device_ids: Sequence[str],
    firmware_version: str,
    service: str,
    force_replace: bool | None,
) -> DuisResult:
    service = service or "11.1"
    if service not in SERVICES:
        raise InvalidInput(
            f"service {service[:20]!r} is not one of {', '.join(SERVICES)}",
            field="service_reference",
        )
    check_firmware_version(firmware_version)
    if (image_id is None) == (upgrade_image is None):
        raise InvalidInput("give exactly one of image_id or upgrade_image", field="image")
    if upgrade_image is not None and len(upgrade_image) > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(
            f"{len(upgrade_image)} bytes exceed the DUIS limit of {MAX_FIRMWARE_IMAGE}",
            field="upgrade_image",
        )
    devices = parse_devices(device_ids)
    image = _library_image(svc, image_id, upgrade_image, with_tail=service == "11.1")
    from signer.service.campaigns.policy import check_direct, recheck_direct

    # over the window, for the image the service resolved (also from an upgrade image)
    check_direct(svc, len(device_ids), "BuildDUIS", image.record.image_id)
    _check_version_of_image(svc, image, firmware_version)
    with signing.batch(svc) as signer:
        if service == "11.4":
            data, accepted, refused = _ppmid(svc, image, devices)
        else:
            data, accepted, refused = _esme(
                svc, signer, image, upgrade_image, devices, force_replace
            )
        document, request_id = sign_update_request(
            svc,
            signer,
            image=image,
            firmware_image=data,
            devices=accepted,
            firmware_version=firmware_version,
            service=service,
        )
        recheck_direct(svc, signer, "BuildDUIS", image.record.image_id)  # as it commits
    return DuisResult(
        document=document, request_id=request_id, devices=tuple(accepted), refused=tuple(refused)
    )


def sign_update_request(
    svc: Services,
    signer: SigningBatch,
    *,
    image: VerifiedImage,
    firmware_image: bytes,
    devices: Sequence[Eui64],
    firmware_version: str,
    service: str,
) -> tuple[bytes, RequestId]:
    """The SR 11.1 / 11.4 request carrying ``firmware_image`` to ``devices`` (screened
    already), with a fresh RequestID, schema-checked and signed in ``signer``'s batch:
    BuildDUIS's and a campaign's."""
    xml_key, xml_cert = xml_signing_key(svc)
    counter = counters.reserve(svc.db, svc.config.supplier_eui)
    request_id = RequestId(
        originator=svc.config.supplier_eui, target=svc.config.dcc_eui, counter=counter
    )
    root = build_update_firmware(
        request_id=request_id,
        service=service,
        firmware_image=firmware_image,
        firmware_version=firmware_version,
        devices=list(devices),
    )
    # a large document is validated while it is canonicalised (service/schema_check.py)
    check = None
    if svc.schema is not None:
        check = schema_check(svc.schema, aside=len(firmware_image) >= VALIDATE_ASIDE)
    document = sign_document(
        root,
        check=check,
        sign_digest=signer.signer(
            xml_key,
            purpose=KeyPurpose.XML_SIGN,
            operation=signing.DUIS_SIGN,
            image_id=image.record.image_id,
            device_count=len(devices),
            request_id=request_id,
            details={"service": service},
        ),
        issuer_name=xml_cert.issuer_name,
        serial=xml_cert.serial,
    )
    return document, request_id


def xml_signing_key(svc: Services) -> tuple[TokenKey, SmkiCertificate]:
    """The configured XML-signing key, or the token's one active key certified for it.

    A missing or unusable key is the service's configuration, not the caller's input.
    """
    now = svc.clock()
    cached = svc.xml_key
    if (
        cached is not None
        and cached[1].not_before <= now <= cached[1].not_after
        and signing_refusal(svc, cached[0], KeyPurpose.XML_SIGN) is None
    ):
        return cached
    svc.xml_key = None
    name = svc.config.xml_signing_key
    try:
        if name is not None:
            key = find_key(svc.token, name, field="supplier.xml_signing_key")
        else:
            key = _the_xml_key(svc)
        reason = signing_refusal(svc, key, KeyPurpose.XML_SIGN)
        if reason is not None:
            raise ConfigurationError(reason)
        if key.certificate is None:
            raise ConfigurationError(f"XML-signing key {key.label!r} has no certificate")
        svc.xml_key = key, check_xml_signing(key.certificate, eui=svc.config.supplier_eui, now=now)
        return svc.xml_key
    except (NotFound, InvalidInput, CertificateRejected, ConfigurationError) as exc:
        raise ConfigurationError(f"no usable XML-signing key: {exc}") from None


def _the_xml_key(svc: Services) -> TokenKey:
    candidates = []
    for key in svc.token.keys(refresh=True):
        if key.certificate is None or signing_refusal(svc, key, KeyPurpose.XML_SIGN):
            continue
        try:
            smki = parse_smki(key.certificate)
        except CertificateRejected:
            continue
        if smki.role == RemotePartyRole.XML_SIGNING and smki.eui == svc.config.supplier_eui:
            candidates.append(key)
    if len(candidates) != 1:
        raise ConfigurationError(
            f"{len(candidates)} active XML-signing keys for "
            f"{svc.config.supplier_eui} on the token; name one with "
            "supplier.xml_signing_key"
        )
    return candidates[0]


def library_image(
    svc: Services, image_id: str, *, with_tail: bool, firmware_version: str
) -> VerifiedImage:
    """The verified image an update names, fit for a DUIS request of this kind, and the
    FirmwareVersion that names its firmware (BuildDUIS's checks, for a campaign's plan)."""
    check_firmware_version(firmware_version)
    image = _library_image(svc, image_id, None, with_tail=with_tail)
    _check_version_of_image(svc, image, firmware_version)
    return image


def _library_image(
    svc: Services, image_id: str | None, upgrade_image: bytes | None, *, with_tail: bool
) -> VerifiedImage:
    """The verified library image named by ID, or the one an upgrade image carries."""
    if image_id is not None:
        image = verified_image(svc, image_id)
    else:
        assert upgrade_image is not None
        parsed = parse_upgrade_image(upgrade_image, with_tail=with_tail, field="upgrade_image")
        image = verified_image(svc, parsed.image_id, field="upgrade_image")
        if parsed.header_bytes != image.record.header_bytes:
            raise PolicyRefused("the upgrade image's OTA header differs from the verified one")
    if image.record.with_tail != with_tail:
        wanted = (
            "an SR 11.1 image with a signature tail"
            if with_tail
            else "a tail-less SR 11.4 PPMID image"
        )
        raise PolicyRefused(f"image {image.record.image_id} is not {wanted}")
    size = len(image.record.header_bytes) + len(image.manufacturer_image)
    if size + (TAIL_LENGTH if with_tail else 0) > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(
            f"the upgrade image exceeds the DUIS limit of {MAX_FIRMWARE_IMAGE} bytes", field="image"
        )
    return image


def _check_version_of_image(svc: Services, image: VerifiedImage, firmware_version: str) -> None:
    """FirmwareVersion must name the firmware the request carries: the CPL entry's version
    (the OTA file version in 8 hex digits), or with no entry the header's file version in
    that notation. A request naming another version would misinform the DCC and the
    device's Supplier about what is installed."""
    entry = target_entry(svc, image)
    if entry is not None:
        expected = entry.firmware_version.strip().removeprefix("0x").removeprefix("0X")
        source = f"CPL entry {entry.entry_id}"
    else:
        expected = file_version_text(image.record.file_version)
        source = "the OTA header's file version (no CPL entry records this image)"
    if firmware_version != expected:
        raise InvalidInput(
            f"FirmwareVersion {firmware_version!r} does not match the image: {source} "
            f"gives {expected[:16]!r}",
            field="firmware_version",
        )


def _ppmid(
    svc: Services, image: VerifiedImage, devices: list[Eui64]
) -> tuple[bytes, list[Eui64], list[DeviceRefusal]]:
    """SR 11.4 images carry no ARP signature: header || image goes as verified.

    No Supplier cell is consulted, but every device must be registered.
    """
    screening = screen(svc, image, devices)
    accepted, refused = screening.accepted, screening.refused
    if not accepted:
        raise DevicesRefused("every device was refused", [r.as_tuple() for r in refused])
    return image.record.header_bytes + image.manufacturer_image, accepted, refused


def _esme(
    svc: Services,
    signer: SigningBatch,
    image: VerifiedImage,
    upgrade_image: bytes | None,
    devices: list[Eui64],
    force_replace: bool | None,
) -> tuple[bytes, list[Eui64], list[DeviceRefusal]]:
    selection = select_eligible(svc, image, devices)
    refused = list(selection.refused)
    if not selection.groups:
        raise DevicesRefused("every device was refused", [r.as_tuple() for r in refused])
    if upgrade_image is None:
        if len(selection.groups) > 1:
            names = ", ".join(f"{g.key.label} ({len(g.devices)} devices)" for g in selection.groups)
            raise PolicyRefused(
                f"the devices trust {len(selection.groups)} different keys "
                f"({names}); one DUIS request carries one image: call Resign "
                "and send each upgrade image it returns with its devices"
            )
        group = selection.groups[0]
        signed = sign_for_group(signer, image, group, force_replace_for(image, force_replace))
        return signed.upgrade_image, list(group.devices), refused
    signature = upgrade_image[-64:]
    signer_group = _signing_group(selection.groups, image.digest, signature)
    if signer_group is None:
        raise PolicyRefused(
            "the upgrade image's ARP signature was not made by a usable key "
            "that these devices trust; re-sign it with Resign"
        )
    for g in selection.groups:
        if g is not signer_group:
            refused.extend(
                DeviceRefusal(
                    d,
                    "cell_names_other_key",
                    f"the device trusts key {g.key.label!r}, not "
                    f"{signer_group.key.label!r} that signed this image",
                )
                for d in g.devices
            )
    return upgrade_image, list(signer_group.devices), refused


def _signing_group(groups: Sequence[KeyGroup], digest: bytes, signature: bytes) -> KeyGroup | None:
    for g in groups:
        try:
            verify_p256_prehashed(g.certificate.public_key, digest, signature)
        except SignatureInvalid:
            continue
        return g
    return None
