"""What security teams and back-office systems may see of the keys: public data only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509

from signer.errors import CertificateRejected, PolicyRefused
from signer.gbcs.eui import Eui64
from signer.registry import devices as device_registry
from signer.registry import keys as ledger
from signer.service.keys.naming import locate
from signer.service.services import Services
from signer.smki.certificate import compact_name, parse_smki
from signer.smki.lifecycle import KeyPurpose, purpose_of

UNREGISTERED = "unregistered"  # on the token, unknown to the ledger: never signs


@dataclass(frozen=True)
class KeyView:
    label: str
    key_id: bytes
    ski: bytes | None
    purpose: str  # a KeyPurpose value, or "" when neither the ledger nor the role says
    state: str  # a KeyState value or UNREGISTERED
    on_token: bool
    can_sign: bool
    devices: int  # registered devices naming the SKI in their Supplier digital-signing cell
    certificate: x509.Certificate | None
    role: int | None = None
    eui: Eui64 | None = None
    serial: int | None = None
    issuer: str = ""
    not_before: dt.datetime | None = None
    not_after: dt.datetime | None = None
    certificate_note: str = ""  # why the certificate is not SMKI, when it is not

    def days_left(self, now: dt.datetime) -> int | None:
        if self.not_after is None:
            return None
        return (self.not_after - now).days


def list_keys(svc: Services) -> list[KeyView]:
    """Every key on the token and every ledger key, joined; ledger keys gone from the token
    are listed too (an operator must see that)."""
    records = ledger.all_keys(svc.db, svc.token.token_label)
    counts = device_registry.trusting_counts(svc.db)
    views = []
    seen = set()
    for key in svc.token.keys(refresh=True):
        seen.add(key.key_id)
        record = records.get(key.key_id)
        purpose = record.purpose.value if record else _purpose_text(key.certificate)
        views.append(
            _view(
                key.label,
                key.key_id,
                key.certificate,
                key.ski,
                purpose,
                record.state.value if record else UNREGISTERED,
                True,
                key.can_sign,
                counts,
            )
        )
    for key_id, record in records.items():
        if key_id not in seen:
            views.append(
                KeyView(
                    label=record.label,
                    key_id=key_id,
                    ski=record.ski,
                    purpose=record.purpose.value,
                    state=record.state.value,
                    on_token=False,
                    can_sign=False,
                    devices=counts.get(record.ski, 0) if record.ski else 0,
                    certificate=None,
                    serial=_int(record.certificate_serial),
                )
            )
    return sorted(views, key=lambda v: (v.purpose, v.label))


@dataclass(frozen=True)
class RotationReport:
    old: KeyView
    new: KeyView
    still_on_old: list[Eui64]  # to receive the new certificate through SR 6.15.1
    on_new: int


def rotation_report(svc: Services, old_name: str, new_name: str) -> RotationReport:
    """The devices whose Supplier cell still names the old key, for planning their updates."""
    old, new = locate(svc, old_name, field="from"), locate(svc, new_name, field="to")
    views = {v.key_id: v for v in list_keys(svc)}
    old_view, new_view = views[old.key_id], views[new.key_id]
    for which, view in (("from", old_view), ("to", new_view)):
        if view.purpose != KeyPurpose.SUPPLIER_DS.value:
            raise PolicyRefused(
                f"--{which} key {view.label!r} is not a Supplier "
                "digital-signing key: devices do not name it"
            )
        if view.ski is None:
            raise PolicyRefused(
                f"--{which} key {view.label!r} has no certificate, so no SKI a device could name"
            )
    if old.key_id == new.key_id:
        raise PolicyRefused("--from and --to name the same key")
    assert old_view.ski is not None and new_view.ski is not None
    return RotationReport(
        old_view,
        new_view,
        device_registry.devices_trusting(svc.db, old_view.ski),
        len(device_registry.devices_trusting(svc.db, new_view.ski)),
    )


def _view(
    label: str,
    key_id: bytes,
    cert: x509.Certificate | None,
    ski: bytes | None,
    purpose: str,
    state: str,
    on_token: bool,
    can_sign: bool,
    counts: dict[bytes, int],
) -> KeyView:
    """``ski`` is the certificate's as the token read it: shown even when not SMKI."""
    if cert is None:
        return KeyView(
            label=label,
            key_id=key_id,
            ski=None,
            purpose=purpose,
            state=state,
            on_token=on_token,
            can_sign=can_sign,
            devices=0,
            certificate=None,
        )
    try:
        smki = parse_smki(cert)
    except CertificateRejected as exc:
        return KeyView(
            label=label,
            key_id=key_id,
            ski=ski,
            purpose=purpose,
            state=state,
            on_token=on_token,
            can_sign=can_sign,
            devices=counts.get(ski, 0) if ski else 0,
            certificate=cert,
            serial=cert.serial_number,
            issuer=compact_name(cert.issuer),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            certificate_note=f"not SMKI: {exc}",
        )
    return KeyView(
        label=label,
        key_id=key_id,
        ski=smki.ski,
        purpose=purpose,
        state=state,
        on_token=on_token,
        can_sign=can_sign,
        devices=counts.get(smki.ski, 0),
        certificate=cert,
        role=smki.role,
        eui=smki.eui,
        serial=smki.serial,
        issuer=smki.issuer_name,
        not_before=smki.not_before,
        not_after=smki.not_after,
    )


def _purpose_text(cert: x509.Certificate | None) -> str:
    purpose = purpose_of(cert) if cert is not None else None
    return purpose.value if purpose else ""


def _int(text: str | None) -> int | None:
    return int(text) if text else None
