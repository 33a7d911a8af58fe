"""Two `signer serve` replicas on one database (SQLite or PostgreSQL) and one token, as a
deployment scales out.

A campaign split across them gets distinct RequestID counters; each pre-command, sent to
both at once, is signed by exactly one of them; the audit trail stays one intact chain.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc
from cryptography import x509

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.cpl.parse import read_csv
from signer.limits import CHANNEL_OPTIONS
from signer.registry import cpl
from tests.support.activation_fleet import HEADER, IMAGE, IMAGE_HASH, cpl_csv
from tests.support.audit_rows import assert_chain, rows
from tests.support.constants import PINNED, SUPPLIER_EUI
from tests.support.devices import add_device
from tests.support.hsm import Hsm
from tests.support.independent import cs06_pre_command, raw_signature_verifies
from tests.support.manufacturer import Manufacturer
from tests.support.server import prepare, start_server, verify_separate

DEVICES = [f"00-DD-00-00-00-00-00-{i:02X}" for i in range(60)]


T = TypeVar("T")


def _together(*calls: Callable[[], T]) -> list[T]:
    """Run the calls in threads released at the same moment; their results in order."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except BaseException as exc:  # re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def test_two_replicas_share_a_campaign(
    hsm: Hsm, vectors: Path, manufacturer: Manufacturer, db_url: str, tmp_path: Path
) -> None:
    """On SQLite and on PostgreSQL."""
    config, db, url = prepare(
        hsm, vectors, manufacturer, tmp_path, cpl_mode="strict", db_url=db_url
    )
    assert cpl.import_entries(db, read_csv(cpl_csv().splitlines()), PINNED).applied
    for eui in DEVICES:
        add_device(db, eui, entry="T-2")
    replicas = [start_server(config, tmp_path / f"replica-{i}.log") for i in range(2)]
    try:
        stubs = [
            pb_grpc.FirmwareSignerStub(grpc.insecure_channel(r.address, options=CHANNEL_OPTIONS))
            for r in replicas
        ]
        verdict = verify_separate(stubs[0], manufacturer, IMAGE, header=HEADER)
        assert verdict.verified, verdict.checks

        def activate(
            stub: pb_grpc.FirmwareSignerStub, ids: list[str]
        ) -> list[pb.ActivationRequest]:
            def messages() -> Iterator[pb.ActivationCampaignRequest]:
                yield pb.ActivationCampaignRequest(
                    activation=pb.ActivationSpec(image_id=verdict.image_id)
                )
                for i in range(0, len(ids), 7):  # several batches each, interleaving
                    yield pb.ActivationCampaignRequest(
                        devices=pb.DeviceBatch(device_ids=ids[i : i + 7])
                    )

            return [r.request for b in stub.StreamActivation(messages()) for r in b.results]

        halves = _together(
            lambda: activate(stubs[0], DEVICES[0::2]), lambda: activate(stubs[1], DEVICES[1::2])
        )
        built = [r for half in halves for r in half]
        assert sorted(r.device_id for r in built) == sorted(DEVICES)
        counters = [int(r.request_id.rsplit(":", 1)[1]) for r in built]
        assert len(set(counters)) == len(DEVICES)  # counters are promises, across replicas

        pres = [
            cs06_pre_command(
                originator=SUPPLIER_EUI,
                recipient=r.device_id,
                counter=int(r.request_id.rsplit(":", 1)[1]),
                firmware_hash=IMAGE_HASH,
            )
            for r in built
        ]

        def sign_all(stub: pb_grpc.FirmwareSignerStub) -> list[pb.PreCommandResult]:
            return [
                r
                for m in stub.StreamSignPreCommands(
                    iter([pb.PreCommandBatch(pre_commands=pres, accept_unauthenticated=True)])
                )
                for r in m.results
            ]

        answers = _together(lambda: sign_all(stubs[0]), lambda: sign_all(stubs[1]))
        cert = x509.load_pem_x509_certificate((vectors / "certs/Z1-supplier-ds.pem").read_bytes())
        for i, pre in enumerate(pres):
            kinds = sorted(a[i].WhichOneof("result") for a in answers)
            assert kinds == ["refused", "signed"], (i, kinds)  # exactly one signed it
            [signed] = [a[i].signed for a in answers if a[i].WhichOneof("result") == "signed"]
            assert raw_signature_verifies(cert, pre[1:], signed.signed_pre_command[-64:])
            [refused] = [a[i].refused for a in answers if a[i].WhichOneof("result") == "refused"]
            assert refused.code == "pre_command_already_signed"
    finally:
        for r in replicas:
            assert r.stop() == 0
    path = url
    assert assert_chain(path) >= 3 * len(DEVICES)
    ops = [r["operation"] for r in rows(path)]
    assert ops.count("precommand-sign") == len(DEVICES)  # none signed twice, none lost
    assert ops.count("activation-sign") == len(DEVICES)
    db.dispose()
