"""Properties of the DUIS readers: whatever a response holds, only the project's errors
escape, RequestIDs round-trip through their text, and the pre-command a response carries
reads the same on the fixed-offset fast path as with the general reader."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from signer.duis.activation import extract_pre_command
from signer.duis.request import MAX_COUNTER, RequestId
from signer.duis.response import extract_gbcs_payload
from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput
from signer.gbcs.eui import Eui64
from signer.gbcs.precommand import _parse_common_apdu, _read_apdu
from tests.support.strategies import (
    base64_of,
    mutated,
    near_valid,
    only_signer_errors,
    pre_commands,
    precommand_seeds,
    property_settings,
    request_id_texts,
    response_seeds,
    sampled,
)

SETTINGS = property_settings()
HEAVY = property_settings(80)
SR = "http://www.dccinterface.co.uk/ServiceUserGateway"


@st.composite
def responses(draw: st.DrawFn) -> bytes:
    """An sr:Response around a payload, with the texts a DCC (or an attacker) could put in."""
    text = st.text(max_size=30)
    payload = draw(st.one_of(base64_of(pre_commands()), text, st.just("")))
    service = draw(st.sampled_from(("11.3", "11.2", "", " 11.3 ")) | text)
    request_id = draw(request_id_texts())
    count = draw(st.integers(0, 2))
    body = "".join(f"<sr:GBCSPayload>{payload}</sr:GBCSPayload>" for _ in range(count))
    wrapper = draw(st.sampled_from(("sr:PreCommand", "sr:Other", None)))
    if wrapper:
        body = f"<{wrapper}>{body}</{wrapper}>"
    doc = (
        f'<sr:Response xmlns:sr="{SR}"><sr:Header><sr:RequestID>{_escape(request_id)}'
        f"</sr:RequestID></sr:Header><sr:Body><sr:ResponseMessage>"
        f"<sr:ServiceReference>{_escape(service)}</sr:ServiceReference>"
        f"<sr:ServiceReferenceVariant>11.3</sr:ServiceReferenceVariant>{body}"
        "</sr:ResponseMessage></sr:Body></sr:Response>"
    )
    return doc.encode("utf-8", "surrogatepass")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;")


@HEAVY
@given(st.one_of(mutated(sampled(response_seeds)), responses(), st.binary(max_size=200)))
def test_responses_raise_only_signer_errors(data: bytes) -> None:
    only_signer_errors(extract_gbcs_payload, data)
    only_signer_errors(extract_pre_command, data)
    only_signer_errors(lambda d: parse_xml(d, field="duis_response"), data)


@HEAVY
@given(
    st.one_of(
        st.integers(1, 5000).map(lambda depth: b"<a>" * depth + b"</a>" * depth),
        st.integers(1000, 70_000).map(lambda n: b"<" + b"n" * n + b"></m>"),
        st.integers(1000, 70_000).map(lambda n: b"<" + b"n" * n + b"/>"),
        st.integers(1000, 70_000).map(lambda n: b"<a>&" + b"e" * n + b";</a>"),
    ),
    st.sampled_from((b"", b"<?xml version='1.0' encoding='UTF-16'?>", b"\xef\xbb\xbf")),
)
def test_deep_long_named_and_oddly_encoded_documents_raise_only_signer_errors(
    doc: bytes, prolog: bytes
) -> None:
    only_signer_errors(extract_gbcs_payload, prolog + doc)


@SETTINGS
@given(request_id_texts())
def test_request_id_texts_raise_only_invalid_input(text: str) -> None:
    only_signer_errors(RequestId.parse, text)


@SETTINGS
@given(
    st.binary(min_size=8, max_size=8),
    st.binary(min_size=8, max_size=8),
    st.integers(0, MAX_COUNTER),
)
def test_request_id_round_trip(originator: bytes, target: bytes, counter: int) -> None:
    rid = RequestId(Eui64(originator), Eui64(target), counter)
    assert RequestId.parse(str(rid)) == rid


@st.composite
def immediate_pre_commands(draw: st.DrawFn) -> bytes:
    """The layout the fast path reads (immediate, short-form lengths), any field values,
    sometimes with a date-time and a trailer, then sometimes a byte-level fault."""
    counter = draw(st.binary(min_size=0, max_size=10))
    content = b"\x04\x20" + draw(st.binary(min_size=32, max_size=32))
    content += bytes((0x02, len(counter))) + counter
    content = b"\x30" + bytes((len(content),)) + content
    date_time = draw(st.sampled_from((b"", bytes(12), b"\x01" * 12)))
    apdu = (
        b"\xdf\x09"
        + draw(st.binary(min_size=9, max_size=9))
        + b"\x08"
        + draw(st.binary(min_size=8, max_size=8))
        + b"\x08"
        + draw(st.binary(min_size=8, max_size=8))
        + bytes((len(date_time),))
        + date_time
        + b"\x02"
        + draw(st.binary(min_size=2, max_size=2))
        + bytes((len(content),))
        + content
    )
    data = apdu + draw(st.sampled_from((b"", b"\x00", b"\x40" + bytes(64))))
    return draw(st.one_of(st.just(data), mutated(st.just(data))))


@HEAVY
@given(st.one_of(immediate_pre_commands(), near_valid(precommand_seeds), pre_commands()))
def test_the_fast_pre_command_path_reads_as_the_general_reader(data: bytes) -> None:
    """Whatever the fast path accepts, the general reader accepts and reads the same; all
    else falls through to the general reader, which names the fault."""
    fast = _parse_common_apdu(data)
    if fast is None:
        return
    try:
        general = _read_apdu(data, field="pre_command")
    except InvalidInput as exc:
        raise AssertionError(
            f"the fast path accepted what the general reader refuses: {exc}"
        ) from exc
    assert fast == general
