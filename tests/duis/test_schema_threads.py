"""DuisSchema.first_error: one compiled schema serves every thread, each caller seeing its
own document's error (an lxml validator keeps its error log on the instance)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lxml import etree

from signer.duis.schema import DuisSchema
from signer.duis.xmlparse import parse_xml

SR = "{http://www.dccinterface.co.uk/ServiceUserGateway}"
THREADS = 8
ROUNDS = 40


def _activation(vectors: Path, firmware_hash: str) -> etree._Element:
    root = parse_xml(
        (vectors / "duis/CS06_11.3_IMMEDIATE_SUCCESS_REQUEST_DUIS.XML").read_bytes(),
        field="template",
    )
    el = root.find(f"{SR}Body/{SR}ActivateFirmware/{SR}FirmwareHash")
    assert el is not None
    el.text = firmware_hash
    return root


def test_first_error_locates_the_fault_or_is_none(vectors: Path, schema: DuisSchema) -> None:
    assert schema.first_error(_activation(vectors, "AB" * 32)) is None
    error = schema.first_error(_activation(vectors, "NOTHEX"))
    assert error is not None and "NOTHEX" in error and "FirmwareHash" in error
    assert "\n" not in error


def test_concurrent_validations_each_report_their_own_error(
    vectors: Path, schema: DuisSchema
) -> None:
    # thread i's document is invalid by its own text (valid for every fourth thread)
    texts = [("AB" * 32) if i % 4 == 0 else f"BAD{i}X" for i in range(THREADS)]
    docs = [_activation(vectors, t) for t in texts]
    start = threading.Barrier(THREADS)

    def validate(i: int) -> list[str | None]:
        start.wait()
        return [schema.first_error(docs[i]) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(validate, range(THREADS)))
    for i, errors in enumerate(results):
        for error in errors:
            if i % 4 == 0:
                assert error is None, (i, error)
            else:
                assert error is not None and f"BAD{i}X" in error, (i, error)
                others = [f"BAD{j}X" for j in range(THREADS) if j != i]
                assert not any(o in error for o in others), (i, error)
