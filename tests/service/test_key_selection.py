"""The device decides the key: groups, refusals and their reasons, in-process on the token."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from lxml import etree

from signer.clock import fixed_clock
from signer.config import load_config
from signer.duis.request import build_update_firmware
from signer.errors import DevicesRefused, InvalidInput, NotFound, PolicyRefused
from signer.gbcs import delivery as deliveries
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.hsm.token import Token, TokenKey
from signer.registry import devices
from signer.service import admin, signing
from signer.service import duis as duis_module
from signer.service.duis import build_duis
from signer.service.resign import resign
from signer.service.services import Services, open_services
from signer.service.verify import verify_manufacturer
from signer.smki.certificate import smki_extensions, smki_name
from signer.smki.issuance import issue_certificate
from signer.smki.lifecycle import KeyPurpose
from tests.support import audit_rows
from tests.support.constants import MANUFACTURER_CODE, PINNED, RTDS_DEVICE, SUPPLIER_EUI
from tests.support.devices import credentials
from tests.support.duis_documents import stray_element
from tests.support.hsm import Hsm, ensure_vector_keys
from tests.support.independent import ota_header, raw_signature_verifies, split_upgrade_image
from tests.support.ledger import activate, force_active
from tests.support.manufacturer import Manufacturer
from tests.support.server import write_config

SECOND = "00-DB-12-34-56-78-90-B2"
NO_SUPPLIER_CELL = "00-DB-12-34-56-78-90-B3"
WRONG_ROLE = "00-DB-12-34-56-78-90-B4"


def _key_with_cert(token: Token, label: str, role: RemotePartyRole) -> TokenKey:
    """A token key certified by a test CA for ``role`` (made once per session)."""
    try:
        return token.find(label=label)
    except NotFound:
        key = token.generate_key(label)
        cert = issue_certificate(
            subject=smki_name(int(role), Eui64.parse(SUPPLIER_EUI), label),
            issuer=smki_name(int(RemotePartyRole.ISSUING_AUTHORITY), None, "TEST"),
            public_key=key.public_key,
            serial=x509.random_serial_number(),
            not_before=PINNED - dt.timedelta(days=30),
            not_after=PINNED + dt.timedelta(days=30),
            extensions=smki_extensions(public_key=key.public_key, key_usage="digitalSignature"),
            sign_digest=lambda digest: token.sign_digest(key, digest),
        )
        return token.store_certificate(key, cert)


@pytest.fixture(scope="module")
def svc(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Services]:
    tmp = tmp_path_factory.mktemp("selection")
    token = hsm.token()
    ensure_vector_keys(token, vectors)
    second = _key_with_cert(token, "supplier-two", RemotePartyRole.SUPPLIER)
    wrong = _key_with_cert(token, "network-operator", RemotePartyRole.NETWORK_OPERATOR)
    config = load_config(
        write_config(
            tmp / "signer.toml",
            hsm,
            f"sqlite:///{tmp / 'db'}",
            schema_dir=vectors / "xsd",
            pinned=None,
        )
    )
    services = open_services(config, clock=fixed_clock(PINNED), token=token)
    admin.add_manufacturer(
        services.db, f"{MANUFACTURER_CODE:04X}", manufacturer.cert_pem.read_bytes(), PINNED
    )
    admin.import_device(
        services.db,
        (vectors / "trust_anchor/CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_bytes(),
        PINNED,
        dcc_certificates=(),
        accept_unauthenticated=True,
    )
    assert second.ski is not None and wrong.ski is not None
    activate(services, "z1-supplier-ds", "xml-sign", "supplier-two")
    # a Network Operator certificate on a key entered as Supplier: the certificate check
    # at signing time, not the ledger, must refuse it
    force_active(services, wrong, KeyPurpose.SUPPLIER_DS)
    devices.store_credentials(
        services.db, credentials(SECOND, RemotePartyRole.SUPPLIER, second.ski), PINNED
    )
    devices.store_credentials(
        services.db,
        credentials(NO_SUPPLIER_CELL, RemotePartyRole.NETWORK_OPERATOR, second.ski),
        PINNED,
    )
    devices.store_credentials(
        services.db, credentials(WRONG_ROLE, RemotePartyRole.SUPPLIER, wrong.ski), PINNED
    )
    yield services
    services.db.dispose()


def _verified(svc: Services, m: Manufacturer, image: bytes, force: int | None = None) -> str:
    header = ota_header(len(image))
    if force is None:
        d = deliveries.from_separate(
            ota_header=header,
            manufacturer_image=image,
            signature=m.sign(header + image),
            hash=hashlib.sha256(image).digest(),
        )
    else:
        from signer.gbcs.signature import der_to_raw

        d = deliveries.from_gbcs(
            header + image + bytes([force, 0x40]) + der_to_raw(m.sign(header + image))
        )
    verdict = verify_manufacturer(svc, d)
    assert verdict.verified, verdict.checks
    return verdict.image_id


def test_one_image_per_key_and_every_refusal_with_its_reason(
    svc: Services, manufacturer: Manufacturer
) -> None:
    image_id = _verified(svc, manufacturer, b"two keys " * 40)
    result = resign(
        svc,
        image_id,
        [RTDS_DEVICE, SECOND, NO_SUPPLIER_CELL, WRONG_ROLE, "00-DB-12-34-56-78-90-FF"],
        None,
    )
    by_label = {i.group.key.label: i for i in result.images}
    assert sorted(by_label) == ["supplier-two", "z1-supplier-ds"]
    assert [str(d) for d in by_label["z1-supplier-ds"].group.devices] == [RTDS_DEVICE]
    assert [str(d) for d in by_label["supplier-two"].group.devices] == [SECOND]
    for label, item in by_label.items():
        cert = item.group.key.certificate
        assert cert is not None
        _, img, _, sig = split_upgrade_image(item.upgrade_image)
        assert raw_signature_verifies(cert, img, sig), label
    reasons = {str(r.device): r.reason for r in result.refused}
    assert reasons == {
        NO_SUPPLIER_CELL: "no_supplier_cell",
        WRONG_ROLE: "certificate_rejected",
        "00-DB-12-34-56-78-90-FF": "unknown_device",
    }
    detail = next(r.detail for r in result.refused if str(r.device) == WRONG_ROLE)
    assert "role" in detail and "03" in detail


def test_an_expired_certificate_refuses_its_devices(
    svc: Services, manufacturer: Manufacturer
) -> None:
    image_id = _verified(svc, manufacturer, b"expired " * 40)
    later = Services(
        config=svc.config,
        token=svc.token,
        db=svc.db,
        schema=svc.schema,
        clock=fixed_clock(dt.datetime(2025, 11, 1, tzinfo=dt.UTC)),
    )
    with pytest.raises(DevicesRefused) as err:
        resign(later, image_id, [RTDS_DEVICE], None)
    assert err.value.refusals[0][1] == "certificate_rejected"
    assert "expired on 2025-10-29" in err.value.refusals[0][2]


def test_build_duis_by_image_id_refuses_devices_that_trust_different_keys(
    svc: Services, manufacturer: Manufacturer
) -> None:
    image_id = _verified(svc, manufacturer, b"mixed " * 40)
    with pytest.raises(PolicyRefused, match="2 different keys"):
        build_duis(
            svc,
            image_id=image_id,
            upgrade_image=None,
            device_ids=[RTDS_DEVICE, SECOND],
            firmware_version="01020304",
            service="11.1",
        )


def test_build_duis_with_an_upgrade_image_refuses_devices_of_other_keys(
    svc: Services, manufacturer: Manufacturer
) -> None:
    image_id = _verified(svc, manufacturer, b"other key " * 40)
    z1_image = next(i for i in resign(svc, image_id, [RTDS_DEVICE], None).images)
    result = build_duis(
        svc,
        image_id=None,
        upgrade_image=z1_image.upgrade_image,
        device_ids=[RTDS_DEVICE, SECOND],
        firmware_version="01020304",
        service="11.1",
    )
    assert [str(d) for d in result.devices] == [RTDS_DEVICE]
    assert [(str(r.device), r.reason) for r in result.refused] == [(SECOND, "cell_names_other_key")]


def test_the_delivered_force_replace_byte_is_kept_unless_the_caller_sets_it(
    svc: Services, manufacturer: Manufacturer
) -> None:
    image_id = _verified(svc, manufacturer, b"force replace " * 40, force=0x01)
    kept = resign(svc, image_id, [RTDS_DEVICE], None).images[0].upgrade_image
    cleared = resign(svc, image_id, [RTDS_DEVICE], False).images[0].upgrade_image
    assert split_upgrade_image(kept)[2] == 1
    assert split_upgrade_image(cleared)[2] == 0
    assert kept[:-66] == cleared[:-66]


def test_a_verified_image_keeps_its_header(svc: Services, manufacturer: Manufacturer) -> None:
    image = b"one header " * 40
    _verified(svc, manufacturer, image)
    header = ota_header(len(image), file_version=0x0A0B0C0D)
    other = deliveries.from_separate(
        ota_header=header,
        manufacturer_image=image,
        signature=manufacturer.sign(header + image),
        hash=hashlib.sha256(image).digest(),
    )
    with pytest.raises(PolicyRefused, match="another OTA header"):
        verify_manufacturer(svc, other)


@pytest.mark.parametrize("aside", [False, True], ids=["inline", "alongside-c14n"])
def test_a_document_the_schema_refuses_is_never_signed(
    svc: Services, manufacturer: Manufacturer, monkeypatch: pytest.MonkeyPatch, aside: bool
) -> None:
    """Were the builder ever to make an invalid request, BuildDUIS refuses it naming the
    field, on either path of the schema check (inline, or beside the C14N for large
    images), and nothing is signed: no DUIS signature in the audit trail."""
    image_id = _verified(svc, manufacturer, b"schema refuses " * 40)

    def invalid(**kwargs: Any) -> etree._Element:
        return stray_element(build_update_firmware(**kwargs))

    monkeypatch.setattr(duis_module, "build_update_firmware", invalid)
    monkeypatch.setattr(duis_module, "VALIDATE_ASIDE", 0 if aside else 1 << 40)
    before = audit_rows.head(svc.config.database_url)[0]
    with pytest.raises(InvalidInput, match="Stray") as raised:
        build_duis(
            svc,
            image_id=image_id,
            upgrade_image=None,
            device_ids=[RTDS_DEVICE],
            firmware_version="01020304",
            service="11.1",
        )
    assert raised.value.field == "duis_request"
    signed = [
        r
        for r in audit_rows.rows(svc.config.database_url, after=before)
        if r["operation"] == signing.DUIS_SIGN
    ]
    assert signed == []
