"""The gRPC face of the use cases: decode, call, encode, map errors in one place."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from signer.api import convert
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.status import status_for
from signer.errors import InvalidInput, SignerError
from signer.service.context import Services
from signer.service.duis import build_duis
from signer.service.resign import resign
from signer.service.verify import verify_manufacturer

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])
MAX_DETAILS = 4000


def _mapped(method: F) -> F:
    """Turn signer errors into status codes; a bug is INTERNAL and logged, never silent."""

    @functools.wraps(method)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except SignerError as exc:
            code = status_for(exc)
            if isinstance(exc, InvalidInput):
                meta = [("signer-field", exc.field or "")]
                if exc.offset is not None:
                    meta.append(("signer-offset", str(exc.offset)))
                context.set_trailing_metadata(tuple(meta))
            message = str(exc)
            if len(message) > MAX_DETAILS:  # status details travel in a size-limited trailer
                message = message[:MAX_DETAILS] + " ..."
            log.info("%s refused: %s %s", method.__name__, code.name, message)
            context.abort(code, message)
        except Exception:
            log.exception("%s failed unexpectedly", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")

    return wrapper  # type: ignore[return-value]


def _optional(request: Any, name: str) -> Any:
    return getattr(request, name) if request.HasField(name) else None


class FirmwareSigner(pb_grpc.FirmwareSignerServicer):  # type: ignore[misc]
    def __init__(self, services: Services) -> None:
        self.svc = services

    @_mapped
    def VerifyManufacturer(self, request: pb.VerifyManufacturerRequest,
                           context: grpc.ServicerContext) -> pb.VerifyManufacturerResponse:
        verdict = verify_manufacturer(self.svc, convert.delivery_from(request))
        return convert.verdict_to_pb(verdict)

    @_mapped
    def Resign(self, request: pb.ResignRequest,
               context: grpc.ServicerContext) -> pb.ResignResponse:
        result = resign(self.svc, request.image_id, list(request.device_ids),
                        _optional(request, "force_replace"))
        return convert.resign_to_pb(result)

    @_mapped
    def BuildDUIS(self, request: pb.BuildDUISRequest,
                  context: grpc.ServicerContext) -> pb.BuildDUISResponse:
        which = request.WhichOneof("image")
        result = build_duis(
            self.svc,
            image_id=request.image_id if which == "image_id" else None,
            upgrade_image=request.upgrade_image if which == "upgrade_image" else None,
            device_ids=list(request.device_ids), firmware_version=request.firmware_version,
            service=request.service_reference,
            force_replace=_optional(request, "force_replace"))
        return pb.BuildDUISResponse(duis_request=result.document,
                                    request_id=str(result.request_id),
                                    device_ids=[str(d) for d in result.devices],
                                    refused=convert.refusals_to_pb(result.refused))
