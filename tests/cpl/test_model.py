"""CPL entry vocabulary (MP231 wording) and the OTA header <-> CPL entry check."""

from __future__ import annotations

from typing import Any

import pytest

from signer.cpl.model import (
    BandJoinOption,
    CplEntry,
    DeviceType,
    file_version_text,
    firmware_version_number,
    ota_matches_entry,
)
from signer.errors import InvalidInput
from tests.support.cpl_factory import digest, entry

# MP231 §3, "Joining options for ZigBee band", copied from the seed (its dashes are U+2013).
MP231_JOIN_OPTIONS = [
    "2.4 GHz Only",
    "Sub-GHz Only",
    "Multi MAC Selection \u2013 Auto",
    "Multi MAC Selection \u2013 Manual",
    "Multi MAC Selection \u2013 Either",
    "Dual Band",
]


def test_the_six_join_options_are_mp231s() -> None:
    assert [o.value for o in BandJoinOption] == MP231_JOIN_OPTIONS
    for text in MP231_JOIN_OPTIONS:
        assert BandJoinOption.parse(text).value == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("multi mac selection - auto", BandJoinOption.MULTI_MAC_AUTO),
        ("Multi MAC Selection-Manual", BandJoinOption.MULTI_MAC_MANUAL),
        ("MULTI  MAC SELECTION \u2014 EITHER", BandJoinOption.MULTI_MAC_EITHER),
        ("2.4GHz only", BandJoinOption.GHZ_2_4_ONLY),
        (" sub-ghz only ", BandJoinOption.SUB_GHZ_ONLY),
        ("dual band", BandJoinOption.DUAL_BAND),
    ],
)
def test_join_option_spellings(text: str, expected: BandJoinOption) -> None:
    assert BandJoinOption.parse(text) is expected


@pytest.mark.parametrize("text", ["Single Band (2.4GHz)", "Multi MAC Selection", "Tri Band", ""])
def test_unknown_join_options_are_refused_with_the_accepted_list(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        BandJoinOption.parse(text)
    assert exc.value.field == "band_join_option"
    assert "Sub-GHz Only" in exc.value.message and "Dual Band" in exc.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ESME", DeviceType.ESME),
        ("esme", DeviceType.ESME),
        ("Electricity Smart Metering Equipment", DeviceType.ESME),
        ("GSMEs", DeviceType.GSME),
        ("Comms Hub", DeviceType.COMMS_HUB),
        ("Communications Hubs", DeviceType.COMMS_HUB),
        ("Prepayment Meter Interface Devices", DeviceType.PPMID),
        ("HAN Connected Auxiliary Load Control Switches", DeviceType.HCALCS),
        ("hcalcs", DeviceType.HCALCS),
        ("Standalone Auxiliary Proportional Controller", DeviceType.SAPC),
    ],
)
def test_device_types_in_mp231_wording(text: str, expected: DeviceType) -> None:
    assert DeviceType.parse(text) is expected


@pytest.mark.parametrize("text", ["CHF", "CH", "IHD", "GPF", "Gas Proxy Function", ""])
def test_device_types_mp231_does_not_name_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        DeviceType.parse(text)
    assert exc.value.field == "device_type"
    assert "ESME" in exc.value.message and "SAPC" in exc.value.message


def test_comms_hub_displays_as_the_issue_writes_it() -> None:
    assert DeviceType.COMMS_HUB.value == "Comms Hub"


# --- OTA header <-> CPL entry ---------------------------------------------------------------


def cpl(**kwargs: Any) -> CplEntry:
    base: dict[str, Any] = {
        "firmware_version": "01020304",
        "image_type": 0x0001,
        "hardware_version": 0x0100,
        "manufacturer_code": 0x121D,
    }
    base.update(kwargs)
    return entry("CPL-7", [], **base)


def test_agreeing_header_gives_no_mismatch() -> None:
    assert ota_matches_entry(0x121D, 0x0001, 0x01020304, cpl()) == []
    assert (
        ota_matches_entry(  # 0x prefix and lower case are the same 8 hex digits
            0x121D, 0x0001, 0x0A0B0C0D, cpl(firmware_version="0x0a0b0c0d")
        )
        == []
    )


def test_each_mismatch_is_named_in_words() -> None:
    e = cpl()
    [m] = ota_matches_entry(0x1234, 0x0001, 0x01020304, e)
    assert m.startswith("manufacturer code") and "0x1234" in m and "0x121D" in m and "CPL-7" in m
    [m] = ota_matches_entry(0x121D, 0x0002, 0x01020304, e)
    assert m.startswith("image type") and "0x0002" in m
    [m] = ota_matches_entry(0x121D, 0x0001, 0x01020305, e)
    assert m.startswith("firmware version") and "01020305" in m
    every = ota_matches_entry(0x1234, 0x0002, 0x01020305, e)
    assert len(every) == 3


def test_version_not_written_as_8_hex_digits_cannot_be_compared() -> None:
    # 1.2.3.4 could well be 0x01020304, but that split is the manufacturer's: not guessed.
    [m] = ota_matches_entry(0x121D, 0x0001, 0x01020304, cpl(firmware_version="1.2.3.4"))
    assert "cannot be compared" in m and "1.2.3.4" in m
    assert firmware_version_number("1020304") is None  # 7 digits: not padded by guesswork
    assert firmware_version_number("16909060") == 0x16909060  # 8 digits are always hex


def test_entry_without_image_type_cannot_be_tied_to_a_header() -> None:
    [m] = ota_matches_entry(0x121D, 0x0001, 0x01020304, cpl(image_type=None))
    assert m.startswith("image type") and "records none" in m


def test_hardware_version_must_lie_in_the_header_range() -> None:
    e = cpl(hardware_version=0x0300)
    assert ota_matches_entry(0x121D, 1, 0x01020304, e) == []  # no range
    [m] = ota_matches_entry(
        0x121D, 1, 0x01020304, e, min_hardware_version=0x0100, max_hardware_version=0x0200
    )
    assert m.startswith("hardware version") and "0x0300" in m
    assert (
        ota_matches_entry(
            0x121D, 1, 0x01020304, e, min_hardware_version=0x0300, max_hardware_version=0x0300
        )
        == []
    )


def test_file_version_text() -> None:
    assert file_version_text(0x01020304) == "01020304"
    assert file_version_text(0xABCDEF00) == "ABCDEF00"
    assert firmware_version_number("abcdef00") == 0xABCDEF00
    with pytest.raises(InvalidInput):
        file_version_text(1 << 32)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"image_hash": digest("x")[:31]}, "image_hash"),
        ({"manufacturer_code": 0x10000}, "manufacturer_code"),
        ({"hardware_version": -1}, "hardware_version"),
        ({"model": ""}, "model"),
        ({"firmware_version": ""}, "firmware_version"),
    ],
)
def test_entry_invariants(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        entry("E", [], **kwargs)
    assert exc.value.field == field


@pytest.mark.parametrize("bad", ["", "N/A", "n/a", "a b", "a;b", "a,b", 'a"b', "a\\b", "x" * 65])
def test_entry_id_rules(bad: str) -> None:
    with pytest.raises(InvalidInput):
        entry(bad, [])
