"""VerifyManufacturer: is this delivery what the manufacturer signed?"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from signer.cpl.model import ota_matches_entry
from signer.duis.request import MAX_FIRMWARE_IMAGE
from signer.errors import InvalidInput, SignatureInvalid
from signer.gbcs.delivery import ManufacturerDelivery
from signer.gbcs.ota import OtaHeader
from signer.gbcs.signature import verify_p256_prehashed
from signer.metrics import VERIFICATIONS
from signer.registry import cpl, library, manufacturers
from signer.service.manufacturers import revocation_line
from signer.service.services import Services


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Verdict:
    verified: bool
    checks: tuple[CheckResult, ...]
    header: OtaHeader
    image_id: str
    cpl_entry_id: str | None = None


def verify_manufacturer(svc: Services, delivery: ManufacturerDelivery) -> Verdict:
    """Run every check, record the verdict in the library, return it.

    Malformed input never gets here (the parsers raise); a check that fails is a normal
    verdict with ``verified = False``.
    """
    header = delivery.header
    if header.total_image_size > MAX_FIRMWARE_IMAGE:
        raise InvalidInput(
            f"the upgrade image would have {header.total_image_size} bytes, over "
            f"the DUIS limit of {MAX_FIRMWARE_IMAGE}",
            field="manufacturer_image",
        )
    now = svc.clock()
    signature_check, fingerprint = _signature_check(svc, delivery, now)
    checks = [
        CheckResult(
            "structure",
            True,
            f"{delivery.shape.value} delivery: header {header.header_length} bytes, "
            f"Manufacturer Image {len(delivery.manufacturer_image)} bytes, total image "
            f"size {header.total_image_size} "
            f"({'with' if delivery.with_tail else 'without'} signature tail)",
        ),
        signature_check,
        _hash_check(delivery),
    ]
    cpl_check, entry_id = _cpl_check(svc, delivery)
    checks.append(cpl_check)
    for c in checks:
        VERIFICATIONS.labels(check=c.name, result="pass" if c.passed else "fail").inc()
    advisory = svc.config.cpl_mode == "advisory"
    verified = all(c.passed for c in checks if not (advisory and c.name == "cpl"))
    svc_record = library.LibraryImage(
        image_id=delivery.image_id,
        manufacturer_code=header.manufacturer_code,
        image_type=header.image_type,
        file_version=header.file_version,
        header_bytes=delivery.header_bytes,
        with_tail=delivery.with_tail,
        force_replace=delivery.force_replace,
        delivery_shape=delivery.shape.value,
        verified=verified,
        verdict_json=json.dumps([asdict(c) for c in checks]),
        manufacturer_image=delivery.manufacturer_image,
        verified_at=now,
        manufacturer_fingerprint=fingerprint,
    )
    library.record(svc.db, svc_record)
    return Verdict(
        verified=verified,
        checks=tuple(checks),
        header=header,
        image_id=delivery.image_id,
        cpl_entry_id=entry_id,
    )


def _signature_check(
    svc: Services, delivery: ManufacturerDelivery, now: dt.datetime
) -> tuple[CheckResult, str | None]:
    """The check, and the fingerprint of the certificate that verified the delivery.

    A revoked certificate is not tried: the check names it and why it was revoked.
    """
    code = delivery.header.manufacturer_code
    certs = manufacturers.certificates(svc.db, code)
    if not certs:
        return CheckResult(
            "manufacturer_signature",
            False,
            f"no certificate registered for manufacturer code {code:04X}",
        ), None
    problems = []
    for registered in certs:
        if registered.revoked(now):
            problems.append(revocation_line(registered))
            continue
        cert = registered.certificate
        name = cert.subject.rfc4514_string() or f"serial {cert.serial_number}"
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            problems.append(f"{name}: not valid at {now:%Y-%m-%dT%H:%M:%SZ}")
            continue
        key = cert.public_key()
        if not isinstance(key, ec.EllipticCurvePublicKey):
            problems.append(f"{name}: not an EC key")
            continue
        try:
            verify_p256_prehashed(key, delivery.signed_digest, delivery.signature)
        except SignatureInvalid as exc:
            problems.append(f"{name}: {exc}")
            continue
        return CheckResult(
            "manufacturer_signature",
            True,
            f"verifies over OTA Header || Manufacturer Image with {_cert_id(cert)}",
        ), registered.fingerprint
    return CheckResult(
        "manufacturer_signature",
        False,
        f"no registered certificate for {code:04X} verifies it: " + "; ".join(problems),
    ), None


def _cpl_check(svc: Services, delivery: ManufacturerDelivery) -> tuple[CheckResult, str | None]:
    """SECMP0009 BR02/BR03: the image is on the CPL and its header agrees with the entry."""
    h = delivery.header
    entries = cpl.for_image(svc.db, delivery.computed_hash)
    mode = "" if svc.config.cpl_mode == "strict" else "advisory: "
    if not entries:
        return CheckResult(
            "cpl",
            False,
            f"{mode}the Manufacturer Image hash {delivery.image_id} is not recorded on the CPL",
        ), None
    problems = []
    for entry in entries:
        mismatches = ota_matches_entry(h.manufacturer_code, h.image_type, h.file_version, entry)
        if not mismatches:
            return CheckResult(
                "cpl",
                True,
                f"CPL entry {entry.entry_id} ({entry.model}, firmware {entry.firmware_version})",
            ), entry.entry_id
        problems.append(f"entry {entry.entry_id}: " + "; ".join(mismatches))
    return CheckResult(
        "cpl", False, f"{mode}the OTA header disagrees with the CPL: " + " | ".join(problems)
    ), None


def _hash_check(delivery: ManufacturerDelivery) -> CheckResult:
    computed = delivery.computed_hash.hex()
    if delivery.hash_given is None:
        return CheckResult("hash", True, f"no hash delivered; computed {computed}")
    given = delivery.hash_given.hex()
    if given == computed:
        return CheckResult("hash", True, f"given hash equals computed {computed}")
    return CheckResult(
        "hash", False, f"given {given} but the Manufacturer Image hashes to {computed}"
    )


def _cert_id(cert: x509.Certificate) -> str:
    return f"{cert.subject.rfc4514_string()} (serial {cert.serial_number})"
