"""The DCC request templates read independently of the project's parser, for comparisons."""

from __future__ import annotations

from pathlib import Path

from lxml import etree

DS = "http://www.w3.org/2000/09/xmldsig#"


def independent_parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(data, parser)


def template_without_signature(path: Path) -> etree._Element:
    """A DCC template as a compact document without its placeholder Signature."""
    root = independent_parse(path.read_bytes())
    sig = root.find(f"{{{DS}}}Signature")
    assert sig is not None
    root.remove(sig)
    for el in root.iter():
        if el.tail is not None and not el.tail.strip():
            el.tail = None
        if len(el) and el.text is not None and not el.text.strip():
            el.text = None
    return root


def c14n(root: etree._Element) -> bytes:
    out: bytes = etree.tostring(root.getroottree(), method="c14n")
    return out
