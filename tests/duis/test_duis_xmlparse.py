"""The safe XML parser: DOCTYPEs refused before anything is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from signer.duis.xmlparse import parse_xml
from signer.errors import InvalidInput


def test_external_dtd_defining_an_entity_is_refused(tmp_path: Path) -> None:
    dtd = tmp_path / "x.dtd"
    dtd.write_text('<!ENTITY secret "leaked">')
    doc = f'<!DOCTYPE r SYSTEM "{dtd.as_uri()}"><r>&secret;</r>'.encode()
    with pytest.raises(InvalidInput, match="DOCTYPE") as e:
        parse_xml(doc, field="upload")
    assert e.value.field == "upload"


def test_doctype_in_utf16_is_refused_too() -> None:
    doc = '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'
    with pytest.raises(InvalidInput, match="DOCTYPE"):
        parse_xml(doc.encode("utf-16"), field="x")


def test_comments_and_processing_instructions_before_the_root_are_fine() -> None:
    root = parse_xml(b'<?xml version="1.0"?>\n<!-- note --><?pi x?>\n<r>&amp;</r>', field="x")
    assert root.text == "&"


@pytest.mark.parametrize("doc", [b"", b"  ", b"<r>", b"<r>&undefined;</r>", b"not xml"])
def test_malformed_input_names_the_field(doc: bytes) -> None:
    with pytest.raises(InvalidInput) as e:
        parse_xml(doc, field="duis_response")
    assert e.value.field == "duis_response"


def test_large_text_nodes_parse() -> None:
    big = b"A" * 14_000_000
    root = parse_xml(b"<r>" + big + b"</r>", field="x")
    assert len(root.text or "") == 14_000_000
