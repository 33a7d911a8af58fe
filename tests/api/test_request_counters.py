"""RequestID counters over gRPC: distinct and increasing under concurrency, and after restart."""

from __future__ import annotations

import threading
from pathlib import Path

import grpc
import pytest

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.limits import CHANNEL_OPTIONS
from tests.support.constants import RTDS_DEVICE
from tests.support.hsm import Hsm
from tests.support.independent import duis_fields
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare, start_server, verify_separate


def _counter(doc: bytes) -> int:
    return int(duis_fields(doc)["RequestID"].rsplit(":", 1)[1])


def test_counters_are_distinct_increasing_and_survive_a_restart(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    config, _db, _url = prepare(hsm, vectors, manufacturer, tmp_path)
    server = start_server(config, tmp_path / "first.log")
    image = b"counter test " * 20
    try:
        stub = pb_grpc.FirmwareSignerStub(
            grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        )
        verdict = verify_separate(stub, manufacturer, image)
        assert verdict.verified
        request = pb.BuildDUISRequest(
            image_id=verdict.image_id, device_ids=[RTDS_DEVICE], firmware_version="01020304"
        )
        per_client: list[list[int]] = []
        errors: list[BaseException] = []

        def client() -> None:
            # each client has its own channel, as separate back-office systems would
            own = pb_grpc.FirmwareSignerStub(
                grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
            )
            try:
                per_client.append(
                    [_counter(own.BuildDUIS(request).duis_request) for _ in range(10)]
                )
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        seen = [c for seq in per_client for c in seq]
        assert len(seen) == len(set(seen)) == 80
        for seq in per_client:
            assert seq == sorted(seq) and len(set(seq)) == len(seq)
    finally:
        assert server.stop() == 0

    server = start_server(config, tmp_path / "second.log")
    try:
        stub = pb_grpc.FirmwareSignerStub(
            grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        )
        after = _counter(stub.BuildDUIS(request).duis_request)
        assert after > max(seen)
    finally:
        assert server.stop() == 0


def test_a_token_without_the_devices_key_refuses_the_device(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, tmp_path: Path
) -> None:
    """Device 90-A0's cell names Z1-supplier-ds; a token holding only Z1b-supplier-ds refuses it."""
    from tests.support.z1b import z1b_only_token

    z1b_only_token(hsm, vectors)
    config, _db, _url = prepare(hsm, vectors, manufacturer, tmp_path)
    text = config.read_text().replace('label = "signer-test"', 'label = "signer-z1b"')
    config.write_text(text)
    server = start_server(config, tmp_path / "z1b.log")
    try:
        stub = pb_grpc.FirmwareSignerStub(
            grpc.insecure_channel(server.address, options=CHANNEL_OPTIONS)
        )
        image = b"z1b " * 40
        verdict = verify_separate(stub, manufacturer, image)
        with pytest.raises(grpc.RpcError) as err:
            stub.Resign(pb.ResignRequest(image_id=verdict.image_id, device_ids=[RTDS_DEVICE]))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"{RTDS_DEVICE}: no_key_for_cell" in (err.value.details() or "")
        assert "44899792d196f4b8" in (err.value.details() or "")
    finally:
        assert server.stop() == 0
