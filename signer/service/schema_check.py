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

import threading
from concurrent.futures import ThreadPoolExecutor

from lxml import etree

from signer.duis.schema import DuisSchema
from signer.duis.xmldsig import BeginCheck, FinishCheck

_thread: ThreadPoolExecutor | None = None
_thread_lock = threading.Lock()


def schema_check(schema: DuisSchema, *, aside: bool) -> BeginCheck:
    """``schema.validate`` as a ``BeginCheck``; ``aside``: on the schema thread."""

    def begin(root: etree._Element) -> FinishCheck:
        if not aside:
            schema.validate(root)
            return _passed
        return _schema_thread().submit(schema.validate, root).result

    return begin


def _passed() -> None:
    return None


def _schema_thread() -> ThreadPoolExecutor:
    """One thread for every schema: validations take the schema's lock in turn anyway."""
    global _thread
    with _thread_lock:
        if _thread is None:
            _thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signer-schema")
        return _thread
