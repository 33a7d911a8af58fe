"""check_update_request and check_activation on documents BuildDUIS and BuildActivation
signed, and on targeted faults of them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from signer.errors import PolicyRefused
from signer.preflight import CHECKS, PreflightFailed, check_activation, check_update_request
from tests.support.constants import RTDS_DEVICE
from tests.support.dcc import DccKey
from tests.support.preflight import (
    FIRMWARE_VERSION,
    SR,
    Artifacts,
    refused,
    resigned_document,
)

OTHER_DEVICE = "00-DB-12-34-56-78-90-B9"
FORCE_REPLACE = False  # Resign without a Force Replace asked for writes 0x00


def _update(a: Artifacts, document: bytes | None = None, **kw: object) -> None:
    args: dict[str, object] = {
        "upgrade_image": a.upgrade_image,
        "device_ids": [RTDS_DEVICE],
        "xml_certificate": a.xml_cert,
        "schema": a.schema,
        "firmware_version": FIRMWARE_VERSION,
        "force_replace": FORCE_REPLACE,
    }
    args.update(kw)
    check_update_request(a.update_request if document is None else document, **args)  # type: ignore[arg-type]


def _activation(a: Artifacts, document: bytes | None = None, **kw: object) -> None:
    args: dict[str, object] = {
        "device_id": RTDS_DEVICE,
        "manufacturer_image_sha256": a.image_sha256,
        "previous_counter": None,
        "xml_certificate": a.xml_cert,
        "schema": a.schema,
        "execution_time": None,  # BuildActivation made an immediate one
    }
    args.update(kw)
    check_activation(a.activation if document is None else document, **args)  # type: ignore[arg-type]


def test_a_failure_is_a_policy_refusal_naming_its_check() -> None:
    err = PreflightFailed("arp_signature", "does not verify")
    assert isinstance(err, PolicyRefused)
    assert (err.check, err.detail) == ("arp_signature", "does not verify")
    assert str(err) == "pre-flight check arp_signature failed: does not verify"
    assert set(CHECKS) >= {
        "image_parses",
        "image_matches_model",
        "hardware_version",
        "arp_signature",
        "firmware_hash",
        "originator_counter",
        "duis_schema",
        "xml_signature",
    }


# ---------------------------------------------------------------- SR 11.1


@pytest.mark.parametrize("with_schema", [True, False])
def test_the_update_request_build_duis_made_passes(artifacts: Artifacts, with_schema: bool) -> None:
    _update(artifacts, schema=artifacts.schema if with_schema else None)


def test_devices_are_compared_as_euis_in_any_spelling(artifacts: Artifacts) -> None:
    _update(artifacts, device_ids=[RTDS_DEVICE.replace("-", "").lower()])


@pytest.mark.parametrize(
    "devices", [[RTDS_DEVICE, OTHER_DEVICE], [OTHER_DEVICE], []], ids=["extra", "other", "none"]
)
def test_a_document_for_other_devices_is_refused(artifacts: Artifacts, devices: list[str]) -> None:
    refused("device_list", _update, artifacts, device_ids=devices)


def test_a_document_carrying_another_image_is_refused(artifacts: Artifacts) -> None:
    other = artifacts.upgrade_image[:-1] + bytes([artifacts.upgrade_image[-1] ^ 1])
    detail = refused("firmware_image", _update, artifacts, upgrade_image=other)
    assert f"{len(other)}-byte upgrade image" in detail


def test_a_tampered_update_request_is_refused(artifacts: Artifacts) -> None:
    doc = artifacts.update_request.replace(
        b"<sr:FirmwareVersion>01020304<", b"<sr:FirmwareVersion>01020305<"
    )
    assert doc != artifacts.update_request
    detail = refused("xml_signature", _update, artifacts, doc)
    assert "digest" in detail


def test_an_update_request_checked_with_another_certificate_is_refused(
    artifacts: Artifacts, dcc: DccKey
) -> None:
    refused("xml_signature", _update, artifacts, xml_certificate=dcc.cert)


def test_the_image_resign_made_has_the_force_replace_byte_assumed(artifacts: Artifacts) -> None:
    # the tail is Force Replace, 0x40, 64 signature bytes (the specification's layout)
    assert artifacts.upgrade_image[-66:-64] == bytes([int(FORCE_REPLACE), 0x40])


def test_a_request_for_another_firmware_version_is_refused(artifacts: Artifacts) -> None:
    detail = refused("firmware_version", _update, artifacts, firmware_version="01020305")
    assert "01020304" in detail and "01020305" in detail


def test_an_image_with_another_force_replace_byte_is_refused(artifacts: Artifacts) -> None:
    detail = refused("force_replace", _update, artifacts, force_replace=not FORCE_REPLACE)
    assert "0x00" in detail and "0x01" in detail


def test_an_activation_is_not_an_update_request(artifacts: Artifacts) -> None:
    detail = refused("duis_schema", _update, artifacts, artifacts.activation)
    assert "11.3" in detail


# ---------------------------------------------------------------- SR 11.3


@pytest.mark.parametrize("with_schema", [True, False])
def test_the_activation_build_activation_made_passes(
    artifacts: Artifacts, with_schema: bool
) -> None:
    _activation(artifacts, schema=artifacts.schema if with_schema else None)
    _activation(artifacts, previous_counter=artifacts.activation_counter - 1)


@pytest.mark.parametrize("above", [0, 1, 10**6])
def test_a_counter_not_above_the_previous_one_is_refused(artifacts: Artifacts, above: int) -> None:
    detail = refused(
        "originator_counter",
        _activation,
        artifacts,
        previous_counter=artifacts.activation_counter + above,
    )
    assert str(artifacts.activation_counter) in detail


def test_an_activation_for_another_device_is_refused(artifacts: Artifacts) -> None:
    refused("originator_counter", _activation, artifacts, device_id=OTHER_DEVICE)


def test_the_firmware_hash_of_another_image_is_refused(artifacts: Artifacts) -> None:
    # a genuine, validly signed activation, but of the other image
    _activation(
        artifacts,
        artifacts.other_activation,
        manufacturer_image_sha256=artifacts.other_image_sha256,
    )
    detail = refused("firmware_hash", _activation, artifacts, artifacts.other_activation)
    assert artifacts.image_sha256.hex().upper() in detail


def test_a_tampered_activation_is_refused(artifacts: Artifacts) -> None:
    counter = str(artifacts.activation_counter).encode()
    doc = artifacts.activation.replace(
        b":" + counter + b"<", b":" + str(artifacts.activation_counter + 1).encode() + b"<"
    )
    assert doc != artifacts.activation
    refused("xml_signature", _activation, artifacts, doc)


def test_an_activation_checked_with_another_certificate_is_refused(
    artifacts: Artifacts, dcc: DccKey
) -> None:
    refused("xml_signature", _activation, artifacts, xml_certificate=dcc.cert)


def test_a_signature_naming_another_serial_is_refused(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    doc = resigned_document(
        artifacts.activation,
        xml_key,
        artifacts.xml_cert,
        lambda root: None,
        serial=artifacts.xml_cert.serial_number + 1,
    )
    detail = refused("xml_signature", _activation, artifacts, doc)
    assert "serial" in detail


def test_a_validly_signed_document_the_schema_refuses(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    def short_hash(root: etree._Element) -> None:
        el = root.find(f"{SR}Body/{SR}ActivateFirmware/{SR}FirmwareHash")
        assert el is not None and el.text is not None
        el.text = el.text[:-2]  # 31 bytes: hexBinary of the wrong length

    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, short_hash)
    refused("duis_schema", _activation, artifacts, doc)
    # without a schema the signature still holds: the hash is what gives it away then
    refused("firmware_hash", _activation, artifacts, doc, schema=None)


def test_a_signature_moved_into_the_body_is_refused(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    root = etree.fromstring(artifacts.activation)
    root[1].append(root[-1])
    doc = etree.tostring(root)
    refused("xml_signature", _activation, artifacts, doc, schema=None)


def test_an_update_request_is_not_an_activation(artifacts: Artifacts) -> None:
    refused("duis_schema", _activation, artifacts, artifacts.update_request, schema=None)


# ---------------------------------------------------------------- hostile XML


def _with_doctype(document: bytes, doctype: str) -> bytes:
    declaration, rest = document.split(b"?>", 1)
    return declaration + b"?>" + doctype.encode() + rest


HOSTILE = {
    "internal entity": '<!DOCTYPE sr:Request [<!ENTITY x "y">]>',
    "external entity": '<!DOCTYPE sr:Request [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
    "external subset": '<!DOCTYPE sr:Request SYSTEM "http://127.0.0.1:9/evil.dtd">',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_document_with_a_doctype_is_refused(artifacts: Artifacts, kind: str) -> None:
    doc = _with_doctype(artifacts.activation, HOSTILE[kind])
    detail = refused("duis_schema", _activation, artifacts, doc)
    assert "DOCTYPE" in detail
    refused(
        "duis_schema", _update, artifacts, _with_doctype(artifacts.update_request, HOSTILE[kind])
    )


def test_a_doctype_in_utf16_is_refused_after_parsing(artifacts: Artifacts) -> None:
    text = _with_doctype(artifacts.activation, HOSTILE["internal entity"]).decode()
    doc = text.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16")
    assert b"<!DOCTYPE" not in doc  # the byte scan cannot see it
    detail = refused("duis_schema", _activation, artifacts, doc)
    assert "DOCTYPE" in detail


@pytest.mark.parametrize("doc", [b"", b"   ", b"<sr:Request", b"not xml"])
def test_a_document_that_is_not_xml_is_refused(artifacts: Artifacts, doc: bytes) -> None:
    refused("duis_schema", _activation, artifacts, doc)


def test_a_comment_cannot_cut_a_signed_text(artifacts: Artifacts) -> None:
    # comments are outside the digest: one inside FirmwareHash must not shorten what is read
    hash_hex = artifacts.image_sha256.hex().upper().encode()
    doc = artifacts.activation.replace(hash_hex, hash_hex[:10] + b"<!--x-->" + hash_hex[10:])
    assert doc != artifacts.activation
    _activation(artifacts, doc, schema=None)


# ---------------------------------------------------------------- SR 11.3 execution time

PLANNED_AT = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def _dated(text: str) -> Callable[[etree._Element], None]:
    def edit(root: etree._Element) -> None:
        op = root.find(f"{SR}Body/{SR}ActivateFirmware")
        assert op is not None
        when = etree.Element(f"{SR}ExecutionDateTime")
        when.text = text
        op.insert(0, when)  # before FirmwareHash, as the schema orders them

    return edit


def test_a_dated_activation_at_the_plans_time_passes(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    edit = _dated("2031-05-06T07:08:09.00Z")
    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, edit)
    _activation(artifacts, doc, execution_time=PLANNED_AT)
    # the same instant in another zone is the same time
    _activation(
        artifacts, doc, execution_time=PLANNED_AT.astimezone(dt.timezone(dt.timedelta(hours=2)))
    )


def test_a_dated_activation_at_another_time_is_refused(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    edit = _dated("2031-05-06T07:08:10.00Z")
    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, edit)
    detail = refused("execution_time", _activation, artifacts, doc, execution_time=PLANNED_AT)
    assert "2031-05-06T07:08:10" in detail
    refused("execution_time", _activation, artifacts, doc, execution_time=None)


def test_an_immediate_activation_for_a_dated_plan_is_refused(artifacts: Artifacts) -> None:
    detail = refused("execution_time", _activation, artifacts, execution_time=PLANNED_AT)
    assert "immediately" in detail


def test_an_execution_time_that_is_not_a_date_time_is_refused(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, _dated("soon"))
    refused("execution_time", _activation, artifacts, doc, execution_time=PLANNED_AT, schema=None)


def test_the_services_schema_is_taken_through_its_locked_entry_point(
    artifacts: Artifacts, xml_key: ec.EllipticCurvePrivateKey
) -> None:
    schema = artifacts.svc.schema
    assert schema is not None

    def bad_hash(root: etree._Element) -> None:
        el = root.find(f"{SR}Body/{SR}ActivateFirmware/{SR}FirmwareHash")
        assert el is not None
        el.text = "NOTHEX"

    doc = resigned_document(artifacts.activation, xml_key, artifacts.xml_cert, bad_hash)
    _activation(artifacts, schema=schema.first_error)
    detail = refused("duis_schema", _activation, artifacts, doc, schema=schema.first_error)
    assert "NOTHEX" in detail
