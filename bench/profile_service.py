"""cProfile the Resign / BuildDUIS use cases in-process, on a benchmark environment.

    SOFTHSM2_CONF=<dir>/env/softhsm2.conf \
    .venv/bin/python bench/profile_service.py <dir>/env/bench.toml CASE [--calls N]

CASE: resign (~300 B image), resign-big (10 MB), duis (BuildDUIS 11.1, 10 MB, 50,000
devices, image_id path), duis-phases (wall time of each BuildDUIS step, no profiler).

``<dir>`` is a temp dir kept by ``bench/run.py --keep``. The use case runs in the main thread
(cProfile sees only the thread that enabled it, so profiling ``signer serve`` from outside
would show only the idle main thread); gRPC (de)serialisation of the request and response is
timed apart. Prints phase timings and the top functions by own and cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import func, select

from signer.api import convert
from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.config import load_config
from signer.registry.models import FirmwareImage
from signer.service.duis import build_duis
from signer.service.resign import resign
from signer.service.services import open_services

sys.path.insert(0, str(Path(__file__).resolve().parent))
from setup_env import SMALL_DEVICE, bulk_device_euis

T = TypeVar("T")


def duis_phases(svc: Any, big_id: str, device_ids: list[str]) -> None:
    """Wall and CPU time of each step BuildDUIS (image_id path) takes, called one by one
    (CPU: the machine may be shared)."""
    from signer.duis.request import RequestId, build_update_firmware
    from signer.duis.xmldsig import sign_document
    from signer.registry import counters
    from signer.registry import devices as device_registry
    from signer.service import signing
    from signer.service.devices import parse_devices
    from signer.service.duis import xml_signing_key
    from signer.service.images import verified_image
    from signer.service.pathways import select_eligible
    from signer.service.resign import sign_for_group
    from signer.service.schema_check import schema_check

    times: dict[str, tuple[float, float]] = {}

    def step(name: str, f: Callable[[], T]) -> T:
        t, c = time.perf_counter(), time.process_time()
        out = f()
        times[name] = ((time.perf_counter() - t) * 1e3, (time.process_time() - c) * 1e3)
        return out

    devices = step("devices.parse_devices", lambda: parse_devices(device_ids))
    step(
        "  (registry.devices.device_kinds alone: the look-up)",
        lambda: device_registry.device_kinds(svc.db, devices),
    )
    image = step("resign.verified_image (10 MB from the DB)", lambda: verified_image(svc, big_id))
    sel = step("pathways.select_eligible", lambda: select_eligible(svc, image, devices))

    def resign_step() -> Any:
        with signing.batch(svc) as signer:  # the signature and its audit record
            return sign_for_group(signer, image, sel.groups[0], False)

    signed = step("resign.sign_for_group + audit record", resign_step)
    key, cert = step("duis.xml_signing_key", lambda: xml_signing_key(svc))
    counter = step("counters.reserve", lambda: counters.reserve(svc.db, svc.config.supplier_eui))
    rid = RequestId(svc.config.supplier_eui, svc.config.dcc_eui, counter)
    root = step(
        "request.build_update_firmware",
        lambda: build_update_firmware(
            request_id=rid,
            service="11.1",
            firmware_image=signed.upgrade_image,
            firmware_version="00000002",
            devices=list(sel.groups[0].devices),
        ),
    )
    check = None
    if svc.schema is not None:
        check = schema_check(svc.schema, aside=True)
    doc = step(
        "xmldsig.sign_document, schema validated alongside",
        lambda: sign_document(
            root,
            sign_digest=lambda d: svc.token.sign_digest(key, d),
            issuer_name=cert.issuer_name,
            serial=cert.serial,
            check=check,
        ),
    )
    ids = step(
        "servicer: [str(d) for d in devices]", lambda: [str(d) for d in sel.groups[0].devices]
    )
    step(
        "servicer: BuildDUISResponse + serialise",
        lambda: pb.BuildDUISResponse(
            duis_request=doc, request_id=str(rid), device_ids=ids
        ).SerializeToString(),
    )
    step(
        "== build_duis as a whole",
        lambda: build_duis(
            svc,
            image_id=big_id,
            upgrade_image=None,
            device_ids=device_ids,
            firmware_version="00000002",
            service="11.1",
        ),
    )
    print(f"BuildDUIS steps, ms wall / CPU, and CPU us per device ({len(device_ids):,}):")
    for k, (wall, cpu) in times.items():
        print(f"  {k.strip():55s} {wall:8.1f} {cpu:8.1f} {cpu * 1e3 / len(device_ids):6.2f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", type=Path)
    ap.add_argument("case", choices=["resign", "resign-big", "duis", "duis-phases"])
    ap.add_argument("--dump", default=None, help="also write the profile to this file")
    ap.add_argument("--calls", type=int, default=0, help="default: 2000 resign, 20 big, 3 duis")
    ap.add_argument("--devices", type=int, default=50_000)
    ap.add_argument("--top", type=int, default=30)
    args = ap.parse_args()
    svc = open_services(load_config(args.config))
    with svc.db.session() as s:
        by_size = list(
            s.execute(
                select(FirmwareImage.image_id, func.length(FirmwareImage.manufacturer_image))
                .where(FirmwareImage.verified)
                .order_by(func.length(FirmwareImage.manufacturer_image))
            )
        )
    small_id, big_id = by_size[0][0], by_size[-1][0]

    if args.case == "duis-phases":
        for _ in range(3):
            duis_phases(svc, big_id, bulk_device_euis(args.devices))
        svc.close()
        return 0
    if args.case == "duis":
        calls = args.calls or 3
        devices = bulk_device_euis(args.devices)
        wire = pb.BuildDUISRequest(
            image_id=big_id,
            device_ids=devices,
            firmware_version="00000002",
            service_reference="11.1",
        ).SerializeToString()

        def one() -> object:
            t = time.perf_counter()
            req = pb.BuildDUISRequest.FromString(wire)
            t_in = time.perf_counter() - t
            t = time.perf_counter()
            r = build_duis(
                svc,
                image_id=req.image_id,
                upgrade_image=None,
                device_ids=list(req.device_ids),
                firmware_version=req.firmware_version,
                service=req.service_reference,
            )
            t_case = time.perf_counter() - t
            t = time.perf_counter()
            out = pb.BuildDUISResponse(
                duis_request=r.document,
                request_id=str(r.request_id),
                device_ids=[str(d) for d in r.devices],
                refused=convert.refusals_to_pb(r.refused),
            )
            n = len(out.SerializeToString())
            t_out = time.perf_counter() - t
            print(
                f"  decode request {t_in * 1e3:.0f} ms, build_duis {t_case * 1e3:.0f} ms, "
                f"encode response {t_out * 1e3:.0f} ms ({n:,} bytes)"
            )
            return out
    else:
        image_id = big_id if args.case == "resign-big" else small_id
        calls = args.calls or (20 if args.case == "resign-big" else 2000)

        def one() -> object:
            return convert.resign_response(resign(svc, image_id, [SMALL_DEVICE], False))

    one()  # warm-up
    cpu, t = time.process_time(), time.perf_counter()
    for _ in range(calls):
        one()
    plain, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(
        f"{args.case}: {calls} calls in {plain:.2f} s without a profiler "
        f"({plain / calls * 1e3:.3f} ms/call, CPU {cpu / calls * 1e3:.3f} ms/call)"
    )
    prof = cProfile.Profile()
    t = time.perf_counter()
    prof.enable()
    for _ in range(calls):
        one()
    prof.disable()
    elapsed = time.perf_counter() - t
    print(
        f"{args.case}: {calls} calls in {elapsed:.2f} s under cProfile "
        f"({elapsed / calls * 1e3:.3f} ms/call)"
    )
    if args.dump:
        prof.dump_stats(args.dump)
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)
    svc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
