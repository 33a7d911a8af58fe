"""The device decides the key: map devices to the token key their Supplier cell names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from signer.errors import CertificateRejected, InvalidInput
from signer.gbcs.eui import Eui64
from signer.hsm.token import TokenKey
from signer.registry import devices as device_registry
from signer.service import keygate
from signer.service.refusal import DeviceRefusal
from signer.service.services import Services
from signer.smki.certificate import SmkiCertificate, check_issued_by, check_supplier_signing
from signer.smki.lifecycle import KeyPurpose

# DUIS DeviceIDList holds at most 1,199,999 characters: 50,000 dashed EUI-64s.
MAX_DEVICES = 50_000


@dataclass(frozen=True)
class KeyGroup:
    key: TokenKey
    certificate: SmkiCertificate
    devices: tuple[Eui64, ...]


@dataclass(frozen=True)
class Selection:
    groups: tuple[KeyGroup, ...]
    refused: tuple[DeviceRefusal, ...]


def parse_devices(device_ids: Sequence[str], *, field: str = "device_ids") -> list[Eui64]:
    """Parse a device list: non-empty, bounded, no duplicates, every EUI well-formed."""
    if not device_ids:
        raise InvalidInput("at least one device is needed", field=field)
    if len(device_ids) > MAX_DEVICES:
        raise InvalidInput(
            f"{len(device_ids)} devices exceed the DUIS limit of {MAX_DEVICES}", field=field
        )
    out: list[Eui64] = []
    seen: set[Eui64] = set()
    for i, text in enumerate(device_ids):
        eui = Eui64.parse(text, field=f"{field}[{i}]")
        if eui in seen:
            raise InvalidInput(f"device {eui} is listed twice", field=f"{field}[{i}]")
        seen.add(eui)
        out.append(eui)
    return out


def select_keys(
    svc: Services, devices: Sequence[Eui64], skis: Mapping[Eui64, bytes | None] | None = None
) -> Selection:
    """Group devices by the token key their Supplier digital-signing cell names.

    Each key's certificate is checked against the ARP-signature profile at the time of the
    request; a device whose key fails is refused with the certificate's reason.
    """
    if skis is None:
        skis = device_registry.supplier_signing_skis(svc.db, devices)
    by_ski = _by_ski(svc.token.keys())
    if any(s is not None and s not in by_ski for s in skis.values()):
        by_ski = _by_ski(svc.token.keys(refresh=True))
    now = svc.clock()
    checked: dict[bytes, SmkiCertificate | CertificateRejected] = {}
    gated: dict[bytes, str | None] = {}
    members: dict[bytes, list[Eui64]] = {}
    refused: list[DeviceRefusal] = []
    for eui in devices:
        if eui not in skis:
            refused.append(
                DeviceRefusal(
                    eui, "unknown_device", "no trust anchor cells registered for this device"
                )
            )
            continue
        ski = skis[eui]
        if ski is None:
            refused.append(
                DeviceRefusal(
                    eui,
                    "no_supplier_cell",
                    "the device has no Supplier digital-signing trust anchor cell",
                )
            )
            continue
        key = by_ski.get(ski)
        if key is None:
            refused.append(
                DeviceRefusal(
                    eui,
                    "no_key_for_cell",
                    f"no key on the token has a certificate with SKI {ski.hex()}",
                )
            )
            continue
        if ski not in gated:
            gated[ski] = keygate.refusal(svc, key, KeyPurpose.SUPPLIER_DS)
        if gated[ski] is not None:
            refused.append(DeviceRefusal(eui, "key_not_active", str(gated[ski])))
            continue
        if ski not in checked:
            checked[ski] = _check(svc, key, now)
        outcome = checked[ski]
        if isinstance(outcome, CertificateRejected):
            refused.append(
                DeviceRefusal(eui, "certificate_rejected", f"key {key.label!r}: {outcome}")
            )
            continue
        members.setdefault(ski, []).append(eui)
    groups = []
    for ski, members_of in members.items():
        cert = checked[ski]
        assert isinstance(cert, SmkiCertificate)
        groups.append(KeyGroup(key=by_ski[ski], certificate=cert, devices=tuple(members_of)))
    return Selection(groups=tuple(groups), refused=tuple(refused))


def _by_ski(keys: Sequence[TokenKey]) -> dict[bytes, TokenKey]:
    """Keys by their certificate's SKI; a key that may still sign wins over a disabled one."""
    return {k.ski: k for k in sorted(keys, key=lambda k: k.can_sign) if k.ski is not None}


def _check(svc: Services, key: TokenKey, now: dt.datetime) -> SmkiCertificate | CertificateRejected:
    """The ARP profile check, reused while the certificate and its issuer stay valid."""
    cert, fingerprint = key.certificate, key.fingerprint
    assert cert is not None and fingerprint is not None
    cached = svc.certificate_verdicts.get(fingerprint, now)
    if cached is not None:
        return cached
    try:
        verdict = check_supplier_signing(
            cert, supplier_eui=svc.config.supplier_eui, now=now, issuers=svc.issuers
        )
        start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
        if svc.issuers:
            ca = check_issued_by(cert, svc.issuers, now=now)
            start, end = max(start, ca.not_valid_before_utc), min(end, ca.not_valid_after_utc)
    except CertificateRejected as exc:
        return exc
    svc.certificate_verdicts.put(fingerprint, verdict, start, end)
    return verdict
