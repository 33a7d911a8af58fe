"""The DUIS schema check that ``xmldsig.sign_document`` begins on the document as it will be
signed and finishes before anything is signed: inline, or for a large document on a thread
of its own while the caller canonicalises it (lxml releases the GIL in both; 10 MB documents
measured 140-165 ms one after the other, 100-125 ms together).

Both threads only read the tree. libxml2's validation writes to a document only to register
``xs:ID`` attributes (only the xmldsig schema declares them, and the check runs before the
Signature is appended) and to add default attributes (``DuisSchema`` compiles without
``attribute_defaults``); C14N reads neither.
"""

from __future__ import annotations

from lxml import etree

from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import BeginCheck, FinishCheck
from signer.helper_thread import HelperThread

_SCHEMA_THREAD = HelperThread("signer-schema")  # validations take the schema's lock in turn


def schema_check(schema: DuisSchema, *, aside: bool) -> BeginCheck:
    """``schema.validate`` as a ``BeginCheck``; ``aside``: on the schema thread."""

    def begin(root: etree._Element) -> FinishCheck:
        if not aside:
            schema.validate(root)
            return _passed
        return _SCHEMA_THREAD.submit(schema.validate, root).result

    return begin


def _passed() -> None:
    return None
