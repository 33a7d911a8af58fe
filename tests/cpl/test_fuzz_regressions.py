"""Inputs the fuzzers found (fuzz/README.md), kept as plain regression tests."""

from __future__ import annotations

import pytest

from signer.cpl.parse import read_json
from signer.errors import FormatError


@pytest.mark.parametrize(
    "text",
    [
        # atheris, 2026-12-03: one long key (the CPL JSON target's finding was 1,387 characters)
        '{"entrie' + ";" * 1200 + '": 1}',
        # ... and many keys
        "{" + ", ".join(f'"k{i:04d}": {i}' for i in range(500)) + "}",
    ],
)
def test_an_object_that_is_not_a_cpl_gets_a_short_message(text: str) -> None:
    with pytest.raises(FormatError, match="got an object with keys") as err:
        list(read_json(text))
    assert len(str(err.value)) <= 600
