"""The one way XML enters the signer: no DTDs, no entities, no network.

DUIS documents never need a DOCTYPE, so any document carrying one is refused outright rather
than parsed "safely": that closes entity expansion and external fetches in one rule. The
prolog is checked before parsing because libxml2 opened a local external DTD even with
``load_dtd=False`` (measured, lxml 6.1 / libxml2 2.14); a resolver that refuses every external
resource backs that up for encodings the byte scan cannot read.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from signer.errors import InvalidInput


class _RefuseExternal(etree.Resolver):
    """Every external resource resolves to nothing: the signer never fetches anything."""

    def resolve(self, system_url: str | None, public_id: str | None, context: Any) -> Any:
        return self.resolve_string("", context)


def safe_parser() -> etree.XMLParser:
    """A fresh parser per call, because lxml parsers must not be shared between threads."""
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=True,  # a 10 MB image is a 13.6 MB text node
        remove_blank_text=False,  # verification must see the bytes that were signed
        collect_ids=False,
        # comments are outside every digest (C14N without comments), so one put into a signed
        # text node would leave the signature valid and cut the text a reader takes (.text
        # ends at the first child node): dropped at parse, the text nodes around it join
        remove_comments=True,
    )
    parser.resolvers.add(_RefuseExternal())
    return parser


def parse_xml(data: bytes, *, field: str) -> etree._Element:
    """Parse a whole document and return its root element."""
    if not data or not data.strip():
        raise InvalidInput("empty document", field=field)
    if _prolog_has_doctype(data):
        raise InvalidInput("documents with a DOCTYPE are refused", field=field)
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidInput(
            f"not well-formed XML (line {exc.lineno}): {_short(exc.msg)}", field=field
        ) from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise InvalidInput("documents with a DOCTYPE are refused", field=field)
    return root


def _short(message: str, limit: int = 160) -> str:
    """libxml2 quotes names and entities from the document in its messages: keep a prefix."""
    return message if len(message) <= limit else f"{message[:limit]}… ({len(message)} characters)"


def _prolog_has_doctype(data: bytes) -> bool:
    """True when a ``<!`` other than a comment appears before the root element."""
    i = 0
    while True:
        j = data.find(b"<", i)
        if j < 0:
            return False
        if data.startswith(b"<?", j):
            end = data.find(b"?>", j + 2)
        elif data.startswith(b"<!--", j):
            end = data.find(b"-->", j + 4)
        elif data.startswith(b"<!", j):
            return True
        else:
            return False
        if end < 0:
            return False
        i = end + 2
