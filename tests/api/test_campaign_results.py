"""A campaign's report message: an issued SR 11.3 is written into the results in place,
and equals what `convert.activation_to_pb` gives (differential against the general path)."""

from __future__ import annotations

import pytest

from signer.api import convert
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.campaigns import add_results
from signer.duis.request import RequestId
from signer.gbcs.eui import Eui64
from signer.service.activation import BuiltActivation
from signer.service.campaigns.views import Issued, Withheld

ORIGINATOR = Eui64.parse("90-B3-D5-1F-30-01-00-00")


@pytest.mark.parametrize(
    ("device", "counter", "document"),
    [
        ("00-DB-12-34-56-78-90-B9", 1, b"<sr:Request/>"),
        ("00-00-00-00-00-00-00-00", 2**64 - 1, b""),
        ("FF-FF-FF-FF-FF-FF-FF-FF", 0, bytes(range(256)) * 40),
    ],
)
def test_an_issued_activation_is_the_general_conversion(
    device: str, counter: int, document: bytes
) -> None:
    eui = Eui64.parse(device)
    built = BuiltActivation(eui, RequestId(ORIGINATOR, eui, counter), document)
    message = pb.CampaignResults()
    add_results(Issued("activation", (str(eui),), activation=built), message)
    (result,) = message.results
    assert result.WhichOneof("result") == "issued"
    assert result.issued.WhichOneof("artifact") == "activation"
    assert result.issued.activation == convert.activation_to_pb(built)
    assert result.issued.activation.SerializeToString(deterministic=True) == (
        convert.activation_to_pb(built).SerializeToString(deterministic=True)
    )


def test_a_withheld_activation_carries_no_document() -> None:
    message = pb.CampaignResults()
    add_results(Withheld("activation", ("00-DB-12-34-56-78-90-B9",), "xml_signature", "x"), message)
    (result,) = message.results
    assert result.WhichOneof("result") == "withheld"
    assert result.withheld.check == "xml_signature"
    assert result.withheld.device_ids == ["00-DB-12-34-56-78-90-B9"]
