"""The device decides the key: each device gets the token key its Supplier cell names.

A device's Supplier digital-signing trust anchor cell names a key by its certificate's SKI;
that key then passes the gate every signing key passes at signing time (in the ledger,
active, right purpose). A key the ledger does not know never signs: nothing on the token is
trusted by default.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from signer.errors import CertificateRejected
from signer.gbcs.eui import Eui64
from signer.hsm.token import TokenKey
from signer.registry import devices as device_registry
from signer.registry.devices import DeviceFacts
from signer.service.refusal import DeviceRefusal, ambiguous_supplier_cells
from signer.service.services import Services
from signer.smki.certificate import SmkiCertificate, check_issued_by, check_supplier_signing
from signer.smki.lifecycle import KeyPurpose, KeyState


@dataclass(frozen=True)
class KeyGroup:
    key: TokenKey
    certificate: SmkiCertificate
    devices: tuple[Eui64, ...]


@dataclass(frozen=True)
class Selection:
    groups: tuple[KeyGroup, ...]
    refused: tuple[DeviceRefusal, ...]


def signing_refusal(svc: Services, key: TokenKey, purpose: KeyPurpose) -> str | None:
    """Why this key may not sign for this purpose now, or None if it may."""
    if not key.can_sign:
        return f"key {key.label!r} is disabled on the token (CKA_SIGN false: retired)"
    entry = svc.trust.current(svc.db).key_state(svc.token.token_label, key.key_id)
    if entry is None:
        return (
            f"key {key.label!r} is not in the key ledger; a security team activates it "
            "with `signer keys activate`"
        )
    state, recorded = entry
    if state is not KeyState.ACTIVE:
        return f"key {key.label!r} is {state}"
    if recorded is not purpose:
        return f"key {key.label!r} is for {recorded}, not {purpose}"
    return None


@dataclass(frozen=True)
class KeyChoice:
    """The key a Supplier cell's SKI names, and its certificate as the ARP profile checked it."""

    key: TokenKey
    certificate: SmkiCertificate


class KeyChooser:
    """``select_keys``'s decision for each SKI devices' Supplier cells name, made once per
    SKI (it depends on the SKI only): the ``KeyChoice``, or why no key may sign for such a
    device, as (reason, detail) of its ``DeviceRefusal``. ``skis``: those the devices name
    (a SKI no token key has makes the token's key list re-read once). A device whose cells
    name several SKIs never comes here: its callers refuse it first
    (``ambiguous_supplier_cells``), as no one SKI is its own."""

    def __init__(self, svc: Services, skis: Iterable[bytes | None]) -> None:
        by_ski = _by_ski(svc.token.keys())
        if any(s is not None and s not in by_ski for s in skis):
            by_ski = _by_ski(svc.token.keys(refresh=True))
        self._svc, self._by_ski, self._now = svc, by_ski, svc.clock()
        self._decided: dict[bytes | None, KeyChoice | tuple[str, str]] = {}

    def decide(self, ski: bytes | None) -> KeyChoice | tuple[str, str]:
        decided = self._decided.get(ski)
        if decided is None:
            decided = self._decided[ski] = self._decide(ski)
        return decided

    def _decide(self, ski: bytes | None) -> KeyChoice | tuple[str, str]:
        if ski is None:
            return (
                "no_supplier_cell",
                "the device has no Supplier digital-signing trust anchor cell",
            )
        key = self._by_ski.get(ski)
        if key is None:
            return (
                "no_key_for_cell",
                f"no key on the token has a certificate with SKI {ski.hex()}",
            )
        gate = signing_refusal(self._svc, key, KeyPurpose.SUPPLIER_DS)
        if gate is not None:
            return ("key_not_active", gate)
        outcome = _check(self._svc, key, self._now)
        if isinstance(outcome, CertificateRejected):
            return ("certificate_rejected", f"key {key.label!r}: {outcome}")
        return KeyChoice(key, outcome)


def select_keys(
    svc: Services,
    devices: Sequence[Eui64],
    facts: Mapping[Eui64, DeviceFacts] | None = None,
) -> Selection:
    """Group devices by the token key their Supplier digital-signing cell names.

    Each key's certificate is checked against the ARP-signature profile at the time of the
    request; a device whose key fails is refused with the certificate's reason, and one
    whose cells name several keys (``DeviceFacts.ambiguous_skis``) is refused as
    ``ambiguous_supplier_cells``. ``facts``: the devices' registry facts, read if not given.
    """
    if facts is None:
        facts = device_registry.device_facts(svc.db, devices)
    chooser = KeyChooser(svc, [f.supplier_ski for f in facts.values() if not f.ambiguous_skis])
    members: dict[bytes, tuple[KeyChoice, list[Eui64]]] = {}
    refused: list[DeviceRefusal] = []
    for eui in devices:
        f = facts.get(eui)
        if f is None:
            refused.append(
                DeviceRefusal(
                    eui, "unknown_device", "no trust anchor cells registered for this device"
                )
            )
            continue
        if f.ambiguous_skis:
            refused.append(ambiguous_supplier_cells(eui, f.ambiguous_skis))
            continue
        ski = f.supplier_ski
        choice = chooser.decide(ski)
        if isinstance(choice, KeyChoice):
            assert ski is not None
            members.setdefault(ski, (choice, []))[1].append(eui)
        else:
            refused.append(DeviceRefusal(eui, *choice))
    groups = tuple(
        KeyGroup(key=c.key, certificate=c.certificate, devices=tuple(m))
        for c, m in members.values()
    )
    return Selection(groups=groups, refused=tuple(refused))


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
