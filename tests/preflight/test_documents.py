"""check_update_request and check_activation on documents BuildDUIS and BuildActivation
signed, and on targeted faults of them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from lxml import etree

from signer.errors import PolicyRefused
from signer.preflight import CHECKS, PreflightFailed, check_activation, check_update_request
from tests.support.constants import RTDS_DEVICE
from tests.support.dcc import DccKey
from tests.support.preflight import SR, Artifacts, refused, resigned_document

OTHER_DEVICE = "00-DB-12-34-56-78-90-B9"


def _update(a: Artifacts, document: bytes | None = None, **kw: object) -> None:
    args: dict[str, object] = {
        "upgrade_image": a.upgrade_image,
        "device_ids": [RTDS_DEVICE],
        "xml_certificate": a.xml_cert,
        "schema": a.schema,
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
