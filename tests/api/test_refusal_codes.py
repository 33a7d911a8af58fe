"""Device refusal codes as the API and the metrics carry them: each is a label as it stands
(never ``other``) and the ``google.rpc.ErrorInfo`` reason is its upper-case form."""

from __future__ import annotations

import pytest

from signer.api.status import reason_code, reason_for, refusal_reason
from signer.errors import DevicesRefused
from signer.gbcs.eui import Eui64
from signer.service.refusal import (
    AMBIGUOUS_SUPPLIER_CELLS,
    DUPLICATE_DEVICE,
    INVALID_DEVICE_ID,
    ambiguous_supplier_cells,
)

DEVICE = Eui64.parse("00-DB-12-34-56-78-90-B5")
SKIS = (bytes.fromhex("0102030405060708"), bytes.fromhex("44899792D196F4B8"))


@pytest.mark.parametrize("code", [AMBIGUOUS_SUPPLIER_CELLS, DUPLICATE_DEVICE, INVALID_DEVICE_ID])
def test_a_refusal_code_is_its_own_label_and_reason(code: str) -> None:
    assert refusal_reason(code) == code
    assert reason_code(code) == code.upper()


def test_an_ambiguous_device_is_refused_in_one_line_naming_it_and_its_skis() -> None:
    refusal = ambiguous_supplier_cells(DEVICE, SKIS)
    assert refusal.device == DEVICE and refusal.reason == "ambiguous_supplier_cells"
    assert refusal.detail == (
        "device 00-DB-12-34-56-78-90-B5 has 2 Supplier digital-signing management trust "
        "anchor cells naming different keys (SKIs 0102030405060708, 44899792d196f4b8), so "
        "which key it trusts is unknown; re-import its SR 6.24.1 security credentials"
    )
    assert (refusal.path, refusal.no_path) == (None, False)
    # a call whose every device is refused so is FAILED_PRECONDITION, DEVICES_REFUSED
    error = DevicesRefused("every device was refused", [refusal.as_tuple()])
    assert reason_for(error) == "DEVICES_REFUSED"
    assert reason_code(error.refusals[0][1]) == "AMBIGUOUS_SUPPLIER_CELLS"
