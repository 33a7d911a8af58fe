"""DUIS responses whose error messages used to echo the document's own names in full
(libxml2 quotes them): a 100 KB tag name came back as a 100 KB error."""

from __future__ import annotations

import pytest

from signer.duis.activation import extract_pre_command
from signer.duis.response import extract_gbcs_payload
from signer.errors import InvalidInput


@pytest.mark.parametrize(
    ("doc", "said"),
    [
        (b"<" + b"a" * 100_000 + b"></b>", "Opening and ending tag mismatch"),
        (b"<a>&" + b"x" * 50_000 + b";</a>", "Entity"),
        (b"<" + b"a" * 100_000 + b"/>", "root element is 'aaaa"),
    ],
)
def test_messages_show_a_prefix_of_the_document_names(doc: bytes, said: str) -> None:
    for extract in (extract_gbcs_payload, extract_pre_command):
        with pytest.raises(InvalidInput, match=said) as exc:
            extract(doc)
        assert len(str(exc.value)) < 300
