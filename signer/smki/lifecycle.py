"""What a Supplier signing key is for and where it is in its life. Pure: no I/O, no clock.

A key's purpose fixes the SMKI profile its certificate must pass (spec §4); its state says
whether the service may sign with it. The device's trust anchor cell still chooses among
the active keys: several may be active at once during a rotation.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence

from cryptography import x509

from signer.errors import InvalidInput, PolicyRefused
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.smki.certificate import (
    SmkiCertificate,
    check_supplier_signing,
    check_xml_signing,
    parse_smki,
)


class KeyPurpose(enum.StrEnum):
    SUPPLIER_DS = "supplier-ds"  # ARP signatures over OTA upgrade images and CS06 pre-commands
    XML_SIGN = "xml-sign"  # XMLDSig over the DUIS requests sent to the DCC

    @property
    def role(self) -> RemotePartyRole:
        return _ROLES[self]

    @classmethod
    def parse(cls, text: str, *, field: str = "purpose") -> KeyPurpose:
        try:
            return cls(text)
        except ValueError:
            raise InvalidInput(
                f"unknown purpose {text!r}; one of {', '.join(p.value for p in cls)}", field=field
            ) from None


_ROLES = {
    KeyPurpose.SUPPLIER_DS: RemotePartyRole.SUPPLIER,
    KeyPurpose.XML_SIGN: RemotePartyRole.XML_SIGNING,
}


class KeyState(enum.StrEnum):
    PENDING = "pending"  # made or imported; may sign its own CSR, nothing else
    ACTIVE = "active"  # certificate installed and checked; signs for the devices that trust it
    RETIRED = "retired"  # never signs again


# The only moves a key can make; retirement is final.
TRANSITIONS: dict[KeyState, frozenset[KeyState]] = {
    KeyState.PENDING: frozenset({KeyState.ACTIVE, KeyState.RETIRED}),
    KeyState.ACTIVE: frozenset({KeyState.RETIRED}),
    KeyState.RETIRED: frozenset(),
}


def check_transition(label: str, current: KeyState, target: KeyState) -> None:
    if target not in TRANSITIONS[current]:
        raise PolicyRefused(f"key {label!r} is {current}; it cannot become {target}")


def purpose_of(cert: x509.Certificate) -> KeyPurpose | None:
    """The purpose a certificate's role implies, or None for a role the service never signs as."""
    try:
        role = parse_smki(cert).role
    except PolicyRefused:
        return None
    for purpose, r in _ROLES.items():
        if r == role:
            return purpose
    return None


def check_certificate_for(
    purpose: KeyPurpose,
    cert: x509.Certificate,
    *,
    supplier_eui: Eui64,
    now: dt.datetime,
    issuers: Sequence[x509.Certificate] = (),
) -> SmkiCertificate:
    """The SMKI profile a certificate must pass for a key of this purpose; raises why not."""
    if purpose is KeyPurpose.SUPPLIER_DS:
        return check_supplier_signing(cert, supplier_eui=supplier_eui, now=now, issuers=issuers)
    return check_xml_signing(cert, eui=supplier_eui, now=now)
