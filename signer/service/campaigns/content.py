"""A plan's canonical content and its ID: SHA-256 of it, built line by line.

The content (docs/campaigns.md) is one line per item, written as the plan is surveyed:
never the whole plan in memory. Beside the plan's one hasher, each part (the spec and
image, the keys, the CPL, the devices) has its own digest, so a recomputed plan that
differs can say what changed first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from signer.cpl.model import CplEntry
from signer.service.campaigns.views import CampaignSpec, Product

VERSION = "signer-campaign/1"
#: the parts, in the order a stale plan names what changed
PARTS = ("image", "cpl", "keys", "devices", "spec")
#: how each part is named to people
PART_NAMES = {
    "cpl": "the CPL entries the plan depends on",
    "devices": "a device's trust anchor cells or inventory",
    "keys": "a key's state or certificate",
    "image": "the image or the manufacturer certificate that verified it",
    "spec": "the campaign's specification",
}


def spec_json(spec: CampaignSpec) -> str:
    """The spec as the content and the database hold it: sorted keys, RFC 3339 or null."""
    value = {
        "image_id": spec.image_id,
        "product": spec.product.value,
        "service_reference": spec.service_reference,
        "firmware_version": spec.firmware_version,
        "force_replace": spec.force_replace,
        "execution_time": _rfc3339(spec.execution_time),
    }
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def spec_from_json(text: str) -> CampaignSpec:
    v = json.loads(text)
    when = v.get("execution_time")
    return CampaignSpec(
        image_id=v["image_id"],
        product=Product(v["product"]),
        service_reference=v["service_reference"],
        firmware_version=v["firmware_version"],
        force_replace=v["force_replace"],
        execution_time=dt.datetime.fromisoformat(when.replace("Z", "+00:00")) if when else None,
    )


def _rfc3339(when: dt.datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PLAIN = re.compile(r"[A-Za-z0-9._:=@/+-]+")


def token(text: str) -> str:
    """A client's string as one token of a content line: as is when plain, else a JSON
    string (a space, a newline or a quote in a refused device ID cannot make two lists'
    contents the same)."""
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=True)


class PlanHasher:
    """One hasher for the plan ID, one per part for saying what changed."""

    def __init__(self) -> None:
        self._plan = hashlib.sha256()
        self._parts = {p: hashlib.sha256() for p in PARTS}
        self._add("spec", VERSION)

    def _add(self, part: str, line: str) -> None:
        data = line.encode("utf-8") + b"\n"
        self._plan.update(data)
        self._parts[part].update(data)

    def header(self, spec: CampaignSpec, requester: str) -> None:
        self._add("spec", f"spec {spec_json(spec)}")
        self._add("spec", f"requester {token(requester)}")

    def supersedes(self, plan_id: str) -> None:
        self._add("spec", f"supersedes {plan_id}")

    def image(self, image_id: str, header_sha256: str, fingerprint: str) -> None:
        self._add("image", f"image {image_id} {header_sha256} {fingerprint}")

    def device(self, line: str) -> None:
        self._add("devices", f"device {line}")

    def key(self, label: str, ski: str, certificate_sha256: str, state: str) -> None:
        self._add("keys", f"key {label} {ski} {certificate_sha256} {state}")

    def cpl(self, entries: Iterable[CplEntry]) -> None:
        self._add("cpl", f"cpl {cpl_digest(entries)}")

    def plan_id(self) -> str:
        return self._plan.hexdigest()

    def parts(self) -> dict[str, str]:
        return {p: h.hexdigest() for p, h in self._parts.items()}


def cpl_digest(entries: Iterable[CplEntry]) -> str:
    """SHA-256 of the entries, by entry ID, every field of each."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.entry_id):
        h.update(json.dumps(_plain(dataclasses.asdict(e)), sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def changed_part(planned: dict[str, str], now: dict[str, str]) -> str:
    """What changed first between two plans' parts, in words."""
    for part in PARTS:
        if planned.get(part) != now.get(part):
            return PART_NAMES[part]
    return "the plan's content"
