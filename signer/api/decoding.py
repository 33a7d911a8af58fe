"""Request bytes that are not the request message: INVALID_ARGUMENT naming the field, not
grpcio's INTERNAL "Exception deserializing request!".

grpcio answers a deserializer that raises before any handler (or interceptor) runs, so the
client cannot tell its own broken message from our bug, and metrics never see the call.
`tolerant` wraps a method's deserializer so that a decode failure becomes an `Undecodable`
marker instead; the outcome interceptor turns the marker into an `UndecodableRequest`, after
authentication, with the call counted like any other. upb only says "Wire format was
corrupt" or "String field had bad UTF-8"; `locate` walks the wire format against the
message's descriptor to say which field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from signer.errors import InvalidInput

Deserializer = Callable[[bytes], Any]

_VARINT, _I64, _LEN, _SGROUP, _EGROUP, _I32 = range(6)
_FIXED = {_I64: 8, _I32: 4}
_T = FieldDescriptor
_WIRE_OF: dict[int, int] = {
    **dict.fromkeys((_T.TYPE_STRING, _T.TYPE_BYTES, _T.TYPE_MESSAGE), _LEN),
    **dict.fromkeys((_T.TYPE_DOUBLE, _T.TYPE_FIXED64, _T.TYPE_SFIXED64), _I64),
    **dict.fromkeys((_T.TYPE_FLOAT, _T.TYPE_FIXED32, _T.TYPE_SFIXED32), _I32),
}
#: a walk over more fields than this gives up naming the field (upb's reason still stands)
MAX_FIELDS = 100_000
MAX_DEPTH = 64


class UndecodableRequest(InvalidInput):
    """A request message (or one message of a request stream) that does not decode."""


@dataclass(frozen=True)
class Undecodable:
    """What the tolerant deserializer hands on instead of a message: no copy of the bytes."""

    type_name: str
    field: str | None
    reason: str
    size: int

    def error(self, index: int | None = None) -> UndecodableRequest:
        """The refusal; ``index`` is the 0-based position of the message in a request stream."""
        which = "the request" if index is None else f"message {index} of the request stream"
        return UndecodableRequest(
            f"{which} ({self.size} bytes) does not decode as {self.type_name}: {self.reason}",
            field=self.field,
        )


def tolerant(deserializer: Deserializer | None, descriptor: Descriptor) -> Deserializer | None:
    """``deserializer``, returning an `Undecodable` where it would raise."""
    if deserializer is None:
        return None
    inner = deserializer

    def deserialize(data: bytes) -> Any:
        try:
            return inner(data)
        except Exception:  # any failure of the parser means "not this message"
            field, reason = locate(descriptor, data)
            return Undecodable(descriptor.full_name, field, reason, len(data))

    return deserialize


class _Fault(Exception):
    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class _Budget:
    def __init__(self) -> None:
        self.left = MAX_FIELDS


def locate(descriptor: Descriptor, data: bytes) -> tuple[str | None, str]:
    """(field path, reason) of the first fault in ``data`` as a ``descriptor`` message; the
    path is None when the fault is not inside a known field."""
    try:
        _walk(descriptor, memoryview(data), 0, len(data), "", 0, _Budget())
    except _Fault as fault:
        return fault.field, fault.reason
    return None, "the wire format is corrupt"


def _varint(data: memoryview, pos: int, end: int, field: str | None, what: str) -> tuple[int, int]:
    value, shift = 0, 0
    while pos < end and shift < 70:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if shift == 63 and byte > 1:
                break
            return value, pos
        shift += 7
    raise _Fault(field, f"truncated or overlong varint ({what})")


def _walk(
    desc: Descriptor | None,
    data: memoryview,
    pos: int,
    end: int,
    prefix: str,
    depth: int,
    budget: _Budget,
    group: int | None = None,
) -> int:
    """Check the fields in ``data[pos:end]``; raise `_Fault` at the first broken one."""
    if depth > MAX_DEPTH:
        raise _Fault(prefix.rstrip(".") or None, "nested too deeply")
    seen: dict[int, int] = {}
    where = prefix.rstrip(".") or None
    while pos < end:
        budget.left -= 1
        if budget.left < 0:
            raise _Fault(where, "the wire format is corrupt")
        tag, pos = _varint(data, pos, end, where, "field tag")
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > 0x1FFFFFFF:
            raise _Fault(where, f"field number {number} is not valid")
        field = desc.fields_by_number.get(number) if desc is not None else None
        if field is not None:
            n = seen.get(number, 0)
            seen[number] = n + 1
            name = prefix + field.name + (f"[{n}]" if field.is_repeated else "")
        else:
            name = f"{prefix}#{number}"  # an unknown field
        if field is not None and _WIRE_OF.get(field.type, _VARINT) != wire:
            field = None  # upb keeps a field sent with another wire type as an unknown one
        if wire == _VARINT:
            _, pos = _varint(data, pos, end, name, "value")
        elif wire in _FIXED:
            if end - pos < _FIXED[wire]:
                raise _Fault(name, f"truncated {8 * _FIXED[wire]}-bit value")
            pos += _FIXED[wire]
        elif wire == _LEN:
            size, pos = _varint(data, pos, end, name, "length")
            if size > end - pos:
                raise _Fault(name, f"length {size} runs past the end ({end - pos} bytes left)")
            if field is not None and field.type == _T.TYPE_STRING:
                try:
                    bytes(data[pos : pos + size]).decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise _Fault(name, f"not valid UTF-8 (at byte {exc.start})") from None
            elif field is not None and field.type == _T.TYPE_MESSAGE:
                _walk(field.message_type, data, pos, pos + size, name + ".", depth + 1, budget)
            pos += size
        elif wire == _SGROUP:
            pos = _walk(None, data, pos, end, name + ".", depth + 1, budget, group=number)
        elif wire == _EGROUP:
            if group != number:
                raise _Fault(where, f"end of group {number} that was not started")
            return pos
        else:
            raise _Fault(name, f"wire type {wire} does not exist")
    if group is not None:
        raise _Fault(where, "group not ended")
    return pos
