"""The direct calls stay for small runs: above ``[campaigns] direct_limit`` devices a
campaign (plan, approvals, apply) is required."""

from __future__ import annotations

from signer.errors import CampaignRefused
from signer.service.services import Services

CAMPAIGN_REQUIRED = "CAMPAIGN_REQUIRED"


def check_direct(svc: Services, devices: int, call: str) -> None:
    """Refuse a direct call for more devices than ``campaigns.direct_limit`` (0: no limit)."""
    limit = svc.config.campaigns.direct_limit
    if limit and devices > limit:
        raise CampaignRefused(
            f"{devices} devices exceed campaigns.direct_limit ({limit}) for {call}: a run this "
            "large is a campaign; plan it with `signer campaign plan`, have it approved, then "
            "`signer campaign apply` it",
            CAMPAIGN_REQUIRED,
        )


class DirectCount:
    """StreamActivation's count: devices as batches arrive, refused before the batch that
    crosses the limit is signed."""

    def __init__(self, svc: Services, call: str) -> None:
        self._svc, self._call, self.devices = svc, call, 0

    def add(self, devices: int) -> None:
        self.devices += devices
        check_direct(self._svc, self.devices, self._call)
