"""Administrative use cases behind the CLI: keys, manufacturers (`signer.service.manufacturers`),
devices."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.orm import Session

from signer.caller import current
from signer.duis.response import gbcs_payload_of
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.trust_anchor import (
    DeviceCredentials,
    decode_payload_text,
    parse_security_credentials_response,
)
from signer.hsm.token import Token, TokenKey
from signer.registry import audit, devices
from signer.registry.auditchain import AuditEntry
from signer.registry.db import Database
from signer.registry.devices import DeviceRecord
from signer.service import dcc
from signer.service.dcc import Origin
from signer.service.manufacturers import (
    add_manufacturer as add_manufacturer,
)
from signer.service.manufacturers import (
    add_manufacturer_certificate as add_manufacturer_certificate,
)
from signer.service.manufacturers import (
    list_manufacturers as list_manufacturers,
)
from signer.service.manufacturers import (
    revoke_manufacturer_certificate as revoke_manufacturer_certificate,
)
from signer.smki.certificate import check_key_identifier, load_certificate

DEVICE_IMPORT = "device-import"  # an SR 6.24.1 response replaced a device's cells


def import_key(token: Token, label: str, key_pem: bytes, cert_pem: bytes) -> TokenKey:
    """Import an existing (test) key and its certificate as non-extractable and sensitive."""
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise InvalidInput(
            "encrypted private keys are not supported; decrypt it first", field="key"
        ) from None
    except ValueError as exc:
        raise InvalidInput(f"not a PEM private key: {exc}", field="key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise InvalidInput("not an EC private key", field="key")
    cert = load_certificate(cert_pem, field="cert")
    if _has_ski(cert):
        check_key_identifier(cert)  # its SKI becomes the CKA_ID: it must be this key's
    return token.import_key(label, key, cert)


def _has_ski(cert: x509.Certificate) -> bool:
    try:
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    except x509.ExtensionNotFound:
        return False
    return True


def parse_device_credentials(
    data: bytes,
    *,
    dcc_certificates: Sequence[x509.Certificate],
    now: dt.datetime,
    accept_unauthenticated: bool = False,
) -> tuple[DeviceCredentials, Origin]:
    """A 6.24.1 response: a DUIS response XML carrying it that a configured DCC certificate
    signed, or (only with ``accept_unauthenticated``) the raw payload as hex or base64."""
    if data.lstrip().startswith(b"<"):
        root, origin = dcc.authenticated(data, dcc_certificates, now)
        payload = gbcs_payload_of(root)
    else:
        origin = dcc.accept_raw(
            accept_unauthenticated,
            field="credentials",
            flag="--unauthenticated-gbcs",
            what="a device import",
        )
        payload = decode_payload_text(data)
    return parse_security_credentials_response(payload), origin


def import_device(
    db: Database,
    data: bytes,
    now: dt.datetime,
    *,
    dcc_certificates: Sequence[x509.Certificate],
    accept_unauthenticated: bool = False,
) -> tuple[DeviceCredentials, bool]:
    """Replace a device's trust anchor cells, in one transaction with its audit record
    (``device-import``: who, the device, whether the DCC's signature vouched for it)."""
    return import_devices(
        db,
        [data],
        now,
        dcc_certificates=dcc_certificates,
        accept_unauthenticated=accept_unauthenticated,
    )[0]


def import_devices(
    db: Database,
    datas: Sequence[bytes],
    now: dt.datetime,
    *,
    dcc_certificates: Sequence[x509.Certificate],
    accept_unauthenticated: bool = False,
) -> list[tuple[DeviceCredentials, bool]]:
    """Several devices' responses, all or nothing: every one is parsed and authenticated
    first, then all are written in one transaction with their audit records."""
    parsed = [
        parse_device_credentials(
            data,
            dcc_certificates=dcc_certificates,
            now=now,
            accept_unauthenticated=accept_unauthenticated,
        )
        for data in datas
    ]
    caller = current()
    entries = []
    for creds, origin in parsed:
        cell = creds.supplier_signing_cell()
        entries.append(
            AuditEntry(
                at=now,
                client=caller.identity,
                call_id=caller.request_id,
                method=caller.method,
                operation=DEVICE_IMPORT,
                details={
                    "device": str(creds.device),
                    "cells": len(creds.cells),
                    "supplier_ski": cell.ski.hex() if cell else None,
                    **origin.details(),
                },
            )
        )
    created: list[bool] = []

    def write_all(s: Session) -> None:  # may run again if its transaction is retried
        created[:] = [devices.write_credentials(s, creds, now) for creds, _ in parsed]

    audit.record(db, entries, [write_all])
    return [(creds, new) for (creds, _), new in zip(parsed, created, strict=True)]


def show_device(db: Database, eui_text: str) -> DeviceRecord | None:
    return devices.get_device(db, Eui64.parse(eui_text, field="eui"))
