"""SR 6.24.1 security credentials responses: the RTDS vectors and hand-made malformed variants.

Expected SKIs come from the test certificates (SubjectKeyIdentifier extension read with
`cryptography`), EUIs from the vector README, offsets from a manual reading of the hex.
"""

from __future__ import annotations

import base64
import re

import pytest
from cryptography import x509

from signer.errors import FormatError
from signer.gbcs.eui import Eui64
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.trust_anchor import (
    CellUsage,
    DeviceCredentials,
    KeyUsage,
    decode_payload_text,
    parse_security_credentials_response,
)
from tests.support.vectors import vector_bytes, vector_text

CS02A = "CS02aMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX"
CS02F = "CS02fMAC_6.24.1_SUCCESS_RESPONSE_GBCS.HEX"
CS02A_ACB = "CS02aSignature_NA_SUCCESS_RESPONSE_GBCS.HEX"
DEVICE = Eui64.parse("00-DB-12-34-56-78-90-A0")
SUPPLIER = Eui64.parse("90-B3-D5-1F-30-01-00-00")
NETWORK_OPERATOR = Eui64.parse("90-B3-D5-1F-30-02-00-00")
DCC = Eui64.parse("90-B3-D5-1F-30-00-00-02")

# Offsets in the MAC'd envelope: DD, six empty A-XDR fields, 81 D8, security control 11,
# invocation counter (4), then the General-Signing APDU at 14.
APDU_AT = 14
CRA_AT = APDU_AT + 2
CODE_AT = APDU_AT + 31
MAC = 12


def ski_of(cert_name: str) -> bytes:
    cert = x509.load_pem_x509_certificate(vector_bytes("certs", f"{cert_name}.pem"))
    return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest


def hex_vector(name: str) -> bytes:
    return bytes.fromhex(vector_text("trust_anchor", name))


def parse_vector(name: str) -> DeviceCredentials:
    return parse_security_credentials_response(
        decode_payload_text(vector_text("trust_anchor", name))
    )


def test_cs02a_supplier_signing_cell_matches_certificate() -> None:
    creds = parse_vector(CS02A)
    assert creds.device == DEVICE
    assert creds.recipient == DCC
    assert creds.message_code == 0x0008
    cell = creds.supplier_signing_cell()
    assert cell is not None
    assert cell.role == RemotePartyRole.SUPPLIER
    assert cell.key_usage is KeyUsage.DIGITAL_SIGNATURE
    assert cell.cell_usage is CellUsage.MANAGEMENT
    assert cell.subject_eui == SUPPLIER
    assert cell.ski == ski_of("Z1-supplier-ds")


def test_cs02a_every_cell() -> None:
    creds = parse_vector(CS02A)
    assert [(r.role, r.status, r.sequence_number) for r in creds.roles] == [(2, 0, 0), (3, 0, 1)]
    assert [(c.role, c.key_usage, c.cell_usage, c.subject_eui, c.ski) for c in creds.cells] == [
        (2, KeyUsage.DIGITAL_SIGNATURE, CellUsage.MANAGEMENT, SUPPLIER, ski_of("Z1-supplier-ds")),
        (2, KeyUsage.KEY_AGREEMENT, CellUsage.MANAGEMENT, SUPPLIER, ski_of("Z1-supplier-ka")),
        (
            2,
            KeyUsage.KEY_AGREEMENT,
            CellUsage.PREPAYMENT_TOP_UP,
            SUPPLIER,
            ski_of("Z1-supplierPP-ka"),
        ),
        (
            3,
            KeyUsage.DIGITAL_SIGNATURE,
            CellUsage.MANAGEMENT,
            NETWORK_OPERATOR,
            ski_of("Z1-networkOperator-ds"),
        ),
        (
            3,
            KeyUsage.KEY_AGREEMENT,
            CellUsage.MANAGEMENT,
            NETWORK_OPERATOR,
            ski_of("Z1-networkOperator-ka"),
        ),
    ]


