"""The header of a GBCS General-Signing APDU (0xDF), read once for every message that has one.

CS06 pre-commands and 6.24.1 responses carry the same header; what each then demands of it
(which CRA flag, which message codes) and how it points at a wrongly sized field stays with
the caller, so both keep the errors they have always reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from signer.errors import FormatError
from signer.gbcs import _ber
from signer.gbcs.eui import Eui64

TAG_GENERAL_SIGNING: Final = 0xDF
CRA_COMMAND: Final = 0x01
CRA_RESPONSE: Final = 0x02
CRA_ALERT: Final = 0x03
CRA_NAMES: Final = {CRA_COMMAND: "command", CRA_RESPONSE: "response", CRA_ALERT: "alert"}

Refuse = Callable[[int], str | None]
"""Why a header value is unacceptable to the caller, or None; raised at the value's offset."""

SizeErrorAt = Literal["length", "before_content"]
"""Where a wrongly sized field is reported: its first length byte, or the byte just before
its content (its last length byte); the two differ only for long-form lengths."""


@dataclass(frozen=True, slots=True)
class Header:
    cra_flag: int
    originator_counter: int
    originator: Eui64
    recipient: Eui64
    date_time: bytes | None
    message_code: int
    content_start: int
    content_end: int


def read_header(
    data: bytes,
    start: int,
    limit: int,
    *,
    field: str,
    size_error_at: SizeErrorAt,
    refuse_cra: Refuse | None = None,
    refuse_message_code: Refuse | None = None,
) -> Header:
    """Read the header of the APDU whose tag is at ``start`` (the caller checked the tag).

    The refusals run as soon as their value is read, before anything after it is parsed.
    """

    def sized(what: str, pos: int, sizes: tuple[int, ...], expected: str) -> tuple[int, int]:
        value_start, value_end = _ber.length_prefixed(data, pos, limit, field=field, what=what)
        if value_end - value_start not in sizes:
            raise FormatError(
                f"{what} is {value_end - value_start} bytes, expected {expected}",
                field=field,
                offset=pos if size_error_at == "length" else value_start - 1,
            )
        return value_start, value_end

    def check(refuse: Refuse | None, value: int, offset: int) -> None:
        why = refuse(value) if refuse is not None else None
        if why is not None:
            raise FormatError(why, field=field, offset=offset)

    tid_start, pos = sized("transaction-id", start + 1, (9,), "9 (CRA flag + counter)")
    check(refuse_cra, data[tid_start], tid_start)
    euis: list[Eui64] = []
    for what in ("originator-system-title", "recipient-system-title"):
        eui_start, pos = sized(what, pos, (8,), "an 8-byte EUI-64")
        euis.append(Eui64(bytes(data[eui_start:pos])))
    dt_start, pos = sized("date-time", pos, (0, 12), "0 or 12")
    date_time = bytes(data[dt_start:pos]) or None
    code_start, pos = sized("other-information", pos, (2,), "a 2-byte message code")
    message_code = int.from_bytes(data[code_start:pos], "big")
    check(refuse_message_code, message_code, code_start)
    content_start, content_end = _ber.length_prefixed(data, pos, limit, field=field, what="content")
    return Header(
        cra_flag=data[tid_start],
        originator_counter=int.from_bytes(data[tid_start + 1 : tid_start + 9], "big"),
        originator=euis[0],
        recipient=euis[1],
        date_time=date_time,
        message_code=message_code,
        content_start=content_start,
        content_end=content_end,
    )
