"""Over gRPC: a Resign call leaves an audit record naming the caller and its request ID."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time

import grpc
import pytest

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api.callctx import REQUEST_ID_HEADER, UNAUTHENTICATED
from tests.support.audit_rows import assert_chain, db_file, head, rows
from tests.support.cli import signer
from tests.support.constants import RTDS_DEVICE
from tests.support.independent import split_upgrade_image
from tests.support.manufacturer import Manufacturer
from tests.support.server import Running


def test_a_resign_call_is_recorded_with_the_callers_identity_and_request_id(
    running: Running, manufacturer: Manufacturer
) -> None:
    image = b"audited over the socket " * 20
    image_id = running.verify(manufacturer, image)
    path = db_file(running.db_url)
    start, _ = head(path)
    response, call = running.stub.Resign.with_call(
        pb.ResignRequest(image_id=image_id, device_ids=[RTDS_DEVICE])
    )
    request_id = dict(call.initial_metadata())[REQUEST_ID_HEADER]
    records = [r for r in rows(path, after=start) if r["call_id"] == request_id]
    assert len(records) == 1
    [r] = records
    _, signed_image, _, _ = split_upgrade_image(response.images[0].upgrade_image)
    assert (r["client"], r["operation"], r["outcome"]) == (UNAUTHENTICATED, "resign", "ok")
    assert r["method"] == "Resign"
    assert r["digest"] == hashlib.sha256(signed_image).hexdigest() == image_id
    assert r["key_ski"] == response.images[0].key_ski.hex()
    assert r["certificate_serial"] == response.images[0].certificate_serial  # decimal
    assert_chain(path)
    out = signer("audit", "verify", "--config", str(running.server.config))
    assert "intact" in out.stdout


def test_a_client_whose_deadline_passed_gets_nothing_and_the_record_says_so(
    running: Running, manufacturer: Manufacturer
) -> None:
    """The audit write waits for the database past the client's deadline: the signature is
    recorded as withheld (failed), never as ok."""
    image = b"deadline passed while recording " * 20
    image_id = running.verify(manufacturer, image)
    path = db_file(running.db_url)
    start, _ = head(path)
    blocker = sqlite3.connect(path, timeout=5)
    blocker.execute("BEGIN IMMEDIATE")  # the audit append waits for this write lock
    try:
        future = running.stub.Resign.future(
            pb.ResignRequest(image_id=image_id, device_ids=[RTDS_DEVICE]), timeout=1.0
        )
        with pytest.raises(grpc.RpcError) as failed:
            future.result()
        assert failed.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        request_id = dict(future.initial_metadata())[REQUEST_ID_HEADER]
    finally:
        blocker.rollback()
        blocker.close()
    deadline = time.monotonic() + 10
    while not (records := [r for r in rows(path, after=start) if r["call_id"] == request_id]):
        assert time.monotonic() < deadline, "the withheld signature was never recorded"
        time.sleep(0.05)
    assert [(r["operation"], r["outcome"]) for r in records] == [("resign", "failed")]
    assert "the call ended" in json.loads(records[0]["details"])["withheld"]
    assert_chain(path)
    # logged (and counted) as what the client saw, not as an outage
    while not (
        ended := [
            json.loads(line)
            for line in running.server.log.read_text().splitlines()
            if request_id in line and '"grpc_code"' in line
        ]
    ):
        assert time.monotonic() < deadline, "the call's end was never logged"
        time.sleep(0.05)
    assert ended[0]["grpc_code"] == "DEADLINE_EXCEEDED"