def test_cs02f_vector() -> None:
    creds = parse_vector(CS02F)
    assert creds.device == DEVICE
    assert creds.message_code == 0x011B
    cell = creds.supplier_signing_cell()
    assert cell is not None
    assert cell.subject_eui == SUPPLIER
    assert cell.ski == ski_of("Z1-supplier-ds")
    load_controller = [c for c in creds.cells if c.role == RemotePartyRole.LOAD_CONTROLLER]
    assert [c.key_usage for c in load_controller] == [
        KeyUsage.DIGITAL_SIGNATURE,
        KeyUsage.KEY_AGREEMENT,
    ]
    assert {c.subject_eui for c in load_controller} == {Eui64.parse("90-B3-D5-1F-30-01-00-08")}


def test_response_without_supplier_cell() -> None:
    creds = parse_vector(CS02A_ACB)
    assert creds.device == Eui64.parse("00-DB-12-34-56-78-90-A2")
    assert creds.supplier_signing_cell() is None
    assert [c.ski for c in creds.cells] == [
        ski_of("Z1-accessControlBroker-ds"),
        ski_of("Z1-accessControlBroker-ka"),
    ]
    assert {c.role for c in creds.cells} == {RemotePartyRole.ACCESS_CONTROL_BROKER}


def test_duis_envelope_base64_carries_the_same_payload() -> None:
    xml = vector_text("trust_anchor", "illustration_DUIS_6.24.1_response_envelope.xml")
    match = re.search(r"<sr:GBCSPayload>\s*([^<]+?)\s*</sr:GBCSPayload>", xml)
    assert match is not None
    payload = decode_payload_text(match.group(1))
    assert payload == hex_vector(CS02A)
    assert parse_security_credentials_response(payload) == parse_vector(CS02A)


def test_bare_general_signing_apdu() -> None:
    data = hex_vector(CS02A)
    bare = data[APDU_AT:-MAC]
    assert bare[0] == 0xDF
    assert parse_security_credentials_response(bare) == parse_vector(CS02A)


def test_payload_text_forms() -> None:
    data = hex_vector(CS02A)
    spaced = " ".join(f"{b:02x}" for b in data)
    assert decode_payload_text(spaced) == data
    assert decode_payload_text(spaced.encode()) == data
    wrapped = base64.encodebytes(data)  # line-wrapped base64
    assert decode_payload_text(wrapped) == data
    for bad in ("", "   ", "DD0", "not base64 at all!", "3Q=A"):
        with pytest.raises(FormatError) as exc:
            decode_payload_text(bad)
        assert exc.value.field == "gbcs_payload"


# --- malformed vector variants --------------------------------------------------------------


def patched(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new) :]


def failure(data: bytes) -> FormatError:
    with pytest.raises(FormatError) as exc:
        parse_security_credentials_response(data)
    assert exc.value.field == "gbcs_payload"
    return exc.value


def test_truncated() -> None:
    data = hex_vector(CS02A)
    assert failure(data[:-20]).offset == 7  # ciphered-content length 0x81D8 overruns
    assert failure(data[:5]).offset == 5
    assert failure(b"").offset == 0
    bare = data[APDU_AT:-MAC]
    assert failure(bare[:100]).offset == 33  # content length 0x81A3 overruns
    assert failure(bare[:-1]).offset == len(bare) - 1  # "no signature" byte missing


def test_wrong_tags() -> None:
    data = hex_vector(CS02A)
    err = failure(patched(data, 0, b"\xde"))
    assert err.offset == 0
    assert "0xDE" in err.message
    assert failure(patched(data, APDU_AT, b"\xde")).offset == APDU_AT
    content_at = APDU_AT + 35  # 30 82 00 9F
    assert failure(patched(data, content_at, b"\x31")).offset == content_at
    status_at = content_at + 4 + 2 + 3  # 30 5C, 02 01 02, then 0A 01 00
    err = failure(patched(data, status_at, b"\x02"))
    assert err.offset == status_at
    assert "ENUMERATED" in err.message


