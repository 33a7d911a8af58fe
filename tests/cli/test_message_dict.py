"""`message_dict`, the CLI's one way of writing a protobuf message in JSON (README "Output"):
every field present, an unset message or proto3 `optional` field as null at every depth, a
oneof as its set member only, bytes in hex wherever they are (repeated, map values,
`google.protobuf.BytesValue`, inside `Any`).

signer.proto has no map, wrapper or `Any` field, so a message with all of them is built
here from a `FileDescriptorProto` in a pool of its own, as a future proto could declare it.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,
    wrappers_pb2,
)

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.cli.output import emit_json, message_dict

F = descriptor_pb2.FieldDescriptorProto
PACKAGE = "messagedict.test"


def _field(
    name: str,
    number: int,
    kind: int,
    *,
    repeated: bool = False,
    type_name: str = "",
    oneof: int | None = None,
    optional: bool = False,
) -> F:
    field = F(
        name=name,
        number=number,
        type=kind,  # type: ignore[arg-type]
        label=F.LABEL_REPEATED if repeated else F.LABEL_OPTIONAL,
        json_name="".join(p if i == 0 else p.capitalize() for i, p in enumerate(name.split("_"))),
    )
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
    if optional:
        field.proto3_optional = True
    return field


def _map_entry(
    name: str, key: int, value: int, value_type: str = ""
) -> descriptor_pb2.DescriptorProto:
    entry = descriptor_pb2.DescriptorProto(name=name)
    entry.options.map_entry = True
    entry.field.extend([_field("key", 1, key), _field("value", 2, value, type_name=value_type)])
    return entry


def _classes() -> dict[str, Any]:
    """Inner {blob, optional maybe, child}, Outer with every shape; their message classes."""
    pool = descriptor_pool.DescriptorPool()
    for wkt in (timestamp_pb2, wrappers_pb2, any_pb2):
        pool.AddSerializedFile(wkt.DESCRIPTOR.serialized_pb)
    inner = descriptor_pb2.DescriptorProto(name="Inner")
    inner.field.extend(
        [
            _field("blob", 1, F.TYPE_BYTES),
            _field("maybe", 2, F.TYPE_BYTES, oneof=0, optional=True),
            _field("child", 3, F.TYPE_MESSAGE, type_name=f".{PACKAGE}.Inner"),
        ]
    )
    inner.oneof_decl.add(name="_maybe")
    outer = descriptor_pb2.DescriptorProto(name="Outer")
    inner_type = f".{PACKAGE}.Inner"
    outer.nested_type.extend(
        [
            _map_entry("BlobsEntry", F.TYPE_STRING, F.TYPE_BYTES),
            _map_entry("ByNumberEntry", F.TYPE_INT32, F.TYPE_MESSAGE, inner_type),
            _map_entry("FlagsEntry", F.TYPE_BOOL, F.TYPE_BYTES),
            _map_entry(
                "WrappedMapEntry", F.TYPE_STRING, F.TYPE_MESSAGE, ".google.protobuf.BytesValue"
            ),
            _map_entry("NamesEntry", F.TYPE_STRING, F.TYPE_STRING),
        ]
    )
    entry = f".{PACKAGE}.Outer."
    outer.field.extend(
        [
            _field("raw", 1, F.TYPE_BYTES),
            _field("raws", 2, F.TYPE_BYTES, repeated=True),
            _field("count", 3, F.TYPE_UINT32, oneof=1, optional=True),
            _field("tag", 4, F.TYPE_BYTES, oneof=2, optional=True),
            _field("inner", 5, F.TYPE_MESSAGE, type_name=inner_type),
            _field("inners", 6, F.TYPE_MESSAGE, repeated=True, type_name=inner_type),
            _field("blobs", 7, F.TYPE_MESSAGE, repeated=True, type_name=entry + "BlobsEntry"),
            _field(
                "by_number", 8, F.TYPE_MESSAGE, repeated=True, type_name=entry + "ByNumberEntry"
            ),
            _field("flags", 9, F.TYPE_MESSAGE, repeated=True, type_name=entry + "FlagsEntry"),
            _field("wrapped", 10, F.TYPE_MESSAGE, type_name=".google.protobuf.BytesValue"),
            _field("label", 11, F.TYPE_MESSAGE, type_name=".google.protobuf.StringValue"),
            _field(
                "wrapped_list",
                12,
                F.TYPE_MESSAGE,
                repeated=True,
                type_name=".google.protobuf.BytesValue",
            ),
            _field("at", 13, F.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"),
            _field("picked", 14, F.TYPE_MESSAGE, type_name=inner_type, oneof=0),
            _field("picked_bytes", 15, F.TYPE_BYTES, oneof=0),
            _field("picked_name", 16, F.TYPE_STRING, oneof=0),
            _field(
                "wrapped_map",
                17,
                F.TYPE_MESSAGE,
                repeated=True,
                type_name=entry + "WrappedMapEntry",
            ),
            _field("anything", 18, F.TYPE_MESSAGE, type_name=".google.protobuf.Any"),
            _field("names", 19, F.TYPE_MESSAGE, repeated=True, type_name=entry + "NamesEntry"),
        ]
    )
    # the real oneof first, then the synthetic ones proto3 declares for `optional`
    outer.oneof_decl.extend(
        [
            descriptor_pb2.OneofDescriptorProto(name="choice"),
            descriptor_pb2.OneofDescriptorProto(name="_count"),
            descriptor_pb2.OneofDescriptorProto(name="_tag"),
        ]
    )
    proto = descriptor_pb2.FileDescriptorProto(
        name="messagedict_test.proto",
        package=PACKAGE,
        syntax="proto3",
        dependency=[
            "google/protobuf/timestamp.proto",
            "google/protobuf/wrappers.proto",
            "google/protobuf/any.proto",
        ],
        message_type=[inner, outer],
    )
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
        for name in ("Inner", "Outer")
    }


@pytest.fixture(scope="module")
def types() -> dict[str, Any]:
    return _classes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_an_empty_message_has_every_field_unset_ones_as_null(types: dict[str, Any]) -> None:
    out = message_dict(types["Outer"]())
    assert out == {
        "raw": "",
        "raws": [],
        "count": None,  # proto3 optional, not set
        "tag": None,
        "inner": None,  # a message field, not set
        "inners": [],
        "blobs": {},
        "by_number": {},
        "flags": {},
        "wrapped": None,
        "label": None,
        "wrapped_list": [],
        "at": None,
        "wrapped_map": {},
        "anything": None,
        "names": {},
        # the oneof "choice" has no member set: none of picked, picked_bytes, picked_name
    }
    json.dumps(out)  # None is JSON null


def test_nulls_at_every_depth_and_a_set_optional_is_written(types: dict[str, Any]) -> None:
    outer = types["Outer"](count=0, tag=b"")  # set, to their defaults: present, not null
    outer.inner.child.blob = b"\x01"
    out = message_dict(outer)
    assert out["count"] == 0 and out["tag"] == ""
    assert out["inner"] == {
        "blob": "",
        "maybe": None,
        "child": {"blob": "01", "maybe": None, "child": None},
    }


def test_bytes_are_hex_everywhere(types: dict[str, Any]) -> None:
    inner = types["Inner"]
    outer = types["Outer"](
        raw=b"\xff\x00",
        raws=[b"\xab", b""],
        tag=b"\xfe",
        inners=[inner(blob=b"\x10", maybe=b"\x11"), inner()],
        # the pool's own well-known types (not wrappers_pb2's classes): given as dicts
        wrapped={"value": b"\xde\xad"},
        label={"value": "words stay words"},
        wrapped_list=[{"value": b"\x01"}, {}],
    )
    outer.blobs["a"] = b"\xbe\xef"
    outer.blobs["empty"] = b""
    outer.by_number[7].blob = b"\x07"
    outer.by_number[-1].maybe = b"\x08"
    outer.flags[True] = b"\x01\x02"
    outer.flags[False] = b"\x03"
    outer.wrapped_map["w"].value = b"\x0a\x0b"
    outer.names["n"] = "name"
    out = message_dict(outer)
    assert out["raw"] == "ff00" and out["raws"] == ["ab", ""] and out["tag"] == "fe"
    assert out["inners"] == [
        {"blob": "10", "maybe": "11", "child": None},
        {"blob": "", "maybe": None, "child": None},
    ]
    assert out["blobs"] == {"a": "beef", "empty": ""}  # map values: hex, not base64
    assert out["by_number"] == {
        "7": {"blob": "07", "maybe": None, "child": None},
        "-1": {"blob": "", "maybe": "08", "child": None},
    }
    assert out["flags"] == {"true": "0102", "false": "03"}
    assert out["wrapped"] == "dead"  # BytesValue: its bytes, in hex
    assert out["label"] == "words stay words"
    assert out["wrapped_list"] == ["01", ""]
    assert out["wrapped_map"] == {"w": "0a0b"}
    assert out["names"] == {"n": "name"}
    # nothing base64 is left: none of the values is what MessageToDict would have written
    text = json.dumps(out)
    for data in (b"\xff\x00", b"\xbe\xef", b"\xde\xad", b"\x0a\x0b", b"\x01\x02"):
        assert _b64(data) not in text


def test_a_oneof_is_its_set_member_only(types: dict[str, Any]) -> None:
    outer = types["Outer"](picked_bytes=b"\x99")
    out = message_dict(outer)
    assert out["picked_bytes"] == "99"
    assert "picked" not in out and "picked_name" not in out  # the others left out, not null
    outer.picked.blob = b"\x42"  # setting another member clears picked_bytes
    out = message_dict(outer)
    assert out["picked"] == {"blob": "42", "maybe": None, "child": None}
    assert "picked_bytes" not in out and "picked_name" not in out
    empty_member = message_dict(types["Outer"](picked_name=""))
    assert empty_member["picked_name"] == ""  # set to its default: still the member written


def test_timestamps_and_any(types: dict[str, Any]) -> None:
    outer = types["Outer"]()
    outer.at.FromDatetime(dt.datetime(2030, 1, 15, 9, 0, tzinfo=dt.UTC))
    header = pb.OtaHeader(header_version=256, upgrade_file_destination=b"\x00\xdb")
    outer.anything.Pack(header)  # a message of the default pool, as MessageToDict resolves
    out = message_dict(outer)
    assert out["at"] == "2030-01-15T09:00:00Z"
    packed = out["anything"]
    assert packed["@type"] == "type.googleapis.com/signer.v1.OtaHeader"
    assert packed["upgrade_file_destination"] == "00db"
    assert packed["security_credential_version"] is None  # nulls inside Any too
    assert packed["header_version"] == 256
    outer.anything.Pack(wrappers_pb2.BytesValue(value=b"\xca\xfe"))
    assert message_dict(outer)["anything"] == {
        "@type": "type.googleapis.com/google.protobuf.BytesValue",
        "value": "cafe",
    }


def test_api_messages_write_their_unset_fields_as_null(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The fields the README promises: an OTA header's optional fields, a verdict without a
    header, an immediate activation (no execution_time); a oneof result names its kind."""
    verdict = message_dict(pb.VerifyManufacturerResponse(verified=False))
    assert verdict["header"] is None
    header = message_dict(pb.OtaHeader(header_version=256))
    for name in (
        "security_credential_version",
        "upgrade_file_destination",
        "min_hardware_version",
        "max_hardware_version",
    ):
        assert header[name] is None, name
    assert message_dict(pb.ActivationSpec(image_id="ab"))["execution_time"] is None
    result = message_dict(pb.PreCommandResult(refused=pb.PreCommandRefusal(index=2)))
    assert set(result) == {"refused"}  # not "signed": null
    assert set(result["refused"]) == set(pb.PreCommandRefusal.DESCRIPTOR.fields_by_name)
    emit_json(verdict)  # and JSON takes it: null, not "None"
    assert '"header": null' in capsys.readouterr().out
