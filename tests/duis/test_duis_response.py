"""Extracting the GBCS payload from DUIS responses."""

from __future__ import annotations

from pathlib import Path

import pytest

from signer.duis.response import extract_gbcs_payload
from signer.errors import FormatError, InvalidInput


def test_duis_illustration_payload_is_the_rtds_gbcs_response(vectors: Path) -> None:
    payload = extract_gbcs_payload(
        (vectors / "trust_anchor" / "illustration_DUIS_6.24.1_response_envelope.xml").read_bytes()
    )
    assert payload[0] == 0xDD
    hex_text = (vectors / "trust_anchor" / "CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX").read_text()
    assert payload == bytes.fromhex("".join(hex_text.split()))


def test_dcc_signed_response_payload(vectors: Path) -> None:
    payload = extract_gbcs_payload((vectors / "xmldsig" / "dcc_message.xml").read_bytes())
    assert payload[0] == 0xDD
    assert len(payload) == 77


def test_mmc_shape_has_no_payload(vectors: Path) -> None:
    mmc = vectors / "trust_anchor" / "illustration_MMC_6.24.1_response_from_CS02aMAC.xml"
    with pytest.raises(InvalidInput, match="ra:GBCSResponse") as e:
        extract_gbcs_payload(mmc.read_bytes())
    assert e.value.field == "sr:GBCSPayload"


def test_response_without_payload(vectors: Path) -> None:
    ack = vectors / "xmldsig" / "dcc_unsigned_acknowledgement-error.xml"
    with pytest.raises(InvalidInput, match="no sr:GBCSPayload") as e:
        extract_gbcs_payload(ack.read_bytes())
    assert e.value.field == "sr:GBCSPayload"


def _response(body: str) -> bytes:
    return (
        '<sr:Response xmlns:sr="http://www.dccinterface.co.uk/ServiceUserGateway" '
        'schemaVersion="5.4"><sr:Header/><sr:Body><sr:ResponseMessage>'
        f"{body}</sr:ResponseMessage></sr:Body></sr:Response>"
    ).encode()


def test_pre_command_payload_is_found() -> None:
    xml = _response(
        "<sr:PreCommand><sr:GBCSVersion>4.0</sr:GBCSVersion>"
        "<sr:GBCSPayload>3wkC\n AAA=</sr:GBCSPayload></sr:PreCommand>"
    )
    assert extract_gbcs_payload(xml) == bytes.fromhex("DF09020000")


def test_payload_that_is_not_base64() -> None:
    with pytest.raises(FormatError):
        extract_gbcs_payload(_response("<sr:GBCSPayload>3wk*</sr:GBCSPayload>"))


def test_two_payloads_are_ambiguous() -> None:
    xml = _response("<sr:GBCSPayload>AA==</sr:GBCSPayload><sr:GBCSPayload>AA==</sr:GBCSPayload>")
    with pytest.raises(InvalidInput, match="2 sr:GBCSPayload"):
        extract_gbcs_payload(xml)