def test_wrong_cra_flag() -> None:
    data = hex_vector(CS02A)
    err = failure(patched(data, CRA_AT, b"\x01"))
    assert err.offset == CRA_AT
    assert "0x01" in err.message
    assert failure(patched(data, CRA_AT, b"\x03")).offset == CRA_AT


def test_unknown_message_code() -> None:
    data = hex_vector(CS02A)
    assert data[CODE_AT : CODE_AT + 2] == b"\x00\x08"
    err = failure(patched(data, CODE_AT, b"\x00\x12"))
    assert err.offset == CODE_AT
    assert "0x0012" in err.message


def test_encrypted_or_keyed_envelope_is_refused() -> None:
    data = hex_vector(CS02A)
    assert failure(patched(data, 9, b"\x31")).offset == 9
    assert failure(patched(data, 6, b"\x01")).offset == 6
    assert failure(data + b"\x00").offset == len(data)


# --- hand-built APDUs -----------------------------------------------------------------------


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes([tag, len(content)]) + content


def cell(usage: bytes, cell_usage: int | None = None, ski: bytes = b"S" * 8) -> bytes:
    usage_part = tlv(0x03, usage)
    if cell_usage is not None:
        usage_part += tlv(0x02, bytes([cell_usage]))
    return tlv(0x30, usage_part + tlv(0x04, SUPPLIER.value) + tlv(0x04, ski))


DS = b"\x07\x80"
KA = b"\x03\x08"


def role(code: int, *cells: bytes) -> bytes:
    body = tlv(0x02, bytes([code])) + tlv(0x0A, b"\x00") + tlv(0x02, b"\x05")
    return tlv(0x30, body + tlv(0x30, b"".join(cells)))


def apdu(*roles: bytes, date_time: bytes = b"\x00", signature: bytes = b"\x00") -> bytes:
    content = tlv(0x30, b"".join(roles))
    return (
        b"\xdf\x09\x02"
        + (7).to_bytes(8, "big")
        + b"\x08"
        + DEVICE.value
        + b"\x08"
        + DCC.value
        + date_time
        + b"\x02\x00\x08"
        + bytes([len(content)])
        + content
        + signature
    )


def test_hand_built_apdu_parses() -> None:
    creds = parse_security_credentials_response(
        apdu(role(2, cell(DS), cell(KA, 1)), date_time=b"\x0c" + bytes(12))
    )
    assert creds.device == DEVICE
    assert creds.originator_counter == 7
    assert creds.roles[0].sequence_number == 5
    assert [c.cell_usage for c in creds.cells] == [
        CellUsage.MANAGEMENT,
        CellUsage.PREPAYMENT_TOP_UP,
    ]
    assert creds.supplier_signing_cell() == creds.cells[0]


def test_device_signature_field_is_accepted() -> None:
    creds = parse_security_credentials_response(
        apdu(role(2, cell(DS)), signature=b"\x40" + bytes(64))
    )
    assert creds.supplier_signing_cell() is not None


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (apdu(role(0x09, cell(DS))), "role 9"),
        (apdu(role(2, cell(DS), cell(DS))), "second digitalSignature"),
        (apdu(role(2, cell(b"\x03\x88"))), "bits"),
        (apdu(role(2, cell(b"\x07\x00"))), "bits"),
        (apdu(role(2, cell(DS, 2))), "cellUsage 2"),
        (apdu(role(2, cell(DS, ski=b"S" * 7))), "7 bytes"),
        (apdu(role(2, cell(DS)), date_time=b"\x01\x00"), "date-time"),
        (apdu(role(2, cell(DS)), signature=b"\x40" + bytes(10)), "signature field"),
        (apdu(role(2, cell(DS)), signature=b"\x00\x00"), "unexpected bytes"),
    ],
)
def test_hand_built_malformed(payload: bytes, match: str) -> None:
    with pytest.raises(FormatError, match=match) as exc:
        parse_security_credentials_response(payload)
    assert exc.value.field == "gbcs_payload"
    assert exc.value.offset is not None
