"""Campaigns: plan, approvals, apply (docs/campaigns.md). One back-office client cannot
launch a campaign alone: a plan is stored and audited, approved by others, and applied
exactly as planned, every artifact through the pre-flight (`signer.preflight`)."""

from signer.service.campaigns.apply import apply_campaign
from signer.service.campaigns.approvals import (
    approve_campaign,
    campaign_devices,
    get_campaign,
    reject_campaign,
)
from signer.service.campaigns.plan import plan_campaign
from signer.service.campaigns.views import (
    AlreadyIssued,
    Approval,
    CampaignSpec,
    DeviceRecord,
    Issued,
    PlanView,
    Product,
    Refused,
    ResultItem,
    Withheld,
)

__all__ = [
    "AlreadyIssued",
    "Approval",
    "CampaignSpec",
    "DeviceRecord",
    "Issued",
    "PlanView",
    "Product",
    "Refused",
    "ResultItem",
    "Withheld",
    "apply_campaign",
    "approve_campaign",
    "campaign_devices",
    "get_campaign",
    "plan_campaign",
    "reject_campaign",
]
