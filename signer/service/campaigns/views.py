"""What the campaign use cases return: plans, their devices, approvals, apply's results."""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass

from signer.service.activation import BuiltActivation
from signer.service.duis import DuisResult
from signer.service.refusal import DeviceRefusal
from signer.service.resign import SignedUpgradeImage


class Product(enum.Enum):
    UPDATE = "update"
    ACTIVATION = "activation"
    BOTH = "update_and_activation"


@dataclass(frozen=True)
class CampaignSpec:
    image_id: str
    product: Product
    service_reference: str = "11.1"
    firmware_version: str = ""
    force_replace: bool | None = None
    execution_time: dt.datetime | None = None


@dataclass(frozen=True)
class Approval:
    approver: str
    approved_at: dt.datetime
    expires_at: dt.datetime
    expired: bool
    comment: str


@dataclass(frozen=True)
class PlanView:
    """CampaignPlan, field for field (counts as tuples of (name, devices))."""

    plan_id: str
    spec: CampaignSpec
    requester: str
    planned_at: dt.datetime
    state: str  # "planned" | "approved" | "rejected" | "applying" | "applied" | "stale"
    devices: int
    eligible: int
    refused: int
    by_key: tuple[tuple[str, int], ...]
    by_model: tuple[tuple[str, int], ...]
    by_reason: tuple[tuple[str, int], ...]
    approvals_required: int
    approvals: tuple[Approval, ...]
    rejected_by: str
    rejection_reason: str
    issued: int
    withheld: int
    stale_reason: str
    #: the final plans of the same content this one supersedes (planned again)
    supersedes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceRecord:
    """CampaignDevice, field for field."""

    device_id: str
    key_label: str
    key_ski: bytes | None
    current_entry_id: str
    model: str
    pathway: str
    refusal: DeviceRefusal | None
    outcome: str
    withheld_check: str
    withheld_detail: str
    request_ids: tuple[str, ...]


@dataclass(frozen=True)
class Issued:
    kind: str  # "update" | "activation"
    device_ids: tuple[str, ...]
    upgrade_image: SignedUpgradeImage | None = None
    update_request: DuisResult | None = None
    activation: BuiltActivation | None = None


@dataclass(frozen=True)
class Withheld:
    kind: str
    device_ids: tuple[str, ...]
    check: str
    detail: str


@dataclass(frozen=True)
class Refused:
    refusal: DeviceRefusal


@dataclass(frozen=True)
class AlreadyIssued:
    kind: str
    device_ids: tuple[str, ...]
    request_id: str


ResultItem = Issued | Withheld | Refused | AlreadyIssued

# states as stored and shown
PLANNING = "planning"  # provisional: devices being written, never shown
PLANNED = "planned"
APPROVED = "approved"
REJECTED = "rejected"
APPLYING = "applying"
APPLIED = "applied"
STALE = "stale"

# audit operations
CAMPAIGN_PLAN = "campaign-plan"
CAMPAIGN_APPROVE = "campaign-approve"
CAMPAIGN_REJECT = "campaign-reject"
CAMPAIGN_APPLY = "campaign-apply"
