"""The device list's fast paths agree with the general ones: ``parse_devices`` decoding a
whole DUIS-form list at once gives what parsing each ID gives, and refuses what it refuses
with the same message and field; ``device_id_list`` joins and checks as before."""

from __future__ import annotations

import pytest

from signer.duis.request import MAX_DEVICE_ID_LIST_CHARS, device_id_list
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.service import devices
from signer.service.devices import MAX_DEVICES, parse_devices

GOOD = [f"00-DB-12-34-56-78-{i >> 8:02X}-{i & 0xFF:02X}" for i in range(300)]


def _general(ids: list[str]) -> list[Eui64] | tuple[str, str | None]:
    """What parsing each ID one by one gives (the path the fast one must agree with)."""
    try:
        out = devices._parse_each(ids, "device_ids")
    except InvalidInput as exc:
        return exc.message, exc.field
    if len({e.value for e in out}) != len(out):
        return "duplicate", None
    return out


def _outcome(ids: list[str]) -> list[Eui64] | tuple[str, str | None]:
    try:
        out = parse_devices(ids)
    except InvalidInput as exc:
        return ("duplicate", None) if "listed twice" in exc.message else (exc.message, exc.field)
    return out


VARIANTS = {
    "all in the DUIS form": GOOD,
    "lower case": [g.lower() for g in GOOD],
    "one with colons": [*GOOD[:5], "00:DB:12:34:56:78:FF:01", *GOOD[5:]],
    "one of 16 digits": [*GOOD[:5], "00DB1234567800FF", *GOOD[5:]],
    "one padded with spaces": [*GOOD[:5], " 00-DB-12-34-56-78-FF-02 ", *GOOD[5:]],
    "a space in place of a digit": [*GOOD[:7], "00-DB-12-34-56-78-FF-0 ", *GOOD[7:]],
    "a comma inside one ID, shifting the next": [*GOOD[:3], "00-DB,12-34-56-78-FF-03", *GOOD[3:]],
    "two IDs in one, and one short": ["00-DB-12-34-56-78-FF-04,00-DB-12-34-56-78-FF-05", "00"],
    "a dash in place of a digit": [*GOOD[:9], "00-DB-12-34-56-78-FF--", *GOOD[9:]],
    "a non-hex digit": [*GOOD[:9], "00-DB-12-34-56-78-FF-0G", *GOOD[9:]],
    "a non-ASCII digit": [*GOOD[:9], "00-DB-12-34-56-78-FF-0\u0660", *GOOD[9:]],
    "one too long": [*GOOD[:2], "00-DB-12-34-56-78-FF-0600", *GOOD[2:]],
    "one too short": [*GOOD[:2], "00-DB-12-34-56-78-FF", *GOOD[2:]],
    "one short and one long, same total": ["00-DB-12-34-56-78-FF-0", "700-DB-12-34-56-78-FF-08"],
    "colons in the DUIS places": ["00:DB:12:34:56:78:FF:09", *GOOD],
    "empty ID": [*GOOD[:4], "", *GOOD[4:]],
    "a duplicate": [*GOOD, GOOD[17]],
    "a duplicate in another case": [*GOOD, GOOD[17].lower()],
    "a duplicate in another form": [*GOOD, GOOD[17].replace("-", "")],
    "one ID": [GOOD[0]],
}


@pytest.mark.parametrize("name", VARIANTS)
def test_the_whole_list_decoder_agrees_with_parsing_each_id(name: str) -> None:
    ids = VARIANTS[name]
    assert _outcome(ids) == _general(ids)


def test_the_fast_path_is_taken_for_duis_form_lists_only() -> None:
    values = devices._duis_form_values(GOOD)
    assert values is not None and [Eui64(v) for v in values] == devices._parse_each(GOOD, "x")
    for name, ids in VARIANTS.items():
        if name not in {"all in the DUIS form", "lower case", "one ID"} and "duplicate" not in name:
            assert devices._duis_form_values(ids) is None, name


def test_an_eui_from_the_fast_path_is_an_ordinary_eui() -> None:
    (eui,) = parse_devices([GOOD[1]])
    assert eui == Eui64.parse(GOOD[1]) and hash(eui) == hash(Eui64.parse(GOOD[1]))
    assert str(eui) == GOOD[1] and eui.hex == GOOD[1].replace("-", "")


def test_the_errors_name_the_index_of_the_bad_or_repeated_id() -> None:
    with pytest.raises(InvalidInput) as bad:
        parse_devices([*GOOD[:3], "00-DB-12-34-56-78-FF-0G"])
    assert bad.value.field == "device_ids[3]"
    with pytest.raises(InvalidInput) as twice:
        parse_devices([*GOOD[:3], GOOD[1].lower()])
    assert twice.value.field == "device_ids[3]" and "listed twice" in twice.value.message
    with pytest.raises(InvalidInput, match="exceed the DUIS limit"):
        parse_devices(["x"] * (MAX_DEVICES + 1))


def test_a_full_list_decodes_at_once() -> None:
    ids = [
        f"00-DB-00-00-00-{i >> 16:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"
        for i in range(MAX_DEVICES)
    ]
    assert devices._duis_form_values(ids) is not None
    out = parse_devices(ids)
    assert len(out) == MAX_DEVICES and out[-1] == Eui64.parse(ids[-1])
    assert len(device_id_list(out)) == MAX_DEVICE_ID_LIST_CHARS
    assert device_id_list(out) == ",".join(str(d) for d in out)


def test_device_id_list_refuses_a_repeated_device_by_its_index() -> None:
    euis = [Eui64.parse(g) for g in GOOD[:4]]
    assert device_id_list(euis) == ",".join(GOOD[:4])
    with pytest.raises(InvalidInput, match=r"listed twice \(index 4\)"):
        device_id_list([*euis, Eui64.parse(GOOD[2])])
