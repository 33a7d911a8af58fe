"""Responses carrying megabytes, put into wire form with one copy of their large bytes.

A 10 MB upgrade image or a 13.7 MB DUIS document set on a protobuf message is copied into it,
then copied again by ``SerializeToString`` (which measured 5.7 ms for 10 MB here, seven
memory copies' worth), before gRPC copies it once more. Protobuf's wire format allows the
large field to be written straight into the output instead: a length-delimited field is its
key, its length and its bytes, and the serialisation of a message is the concatenation of its
fields in field-number order. So a response is the serialisation of its small fields around
the large one, joined once; `tests/api/test_wire.py` holds the result byte-identical to
``SerializeToString`` of the whole message.

The servicer returns an `Encoded`; `serializer` (set on the handler by the innermost
interceptor) sends its bytes, and interceptors read `Encoded.message`, the same response
without the large bytes (refusal counting needs only its ``refused`` fields).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf.message import Message

from signer.api._proto.signer.v1 import signer_pb2 as pb

M = TypeVar("M", bound=Message)
_LENGTH_DELIMITED = 2  # the wire type of bytes, strings and embedded messages


@dataclass(frozen=True, slots=True)
class Encoded(Generic[M]):
    """A response in wire form (``wire``) and, for interceptors, the same response without
    its large bytes (``message``)."""

    message: M
    wire: bytes


def serializer(inner: Callable[..., Any] | None) -> Callable[[Any], bytes]:
    """A response serializer that sends an `Encoded` as it is and serialises anything else
    with ``inner`` (the generated ``SerializeToString``; None: the response is bytes)."""

    def serialize(response: Any) -> bytes:
        if type(response) is Encoded:
            return response.wire
        return response if inner is None else inner(response)  # type: ignore[no-any-return]

    return serialize


def inspectable(response: Any) -> Any:
    """What interceptors read of a response: the message, never the wire bytes."""
    return response.message if type(response) is Encoded else response


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _prefix(field_number: int, length: int) -> bytes:
    """The key and length that precede a length-delimited field's ``length`` bytes."""
    return _varint(field_number << 3 | _LENGTH_DELIMITED) + _varint(length)


def _field(field_number: int, data: bytes, rest: bytes) -> list[bytes]:
    """``data`` as field ``field_number`` followed by the later fields ``rest`` (serialised).
    Empty bytes are not written, as proto3 does not write a field at its default."""
    if not data:
        return [rest]
    return [_prefix(field_number, len(data)), data, rest]


def build_duis_response(
    document: bytes, request_id: str, device_ids: Sequence[str], refused: Sequence[pb.DeviceRefusal]
) -> Encoded[pb.BuildDUISResponse]:
    """`BuildDUISResponse`: ``duis_request`` (field 1) is the document."""
    small = pb.BuildDUISResponse(request_id=request_id, device_ids=device_ids, refused=refused)
    wire = b"".join(_field(1, document, small.SerializeToString()))
    return Encoded(message=small, wire=wire)


def resign_response(
    image_id: str,
    images: Sequence[tuple[bytes, pb.SignedImage]],
    refused: Sequence[pb.DeviceRefusal],
) -> Encoded[pb.ResignResponse]:
    """`ResignResponse`: each ``images[]`` entry (field 2) is a `SignedImage` whose
    ``upgrade_image`` (its field 1) is given apart from the rest of it."""
    message = pb.ResignResponse(image_id=image_id)
    chunks = [message.SerializeToString()]  # field 1
    for upgrade_image, rest_of in images:
        entry = _field(1, upgrade_image, rest_of.SerializeToString())
        chunks.append(_prefix(2, sum(len(c) for c in entry)))
        chunks.extend(entry)
        message.images.append(rest_of)
    message.refused.extend(refused)
    chunks.append(pb.ResignResponse(refused=refused).SerializeToString())  # field 3
    return Encoded(message=message, wire=b"".join(chunks))
