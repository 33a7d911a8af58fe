"""CPL entries as modification MP231 extends them, and how an OTA header maps to one.

An entry ID, not a firmware version string, identifies firmware. ``ota_matches_entry``
checks that an image matches its entry identically (seed 004 BR02/BR03). See docs/cpl.md
(the field-by-field mapping).
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass

from signer.errors import InvalidInput

NOT_APPLICABLE = "N/A"
"""What MP231 writes in the "upgraded from" field of an entry that has no predecessor."""

ENTRY_ID_MAX_CHARS = 64
# Printable ASCII without blanks, the list separators (';' and ','), quotes and backslash:
# an ID then survives CSV cells, DOT files and shells without surprises.
_ENTRY_ID = re.compile(rf"[^\s\"',;\\]{{1,{ENTRY_ID_MAX_CHARS}}}")
_FIRMWARE_HEX = re.compile(r"^(?:0[xX])?([0-9A-Fa-f]{8})$")
HASH_LENGTH = 32


def _key(text: str) -> str:
    """Spelling-insensitive key: case, runs of blanks and dash variants do not matter."""
    t = unicodedata.normalize("NFKC", text).casefold()
    t = re.sub(r"[\u2010-\u2015\u2212]", "-", t)
    return " ".join(t.replace("-", " - ").split()).replace(" - ", "-")


class DeviceType(enum.Enum):
    """The device types MP231 brings into scope; the value is how we display it."""

    ESME = "ESME"
    GSME = "GSME"
    COMMS_HUB = "Comms Hub"
    PPMID = "PPMID"
    HCALCS = "HCALCS"
    SAPC = "SAPC"

    @classmethod
    def parse(cls, text: str, *, field: str = "device_type") -> DeviceType:
        """The abbreviation or the name MP231 uses (singular or plural), any case.

        "CHF" and "CH" are not accepted: MP231 never writes them.
        """
        found = _DEVICE_SPELLINGS.get(_key(text))
        if found is None:
            raise InvalidInput(
                f"unknown device type {_shown(text)}; accepted (any case, plurals too): "
                f"{', '.join(DEVICE_TYPE_SPELLINGS)}",
                field=field,
            )
        return found


DEVICE_TYPE_SPELLINGS: tuple[str, ...] = (
    "ESME",
    "Electricity Smart Metering Equipment",
    "GSME",
    "Gas Smart Metering Equipment",
    "Comms Hub",
    "Communications Hub",
    "PPMID",
    "Prepayment Meter Interface Device",
    "HCALCS",
    "HAN Connected Auxiliary Load Control Switch",
    "SAPC",
    "Standalone Auxiliary Proportional Controller",
)
_DEVICE_SPELLINGS: dict[str, DeviceType] = {}
for _type, _names in (
    (DeviceType.ESME, ("ESME", "ESMEs", "Electricity Smart Metering Equipment")),
    (DeviceType.GSME, ("GSME", "GSMEs", "Gas Smart Metering Equipment")),
    (
        DeviceType.COMMS_HUB,
        ("Comms Hub", "Comms Hubs", "Communications Hub", "Communications Hubs"),
    ),
    (
        DeviceType.PPMID,
        (
            "PPMID",
            "PPMIDs",
            "Prepayment Meter Interface Device",
            "Prepayment Meter Interface Devices",
        ),
    ),
    (
        DeviceType.HCALCS,
        (
            "HCALCS",
            "HAN Connected Auxiliary Load Control Switch",
            "HAN Connected Auxiliary Load Control Switches",
        ),
    ),
    (
        DeviceType.SAPC,
        (
            "SAPC",
            "SAPCs",
            "Standalone Auxiliary Proportional Controller",
            "Standalone Auxiliary Proportional Controllers",
        ),
    ),
):
    for _name in _names:
        _DEVICE_SPELLINGS[_key(_name)] = _type


class BandJoinOption(enum.Enum):
    """How the device joins the HAN: the six options of MP231 §3, valued as MP231 writes them.

    The pre-MP231 optional CPL field offered "Single Band (2.4GHz)", "Single Band (Sub-GHz)"
    and "Dual Band"; MP231 split that old "Dual Band" into the three Multi MAC options and gave
    "Dual Band" the new meaning "both bands simultaneously", which only Communications Hubs
    can do. The old single-band spellings are therefore refused rather than mapped.
    """

    GHZ_2_4_ONLY = "2.4 GHz Only"
    SUB_GHZ_ONLY = "Sub-GHz Only"
    MULTI_MAC_AUTO = "Multi MAC Selection \u2013 Auto"
    MULTI_MAC_MANUAL = "Multi MAC Selection \u2013 Manual"
    MULTI_MAC_EITHER = "Multi MAC Selection \u2013 Either"
    DUAL_BAND = "Dual Band"

    @classmethod
    def parse(cls, text: str, *, field: str = "band_join_option") -> BandJoinOption:
        """MP231's wording; case, blanks and the kind of dash are free ("2.4GHz only" too)."""
        key = _key(text).replace(" ", "")
        found = _BAND_SPELLINGS.get(key)
        if found is None:
            accepted = ", ".join(repr(o.value) for o in cls)
            legacy = " (a pre-MP231 value, which MP231 replaced)" if "singleband" in key else ""
            raise InvalidInput(
                f"unknown band join option {_shown(text)}{legacy}; accepted (MP231 §3): {accepted}",
                field=field,
            )
        return found


