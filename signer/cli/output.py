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
    field present (defaults too), bytes as hex (not base64), Timestamps in RFC 3339."""
    from google.protobuf import json_format
    from google.protobuf.descriptor import FieldDescriptor

    out = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    _hex_bytes(message, out, FieldDescriptor)
    return out


def _hex_bytes(message: Any, out: dict[str, Any], fd: Any) -> None:
    """MessageToDict writes bytes in base64; the project writes them in hex."""
    import base64

    for field in message.DESCRIPTOR.fields:
        name = field.name
        if name not in out:
            continue
        repeated = field.is_repeated  # protobuf 7 has no `label`
        if field.type == fd.TYPE_BYTES:
            if repeated:
                out[name] = [base64.b64decode(v).hex() for v in out[name]]
            else:
                out[name] = base64.b64decode(out[name]).hex()
        elif field.type == fd.TYPE_MESSAGE and field.message_type.full_name not in _WELL_KNOWN:
            if field.message_type.GetOptions().map_entry:
                continue
            value = getattr(message, name)
            if repeated:
                for sub, sub_out in zip(value, out[name], strict=True):
                    _hex_bytes(sub, sub_out, fd)
            else:
                _hex_bytes(value, out[name], fd)


_WELL_KNOWN = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.Struct"}
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
