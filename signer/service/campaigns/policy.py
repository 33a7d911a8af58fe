"""The direct calls stay for small runs: above ``[campaigns] direct_limit`` devices a
campaign (plan, approvals, apply) is required."""

from __future__ import annotations

from signer.errors import CampaignRefused
from signer.registry import campaigns as store
from signer.service.services import Services

CAMPAIGN_REQUIRED = "CAMPAIGN_REQUIRED"


#: the signature each direct call makes: its limit counts the devices of those
OPERATIONS = {
    "Resign": "resign",
    "BuildDUIS": "duis-sign",
    "BuildActivation": "activation-sign",
    "StreamActivation": "activation-sign",
}
#: the RPC whose signatures are a campaign's: never counted against the direct limit
CAMPAIGN_METHOD = "ApplyCampaign"


def earlier_devices(svc: Services, image_id: str, call: str) -> int:
    """The devices ``call``'s kind of signature was made for with this image by direct
    calls within ``campaigns.direct_window`` (the audit trail's ``ok`` records)."""
    since = svc.clock() - svc.config.campaigns.direct_window
    return store.direct_devices(svc.db, image_id, OPERATIONS[call], since, CAMPAIGN_METHOD)


def check_direct(svc: Services, devices: int, call: str, image_id: str | None = None) -> None:
    """Refuse a direct call for more devices than ``campaigns.direct_limit`` (0: no limit):
    with ``image_id``, counting the devices earlier direct calls signed this image's kind of
    signature for within ``campaigns.direct_window`` (one supplier cannot reach a
    million meters 1000 at a time)."""
    limit = svc.config.campaigns.direct_limit
    if not limit:
        return
    earlier = earlier_devices(svc, image_id, call) if image_id is not None else 0
    _refuse_above(svc, limit, earlier, devices, call)


def _refuse_above(svc: Services, limit: int, earlier: int, devices: int, call: str) -> None:
    if earlier + devices <= limit:
        return
    window = svc.config.campaigns.direct_window
    before = f" with the {earlier} this image's direct calls had within {window}" if earlier else ""
    raise CampaignRefused(
        f"{devices} devices{before} exceed campaigns.direct_limit ({limit}) for {call}: a run "
        "this large is a campaign; plan it with `signer campaign plan`, have it approved, "
        "then `signer campaign apply` it",
        CAMPAIGN_REQUIRED,
    )


class DirectCount:
    """StreamActivation's count: devices as batches arrive, refused before the batch that
    crosses the limit is signed; with ``image_id``, on top of the image's earlier direct
    calls within the window (read once: this stream's own batches are counted here)."""

    def __init__(self, svc: Services, call: str, image_id: str | None = None) -> None:
        self._svc, self._call, self.devices = svc, call, 0
        limit = svc.config.campaigns.direct_limit
        self._earlier = (
            earlier_devices(svc, image_id, call) if limit and image_id is not None else 0
        )

    def add(self, devices: int) -> None:
        self.devices += devices
        limit = self._svc.config.campaigns.direct_limit
        if limit:
            _refuse_above(self._svc, limit, self._earlier, self.devices, self._call)
