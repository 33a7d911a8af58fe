"""The CLI's output contract: exit codes, `--json`, and how values are written in JSON.

One place, so every command agrees: a script reads the same keys (the proto field names,
snake_case) from `signer verify --json` as from the API, timestamps in RFC 3339 with a
zone, bytes in lower-case hex, and one table of exit codes (README "Exit codes").

Light at import like every module of `signer.cli`: protobuf is imported by `message_dict`
when a command has a message to write.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NoReturn, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class ExitCode(enum.IntEnum):
    """What a command's exit status means; the README's table lists these, a test holds
    them equal."""

    OK = 0  #: done
    ERROR = 1  #: failed: nothing (or nothing more) was done
    USAGE = 2  #: the command line is wrong (click's own code)
    NOT_VERIFIED = 3  #: a verification ran and the thing verified is not good
    SOME_REFUSED = 4  #: done, with some items refused (each reported); `cpl path`: no path
    NOT_FOUND = 5  #: what was named does not exist; `cpl path`: not on the CPL


def exit_with(code: ExitCode) -> NoReturn:
    sys.exit(int(code))


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Write the result as JSON on stdout (keys as the API's field names).",
)


def jsonable(value: Any) -> Any:
    """A value as the project writes it in JSON: bytes as hex, times in RFC 3339 (UTC, "Z"),
    enums by name (by value for string enums), dataclasses as objects of their fields,
    sequences and mappings recursively."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.name if not isinstance(value.value, str) else value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    return value


def rfc3339(when: dt.datetime) -> str:
    """UTC with a "Z": naive datetimes are taken as UTC, as the registry stores them."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def emit_json(value: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(jsonable(value), sort_keys=True))


def emit_json_line(value: Any) -> None:
    """One line of a JSON-lines stream (a command that reports items as they come)."""
    click.echo(json.dumps(jsonable(value), sort_keys=True, separators=(",", ":")))


def message_dict(message: Any) -> dict[str, Any]:
    """A protobuf message as the CLI writes it: the proto field names (snake_case), every
    field present (defaults too; a message field or a proto3 ``optional`` field that is not
    set as ``null``, at every depth), a ``oneof`` as its one member that is set (the others
    left out), bytes as hex (not base64; in repeated fields, map values and
    ``google.protobuf.BytesValue`` too), Timestamps in RFC 3339."""
    from google.protobuf import json_format

    out = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    done: dict[str, Any] = _message_value(message, out)
    return done


def _message_value(message: Any, value: Any) -> Any:
    """``value`` (what MessageToDict wrote for ``message``) as the project writes it."""
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.BytesValue":
        return bytes(message.value).hex()
    if name == "google.protobuf.Any":
        return _any_value(message, value)
    if name in _WELL_KNOWN:  # their own JSON forms: a string, a number, a list, an object
        return value
    _complete(message, value)
    return value


def _complete(message: Any, out: dict[str, Any]) -> None:
    from google.protobuf.descriptor import FieldDescriptor as fd

    descriptor = message.DESCRIPTOR
    in_oneof = _real_oneof_fields(descriptor)
    for field in descriptor.fields:
        name = field.name
        if name not in out:
            # left out by MessageToDict: a field with presence that is not set
            if not field.is_repeated and name not in in_oneof:
                out[name] = None
            continue
        value = getattr(message, name)
        if field.type == fd.TYPE_BYTES:
            out[name] = [bytes(v).hex() for v in value] if field.is_repeated else value.hex()
        elif field.type == fd.TYPE_MESSAGE:
            if field.message_type.GetOptions().map_entry:
                _complete_map(field.message_type, value, out[name])
            elif field.is_repeated:
                out[name] = [_message_value(v, j) for v, j in zip(value, out[name], strict=True)]
            else:
                out[name] = _message_value(value, out[name])


def _complete_map(entry: Any, mapping: Any, out: dict[str, Any]) -> None:
    """A map field: MessageToDict wrote its keys as JSON strings; its values as above."""
    from google.protobuf.descriptor import FieldDescriptor as fd

    field = entry.fields_by_name["value"]
    if field.type not in (fd.TYPE_BYTES, fd.TYPE_MESSAGE):
        return
    for key, value in mapping.items():
        shown = ("true" if key else "false") if isinstance(key, bool) else str(key)
        if field.type == fd.TYPE_BYTES:
            out[shown] = bytes(value).hex()
        else:
            out[shown] = _message_value(value, out[shown])


def _any_value(message: Any, value: Any) -> Any:
    """A ``google.protobuf.Any``: ``{"@type": ..., <the packed message's fields>}`` (or
    ``"value"`` for a packed well-known type), the packed message written as above."""
    from google.protobuf import descriptor_pool, message_factory

    if not isinstance(value, dict) or not message.type_url:
        return value
    try:  # the pool MessageToDict resolved it in
        descriptor = descriptor_pool.Default().FindMessageTypeByName(message.TypeName())
    except KeyError:
        return value  # MessageToDict could not have written it either
    inner = message_factory.GetMessageClass(descriptor)()
    if not message.Unpack(inner):
        return value
    if descriptor.full_name in _WELL_KNOWN:
        if "value" in value:
            value["value"] = _message_value(inner, value["value"])
        return value
    _complete(inner, value)
    return value


def _real_oneof_fields(descriptor: Any) -> frozenset[str]:
    """The fields of ``descriptor`` in a real ``oneof`` (not the synthetic one proto3 wraps
    each ``optional`` field in): MessageToDict writes only the member that is set."""
    found = _ONEOF_FIELDS.get(descriptor.full_name)
    if found is None:
        from google.protobuf import descriptor_pb2

        proto = descriptor_pb2.DescriptorProto()
        descriptor.CopyToProto(proto)
        found = frozenset(
            f.name for f in proto.field if f.HasField("oneof_index") and not f.proto3_optional
        )
        _ONEOF_FIELDS[descriptor.full_name] = found
    return found


_ONEOF_FIELDS: dict[str, frozenset[str]] = {}

#: types MessageToDict writes in their own JSON form (BytesValue and Any are handled above)
_WELL_KNOWN = frozenset(
    {
        "google.protobuf.Timestamp",
        "google.protobuf.Duration",
        "google.protobuf.FieldMask",
        "google.protobuf.Struct",
        "google.protobuf.Value",
        "google.protobuf.ListValue",
        "google.protobuf.DoubleValue",
        "google.protobuf.FloatValue",
        "google.protobuf.Int64Value",
        "google.protobuf.UInt64Value",
        "google.protobuf.Int32Value",
        "google.protobuf.UInt32Value",
        "google.protobuf.BoolValue",
        "google.protobuf.StringValue",
        "google.protobuf.BytesValue",
        "google.protobuf.Any",
    }
)


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    """A plain-text table for people: columns padded to the widest cell."""
    cells = [[str(h) for h in header], *[["" if c is None else str(c) for c in r] for r in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def refusal_line(device_id: str, reason: str, detail: str, upgrade_path: Iterable[str] = ()) -> str:
    """One refused device, as every command reports one: device, reason code, detail and,
    where there is one, the upgrade path (the firmware versions to install first), unless
    the detail already spells it out (the server's pathway refusals do)."""
    path = " -> ".join(upgrade_path)
    tail = f" (upgrade path: {path})" if path and path not in detail else ""
    return f"refused {device_id}: {reason}: {detail}{tail}"
