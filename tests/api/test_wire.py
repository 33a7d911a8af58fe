"""Responses put into wire form by hand are the bytes protobuf itself would write."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from signer.api import wire
from signer.api._proto.signer.v1 import signer_pb2 as pb

# lengths around each varint boundary (1, 2 and 3 bytes of length), and a 10 MB image
SIZES = [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 10_240_000]

refusals = st.lists(
    st.builds(
        pb.DeviceRefusal,
        device_id=st.text(max_size=30),
        reason=st.sampled_from(["DEVICE_UNKNOWN", "CPL_NO_PATH", ""]),
        detail=st.text(max_size=200),
        upgrade_path=st.lists(st.text(max_size=10), max_size=3),
    ),
    max_size=4,
)
signed_rest = st.builds(
    pb.SignedImage,
    key_label=st.text(max_size=40),
    key_ski=st.binary(max_size=20),
    certificate_serial=st.text(alphabet="0123456789", max_size=40),
    device_ids=st.lists(st.text(max_size=23), max_size=5),
)


def _resign_whole(
    image_id: str, images: list[tuple[bytes, pb.SignedImage]], refused: list[pb.DeviceRefusal]
) -> bytes:
    whole = pb.ResignResponse(image_id=image_id, refused=refused)
    for data, rest in images:
        entry = whole.images.add()
        entry.CopyFrom(rest)
        entry.upgrade_image = data
    return whole.SerializeToString()


@pytest.mark.parametrize("size", SIZES)
def test_build_duis_response_is_protobufs_own_serialisation(size: int) -> None:
    document = bytes(range(256)) * (size // 256) + b"<" * (size % 256)
    refused = [pb.DeviceRefusal(device_id="00-11-22-33-44-55-66-77", reason="DEVICE_UNKNOWN")]
    encoded = wire.build_duis_response(document, "90-B3-D5-1F-30-01-00-00:1", ["a", "b"], refused)
    whole = pb.BuildDUISResponse(
        duis_request=document,
        request_id="90-B3-D5-1F-30-01-00-00:1",
        device_ids=["a", "b"],
        refused=refused,
    )
    assert encoded.wire == whole.SerializeToString()
    assert pb.BuildDUISResponse.FromString(encoded.wire) == whole
    assert not encoded.message.duis_request  # what interceptors read holds no copy
    assert list(encoded.message.refused) == refused


@pytest.mark.parametrize("size", SIZES)
def test_resign_response_is_protobufs_own_serialisation(size: int) -> None:
    image = b"\x5a" * size
    rest = pb.SignedImage(
        key_label="supplier-ds", key_ski=b"\x01" * 20, certificate_serial="7", device_ids=["x"]
    )
    refused = [pb.DeviceRefusal(device_id="y", reason="CPL_NO_PATH", detail="no path")]
    encoded = wire.resign_response(
        "ab" * 32, [(image, rest), (image[:5], pb.SignedImage())], refused
    )
    whole = _resign_whole("ab" * 32, [(image, rest), (image[:5], pb.SignedImage())], refused)
    assert encoded.wire == whole
    parsed = pb.ResignResponse.FromString(encoded.wire)
    assert parsed.images[0].upgrade_image == image
    assert parsed.images[1].upgrade_image == image[:5]
    assert [i.upgrade_image for i in encoded.message.images] == [b"", b""]
    assert list(encoded.message.refused) == refused


@settings(max_examples=200, deadline=None)
@given(
    image_id=st.text(max_size=70),
    images=st.lists(st.tuples(st.binary(max_size=300), signed_rest), max_size=4),
    refused=refusals,
)
def test_resign_response_any_content(
    image_id: str, images: list[tuple[bytes, pb.SignedImage]], refused: list[pb.DeviceRefusal]
) -> None:
    assert wire.resign_response(image_id, images, refused).wire == _resign_whole(
        image_id, images, refused
    )


@settings(max_examples=200, deadline=None)
@given(
    document=st.binary(max_size=500),
    request_id=st.text(max_size=40),
    device_ids=st.lists(st.text(max_size=23), max_size=5),
    refused=refusals,
)
def test_build_duis_response_any_content(
    document: bytes, request_id: str, device_ids: list[str], refused: list[pb.DeviceRefusal]
) -> None:
    whole = pb.BuildDUISResponse(
        duis_request=document, request_id=request_id, device_ids=device_ids, refused=refused
    )
    encoded = wire.build_duis_response(document, request_id, device_ids, refused)
    assert encoded.wire == whole.SerializeToString()


def test_serializer_sends_encoded_bytes_and_serialises_the_rest() -> None:
    encoded = wire.build_duis_response(b"<x/>", "r", [], [])
    serialize = wire.serializer(pb.BuildDUISResponse.SerializeToString)
    assert serialize(encoded) is encoded.wire
    plain = pb.BuildDUISResponse(request_id="r")
    assert serialize(plain) == plain.SerializeToString()
    assert wire.inspectable(encoded) is encoded.message
    assert wire.inspectable(plain) is plain