_BAND_SPELLINGS = {_key(o.value).replace(" ", ""): o for o in BandJoinOption}


@dataclass(frozen=True, slots=True)
class CplEntry:
    """One CPL entry with the MP231 fields.

    ``upgrade_from`` holds the entry IDs a device may be upgraded *from* to reach this entry;
    empty for MP231's "N/A" (no predecessor). ``pathway_known`` is False when the CPL left the
    field empty: MP231 fills existing entries on a best-endeavours basis and leaves the field
    empty where it could not, which is not the same as "N/A" (both allow no upgrade to this
    entry). ``zigbee_chipset_vendor`` and ``zigbee_stack_version`` are "" when not recorded
    (MP231 keeps them in an SSC-only database, so a Supplier's extract may lack them);
    ``band_join_option`` is None for an existing entry that has not been back-filled.
    """

    entry_id: str
    manufacturer_code: int
    device_type: DeviceType
    model: str
    image_type: int | None
    hardware_version: int | None
    firmware_version: str
    image_hash: bytes
    upgrade_from: frozenset[str]
    zigbee_chipset_vendor: str
    zigbee_stack_version: str
    band_join_option: BandJoinOption | None
    pathway_known: bool = True

    def __post_init__(self) -> None:
        check_entry_id(self.entry_id)
        for name in ("manufacturer_code", "image_type", "hardware_version"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 0xFFFF:
                raise InvalidInput(f"{name} must fit 16 bits, got {value}", field=name)
        if len(self.image_hash) != HASH_LENGTH:
            raise InvalidInput(
                f"the image hash is SHA-256 ({HASH_LENGTH} bytes), got {len(self.image_hash)}",
                field="image_hash",
            )
        if not self.model:
            raise InvalidInput("the model is empty", field="model")
        if not self.firmware_version:
            raise InvalidInput("the firmware version is empty", field="firmware_version")
        for pred in self.upgrade_from:
            check_entry_id(pred, field="upgrade_from")
        if self.entry_id in self.upgrade_from:
            raise InvalidInput(
                f"entry {self.entry_id} lists itself as a predecessor", field="upgrade_from"
            )
        if not self.pathway_known and self.upgrade_from:
            raise InvalidInput(
                "an entry with an unknown pathway cannot list predecessors", field="upgrade_from"
            )

    @property
    def is_root(self) -> bool:
        """An MP231 "N/A" entry: known to have no predecessor."""
        return self.pathway_known and not self.upgrade_from


def check_entry_id(text: str, *, field: str = "entry_id") -> str:
    """Refuse an ID that is empty, "N/A", too long, or holds blanks, ';', ',', quotes or '\\'."""
    if not (text.isascii() and text.isprintable() and _ENTRY_ID.fullmatch(text)):
        raise InvalidInput(
            f"entry ID {_shown(text)} must be 1 to {ENTRY_ID_MAX_CHARS} printable ASCII "
            "characters without blanks, ';', ',', quotes or backslash",
            field=field,
        )
    if text.upper() == NOT_APPLICABLE:
        raise InvalidInput("'N/A' cannot be an entry ID", field=field)
    return text


def same_model(a: CplEntry, b: CplEntry) -> bool:
    """Same manufacturer, device type and model: a device on ``a`` could run ``b``'s firmware."""
    return model_key(a) == model_key(b)


def model_key(entry: CplEntry) -> tuple[int, DeviceType, str]:
    """What "the same model" means here: the model name alone is not unique across makers."""
    return (entry.manufacturer_code, entry.device_type, entry.model)


def file_version_text(file_version: int) -> str:
    """The OTA file version as the CPL must write it: 8 upper-case hex digits."""
    if not 0 <= file_version <= 0xFFFFFFFF:
        raise InvalidInput(
            f"file version must fit 32 bits, got {file_version}", field="file_version"
        )
    return f"{file_version:08X}"


def firmware_version_number(text: str) -> int | None:
    """The OTA file version a CPL firmware version stands for; None when not 8 hex digits."""
    m = _FIRMWARE_HEX.match(text.strip())
    return int(m.group(1), 16) if m else None


def ota_matches_entry(
    manufacturer_code: int,
    image_type: int,
    file_version: int,
    entry: CplEntry,
    *,
    min_hardware_version: int | None = None,
    max_hardware_version: int | None = None,
) -> list[str]:
    """Every way the OTA header disagrees with ``entry``, in words; empty when they agree.

    The hardware range is checked only when the header carries one (field control bit 2).
    """
    problems = []
    eid = entry.entry_id
    if manufacturer_code != entry.manufacturer_code:
        problems.append(
            f"manufacturer code: OTA header 0x{manufacturer_code:04X}, "
            f"CPL entry {eid} 0x{entry.manufacturer_code:04X}"
        )
    if entry.image_type is None:
        problems.append(
            f"image type: CPL entry {eid} records none, so OTA image type 0x{image_type:04X} "
            f"cannot be tied to model {entry.model!r}"
        )
    elif image_type != entry.image_type:
        problems.append(
            f"image type: OTA header 0x{image_type:04X}, CPL entry {eid} 0x{entry.image_type:04X}"
        )
    cpl_version = firmware_version_number(entry.firmware_version)
    ota_version = file_version_text(file_version)
    if cpl_version is None:
        problems.append(
            f"firmware version: CPL entry {eid} writes {entry.firmware_version!r}, not 8 hex "
            f"digits, so it cannot be compared with OTA file version {ota_version}"
        )
    elif cpl_version != file_version:
        problems.append(
            f"firmware version: OTA file version {ota_version}, CPL entry {eid} "
            f"{entry.firmware_version!r}"
        )
    if min_hardware_version is not None and max_hardware_version is not None:
        hw = entry.hardware_version
        if hw is None:
            problems.append(
                f"hardware version: CPL entry {eid} records none, so the OTA header's "
                f"0x{min_hardware_version:04X}..0x{max_hardware_version:04X} cannot be checked"
            )
        elif not min_hardware_version <= hw <= max_hardware_version:
            problems.append(
                f"hardware version: CPL entry {eid} is for 0x{hw:04X}, outside the OTA "
                f"header's 0x{min_hardware_version:04X}..0x{max_hardware_version:04X}"
            )
    return problems


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "...")
