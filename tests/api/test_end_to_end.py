"""Over gRPC against a real server: deliveries in three shapes -> Resign -> BuildDUIS."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
import pytest
from cryptography import x509

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.duis.xmldsig import verify_document
from tests.support.constants import PINNED, RTDS_DEVICE, SUPPLIER_EUI
from tests.support.independent import (
    assert_schema_valid,
    duis_fields,
    firmware_image_of,
    ota_header,
    raw_signature_verifies,
    split_upgrade_image,
    xmlsec1_verify,
)
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running


def cert(vectors: Path, name: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate((vectors / "certs" / f"{name}.pem").read_bytes())


def separate(
    header: bytes,
    image: bytes,
    m: Manufacturer,
    *,
    hash_: bytes | None = None,
    signature: bytes | None = None,
) -> pb.VerifyManufacturerRequest:
    return pb.VerifyManufacturerRequest(
        separate=pb.SeparateDelivery(
            ota_header=header,
            manufacturer_image=image,
            signature=signature if signature is not None else m.sign(header + image),
            hash=hash_ if hash_ is not None else hashlib.sha256(image).hexdigest().encode(),
        )
    )


def delivery(shape: str, image: bytes, m: Manufacturer) -> pb.VerifyManufacturerRequest:
    header = ota_header(len(image))
    sig = m.sign(header + image)
    digest = hashlib.sha256(image).digest()
    if shape == "separate":
        return separate(header, image, m, hash_=digest)
    if shape == "gbcs":
        from signer.gbcs.signature import der_to_raw

        gbcs = header + image + b"\x00\x40" + der_to_raw(sig)
        return pb.VerifyManufacturerRequest(
            gbcs=pb.GbcsDelivery(upgrade_image=gbcs, hash=digest.hex().encode())
        )
    return pb.VerifyManufacturerRequest(
        combined=pb.CombinedDelivery(header_and_image=header + image, signature=sig, hash=digest)
    )


def test_rtds_image_resigned_in_the_token_matches_the_rtds_bytes(
    running: Running, manufacturer: Manufacturer
) -> None:
    rtds = running.rtds_image()
    header, image, force, _ = split_upgrade_image(rtds)
    assert (len(header), len(image), force) == (60, 235, 0)
    verdict = running.stub.VerifyManufacturer(separate(header, image, manufacturer))
    assert verdict.verified, verdict
    assert verdict.image_id == "7542f475e3f12eae887d81e32c46d313741d67076b13caec2f82e00ba5e1bb36"
    assert verdict.header.manufacturer_code == 0x121D and verdict.header.header_length == 60

    resp = running.stub.Resign(
        pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE])
    )
    assert len(resp.images) == 1 and not resp.refused
    out = resp.images[0]
    assert out.key_label == "z1-supplier-ds"
    assert out.key_ski.hex() == "44899792d196f4b8"
    assert list(out.device_ids) == [RTDS_DEVICE]
    data = out.upgrade_image
    assert len(data) == len(rtds) == 361
    assert data[:-64] == rtds[:-64]  # every byte but the signature
    z1 = cert(running.vectors, "Z1-supplier-ds")
    assert raw_signature_verifies(z1, image, data[-64:])
    assert not raw_signature_verifies(z1, header + image, data[-64:])


@pytest.mark.parametrize("shape", ["separate", "gbcs", "combined"])
def test_each_delivery_shape_goes_through_resign_to_a_signed_duis(
    running: Running, manufacturer: Manufacturer, shape: str, tmp_path: Path
) -> None:
    image = f"firmware for the {shape} shape ".encode() * 40
    verdict = running.stub.VerifyManufacturer(delivery(shape, image, manufacturer))
    assert verdict.verified, verdict.checks
    assert [c.name for c in verdict.checks] == [
        "structure",
        "manufacturer_signature",
        "hash",
        "cpl",
    ]
    assert verdict.image_id == hashlib.sha256(image).hexdigest()

    resign = running.stub.Resign(
        pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE], force_replace=True)
    )
    upgrade = resign.images[0].upgrade_image
    _, img, force, sig = split_upgrade_image(upgrade)
    assert img == image and force == 1
    assert raw_signature_verifies(cert(running.vectors, "Z1-supplier-ds"), image, sig)

    built = running.stub.BuildDUIS(
        pb.BuildDUISRequest(
            upgrade_image=upgrade,
            device_ids=[RTDS_DEVICE],
            firmware_version="01020304",
            service_reference="11.1",
        )
    )
    doc = built.duis_request
    fields = duis_fields(doc)
    assert fields["RequestID"] == built.request_id
    originator, target, counter = built.request_id.rsplit(":", 2)
    assert (originator, target) == (SUPPLIER_EUI, "90-B3-D5-1F-30-00-00-02")
    assert int(counter) >= 1
    assert fields["ServiceReference"] == "11.1" and fields["CommandVariant"] == "8"
    assert fields["DeviceIDList"] == RTDS_DEVICE and fields["FirmwareVersion"] == "01020304"
    assert firmware_image_of(doc) == upgrade
    check_duis_signature(running, doc, tmp_path)


def check_duis_signature(running: Running, doc: bytes, tmp_path: Path) -> None:
    xml_cert = cert(running.vectors, "xml-sign-90B3D51F30010000-ds")
    assert_schema_valid(doc, running.vectors / "xsd")
    result = xmlsec1_verify(doc, xml_cert, tmp_path)
    assert result.returncode == 0, result.stderr
    verify_document(doc, certificates=[xml_cert], now=PINNED)
    tampered = doc.replace(RTDS_DEVICE.encode(), b"00-DB-12-34-56-78-90-A1", 1)
    assert xmlsec1_verify(tampered, xml_cert, tmp_path).returncode != 0


def test_build_duis_from_an_image_id_signs_with_the_devices_key(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    image = b"image-id path " * 30
    verdict = running.stub.VerifyManufacturer(delivery("separate", image, manufacturer))
    built = running.stub.BuildDUIS(
        pb.BuildDUISRequest(
            image_id=verdict.image_id, device_ids=[RTDS_DEVICE], firmware_version="01020304"
        )
    )
    upgrade = firmware_image_of(built.duis_request)
    _, img, force, sig = split_upgrade_image(upgrade)
    assert img == image and force == 0
    assert raw_signature_verifies(cert(running.vectors, "Z1-supplier-ds"), image, sig)
    check_duis_signature(running, built.duis_request, tmp_path)


def test_ppmid_11_4_image_is_sent_without_a_tail(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    image = b"PPMID firmware " * 20
    header = ota_header(len(image), image_type=0x0084, tail=False)
    verdict = running.stub.VerifyManufacturer(separate(header, image, manufacturer))
    assert verdict.verified, verdict.checks
    built = running.stub.BuildDUIS(
        pb.BuildDUISRequest(
            image_id=verdict.image_id,
            device_ids=[RTDS_DEVICE, "00-DB-12-34-56-78-90-C0"],
            firmware_version="01020304",
            service_reference="11.4",
        )
    )
    assert firmware_image_of(built.duis_request) == header + image
    assert [(r.device_id, r.reason) for r in built.refused] == [
        ("00-DB-12-34-56-78-90-C0", "unknown_device")
    ]
    assert duis_fields(built.duis_request)["DeviceIDList"] == RTDS_DEVICE
    assert duis_fields(built.duis_request)["ServiceReference"] == "11.4"
    assert_schema_valid(built.duis_request, running.vectors / "xsd")
    xml_cert = cert(running.vectors, "xml-sign-90B3D51F30010000-ds")
    assert xmlsec1_verify(built.duis_request, xml_cert, tmp_path).returncode == 0
    with pytest.raises(grpc.RpcError) as err:
        running.stub.Resign(pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_failed_checks_are_a_verdict_and_block_resign(
    running: Running, manufacturer: Manufacturer
) -> None:
    image = b"tampered " * 50
    header = ota_header(len(image))
    bad_hash = running.stub.VerifyManufacturer(
        separate(header, image, manufacturer, hash_=b"00" * 32)
    )
    assert not bad_hash.verified
    assert {c.name: c.passed for c in bad_hash.checks} == {
        "structure": True,
        "manufacturer_signature": True,
        "hash": False,
        "cpl": False,
    }
    bad_sig = running.stub.VerifyManufacturer(
        separate(header, image, manufacturer, signature=manufacturer.sign(header + image + b"x"))
    )
    assert not bad_sig.verified
    assert not {c.name: c.passed for c in bad_sig.checks}["manufacturer_signature"]
    unknown = running.stub.VerifyManufacturer(
        separate(ota_header(len(image), code=0x4242), image, manufacturer)
    )
    assert not unknown.verified
    assert "4242" in next(c for c in unknown.checks if c.name == "manufacturer_signature").detail
    with pytest.raises(grpc.RpcError) as err:
        running.stub.Resign(pb.ResignRequest(image_id=bad_sig.image_id, device_ids=[RTDS_DEVICE]))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def _code(call, request):
    with pytest.raises(grpc.RpcError) as err:
        call(request)
    return err.value


def test_malformed_input_is_invalid_argument_naming_the_field(
    running: Running, manufacturer: Manufacturer
) -> None:
    image = b"x" * 100
    header = bytearray(ota_header(len(image)))
    header[0] = 0x1F
    e = _code(running.stub.VerifyManufacturer, separate(bytes(header), image, manufacturer))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ota_header" in e.details()
    assert dict(e.trailing_metadata())["signer-field"] == "ota_header"
    e = _code(running.stub.VerifyManufacturer, pb.VerifyManufacturerRequest())
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "delivery" in e.details()
    e = _code(running.stub.Resign, pb.ResignRequest(image_id="zz", device_ids=[RTDS_DEVICE]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "image_id" in e.details()
    e = _code(running.stub.Resign, pb.ResignRequest(image_id="ab" * 32, device_ids=["nope"]))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "device_ids[0]" in e.details()
    e = _code(running.stub.Resign, pb.ResignRequest(image_id="ab" * 32, device_ids=[RTDS_DEVICE]))
    assert e.code() == grpc.StatusCode.NOT_FOUND
    e = _code(
        running.stub.BuildDUIS,
        pb.BuildDUISRequest(
            image_id="ab" * 32, device_ids=[RTDS_DEVICE], firmware_version="123456789"
        ),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "firmware_version" in e.details()


def test_refused_devices_carry_reasons(running: Running, manufacturer: Manufacturer) -> None:
    image = b"refusals " * 30
    verdict = running.stub.VerifyManufacturer(delivery("separate", image, manufacturer))
    resp = running.stub.Resign(
        pb.ResignRequest(
            image_id=verdict.image_id, device_ids=[RTDS_DEVICE, "00-DB-12-34-56-78-90-FF"]
        )
    )
    assert [list(i.device_ids) for i in resp.images] == [[RTDS_DEVICE]]
    assert [(r.device_id, r.reason) for r in resp.refused] == [
        ("00-DB-12-34-56-78-90-FF", "unknown_device")
    ]
    e = _code(
        running.stub.Resign,
        pb.ResignRequest(image_id=verdict.image_id, device_ids=["00-DB-12-34-56-78-90-FF"]),
    )
    assert e.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "00-DB-12-34-56-78-90-FF: unknown_device" in e.details()


def test_device_list_over_the_duis_limit_is_invalid(running: Running) -> None:
    devices = [
        f"00-DB-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"
        for i in range(50_001)
    ]
    e = _code(
        running.stub.BuildDUIS,
        pb.BuildDUISRequest(image_id="ab" * 32, device_ids=devices, firmware_version="1"),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "device_ids" in e.details()


def test_largest_image_passes_both_ways(
    running: Running, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    image = bytes(range(256)) * (10_240_000 // 256)
    image = image[: 10_240_000 - 56 - 66]
    verdict = running.stub.VerifyManufacturer(delivery("separate", image, manufacturer))
    assert verdict.verified
    resp = running.stub.Resign(
        pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE])
    )
    upgrade = resp.images[0].upgrade_image
    assert len(upgrade) == 10_240_000
    built = running.stub.BuildDUIS(
        pb.BuildDUISRequest(
            upgrade_image=upgrade, device_ids=[RTDS_DEVICE], firmware_version="01020304"
        )
    )
    assert firmware_image_of(built.duis_request) == upgrade
    xml_cert = cert(running.vectors, "xml-sign-90B3D51F30010000-ds")
    assert xmlsec1_verify(built.duis_request, xml_cert, tmp_path).returncode == 0
    e = _code(
        running.stub.BuildDUIS,
        pb.BuildDUISRequest(
            upgrade_image=upgrade + b"\0", device_ids=[RTDS_DEVICE], firmware_version="01020304"
        ),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_server_logs_what_it_loaded_but_never_the_pin(running: Running, hsm) -> None:
    log = running.server.log.read_text()
    assert "config pin_source = file" in log and "config supplier_eui = " + SUPPLIER_EUI in log
    assert hsm.pin_file.read_text().strip() not in log


def test_client_input_never_ends_as_internal(running: Running, manufacturer: Manufacturer) -> None:
    """Inputs a review found reaching INTERNAL or RESOURCE_EXHAUSTED."""
    image = b"review " * 30
    verdict = running.stub.VerifyManufacturer(delivery("separate", image, manufacturer))
    for version in ("\x01", "a\x00", "\ufffe"):
        e = _code(
            running.stub.BuildDUIS,
            pb.BuildDUISRequest(
                image_id=verdict.image_id, device_ids=[RTDS_DEVICE], firmware_version=version
            ),
        )
        assert e.code() == grpc.StatusCode.INVALID_ARGUMENT, version
        assert "firmware_version" in e.details()
    e = _code(
        running.stub.Resign, pb.ResignRequest(image_id=verdict.image_id, device_ids=["0" * 20_000])
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and len(e.details()) < 200
    e = _code(
        running.stub.BuildDUIS,
        pb.BuildDUISRequest(
            image_id=verdict.image_id,
            device_ids=[RTDS_DEVICE],
            firmware_version="1",
            service_reference="x" * 20_000,
        ),
    )
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "service_reference" in e.details()


def test_an_image_over_the_duis_limit_is_refused_at_verification(
    running: Running, manufacturer: Manufacturer
) -> None:
    image = b"\0" * (10_240_000 - 56 - 66 + 1)
    e = _code(running.stub.VerifyManufacturer, delivery("separate", image, manufacturer))
    assert e.code() == grpc.StatusCode.INVALID_ARGUMENT and "10240000" in e.details()


def test_concurrent_verification_of_one_new_image(
    running: Running, manufacturer: Manufacturer
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    request = delivery("separate", b"raced " * 40, manufacturer)
    with ThreadPoolExecutor(16) as pool:
        verdicts = list(pool.map(lambda _: running.stub.VerifyManufacturer(request), range(32)))
    assert all(v.verified for v in verdicts)
