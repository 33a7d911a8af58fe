"""The gRPC face of the use cases: decode, call, encode.

Errors become status codes, and refusals are counted, in `outcome.OutcomeInterceptor`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from signer.api import campaigns, convert, wire
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.errors import InvalidInput
from signer.service.activation import build_activations, stream_activations
from signer.service.duis import build_duis
from signer.service.keys.views import list_keys
from signer.service.pathways import upgrade_path_for
from signer.service.precommands import (
    PreCommandRefusal,
    sign_pre_command_batch,
    sign_pre_command_for,
)
from signer.service.refusal import DeviceRefusal
from signer.service.resign import resign
from signer.service.services import Services
from signer.service.verify import verify_manufacturer


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


class FirmwareSigner(pb_grpc.FirmwareSignerServicer):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        self.svc = services

    def ListKeys(
        self, request: pb.ListKeysRequest, context: grpc.ServicerContext
    ) -> pb.ListKeysResponse:
        now = self.svc.clock()
        return pb.ListKeysResponse(keys=[convert.key_to_pb(v, now) for v in list_keys(self.svc)])

    def VerifyManufacturer(
        self, request: pb.VerifyManufacturerRequest, context: grpc.ServicerContext
    ) -> pb.VerifyManufacturerResponse:
        verdict = verify_manufacturer(self.svc, convert.delivery_from(request))
        return convert.verdict_to_pb(verdict)

    def Resign(
        self, request: pb.ResignRequest, context: grpc.ServicerContext
    ) -> wire.Encoded[pb.ResignResponse]:
        result = resign(
            self.svc,
            request.image_id,
            list(request.device_ids),
            _optional(request, "force_replace"),
        )
        return convert.resign_response(result)

    def BuildDUIS(
        self, request: pb.BuildDUISRequest, context: grpc.ServicerContext
    ) -> wire.Encoded[pb.BuildDUISResponse]:
        which = request.WhichOneof("image")
        result = build_duis(
            self.svc,
            image_id=request.image_id if which == "image_id" else None,
            upgrade_image=request.upgrade_image if which == "upgrade_image" else None,
            device_ids=list(request.device_ids),
            firmware_version=request.firmware_version,
            service=request.service_reference,
            force_replace=_optional(request, "force_replace"),
        )
        return wire.build_duis_response(
            result.document,
            str(result.request_id),
            [str(d) for d in result.devices],
            convert.refusals_to_pb(result.refused),
        )

    def GetUpgradePath(
        self, request: pb.GetUpgradePathRequest, context: grpc.ServicerContext
    ) -> pb.GetUpgradePathResponse:
        path = upgrade_path_for(
            self.svc,
            from_entry_id=_one_of(request, "from", "from_entry_id"),
            device_id=_one_of(request, "from", "device_id"),
            to_entry_id=_one_of(request, "to", "to_entry_id"),
            image_id=_one_of(request, "to", "image_id"),
        )
        return pb.GetUpgradePathResponse(path=path or [], reachable=path is not None)

    def BuildActivation(
        self, request: pb.BuildActivationRequest, context: grpc.ServicerContext
    ) -> pb.BuildActivationResponse:
        built, refused = build_activations(
            self.svc, convert.activation_spec(request.activation), list(request.device_ids)
        )
        return pb.BuildActivationResponse(
            requests=[convert.activation_to_pb(b) for b in built],
            refused=convert.refusals_to_pb(tuple(refused)),
        )

    def StreamActivation(
        self,
        request_iterator: Iterator[pb.ActivationCampaignRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[pb.ActivationResults]:
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "activation":
            raise InvalidInput("the first message must name the activation", field="activation")
        spec = convert.activation_spec(first.activation)
        batches = (_campaign_batch(m) for m in request_iterator)
        for batch in stream_activations(self.svc, spec, batches):
            message = pb.ActivationResults()
            for item in batch:
                if isinstance(item, DeviceRefusal):
                    message.results.add(refused=convert.refusal_to_pb(item))
                else:  # set in place: the document is copied into the message once
                    convert.activation_into(item, message.results.add().request)
            yield message

    def SignPreCommand(
        self, request: pb.SignPreCommandRequest, context: grpc.ServicerContext
    ) -> pb.SignPreCommandResponse:
        which = request.WhichOneof("source")
        result = sign_pre_command_for(
            self.svc,
            pre_command=request.pre_command if which == "pre_command" else None,
            dcc_response=request.dcc_response if which == "dcc_response" else None,
            accept_unauthenticated=request.accept_unauthenticated,
        )
        return convert.signed_pre_command_to_pb(result)

    def StreamSignPreCommands(
        self, request_iterator: Iterator[pb.PreCommandBatch], context: grpc.ServicerContext
    ) -> Iterator[pb.PreCommandResults]:
        for batch in request_iterator:
            message = pb.PreCommandResults()
            results = sign_pre_command_batch(
                self.svc,
                list(batch.pre_commands),
                dcc_responses=list(batch.dcc_responses),
                accept_unauthenticated=batch.accept_unauthenticated,
            )
            for item in results:
                if isinstance(item, PreCommandRefusal):
                    message.results.add(
                        refused=pb.PreCommandRefusal(
                            index=item.index,
                            device_id=str(item.device or ""),
                            request_id=str(item.request_id or ""),
                            reason=item.reason,
                            code=item.code,
                        )
                    )
                else:  # set in place: the document is copied into the message once
                    convert.signed_pre_command_into(item, message.results.add().signed)
            yield message

    # ---- campaigns (docs/campaigns.md; `signer.api.campaigns`) ----

    def PlanCampaign(
        self, request_iterator: Iterator[pb.PlanCampaignRequest], context: grpc.ServicerContext
    ) -> pb.CampaignPlan:
        return campaigns.plan(self.svc, request_iterator)

    def GetCampaign(
        self, request: pb.GetCampaignRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.CampaignPlanPart]:
        return campaigns.show(self.svc, request)

    def ApproveCampaign(
        self, request: pb.ApproveCampaignRequest, context: grpc.ServicerContext
    ) -> pb.CampaignPlan:
        return campaigns.approve(self.svc, request)

    def RejectCampaign(
        self, request: pb.RejectCampaignRequest, context: grpc.ServicerContext
    ) -> pb.CampaignPlan:
        return campaigns.reject(self.svc, request)

    def ApplyCampaign(
        self, request: pb.ApplyCampaignRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.CampaignResults]:
        return campaigns.apply(self.svc, request)


def _one_of(request: Any, group: str, name: str) -> str | None:
    return getattr(request, name) if request.WhichOneof(group) == name else None


def _campaign_batch(message: pb.ActivationCampaignRequest) -> list[str]:
    if message.WhichOneof("part") != "devices":
        raise InvalidInput("after the first message, send only device batches", field="devices")
    return list(message.devices.device_ids)
