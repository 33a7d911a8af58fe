"""Benchmark suite of the signer service: a report, not a test (always exits 0 when it ran).

    .venv/bin/python bench/run.py [--runs N] [--quick] [--keep] [--profile]

Builds a throwaway SoftHSM2 token + SQLite DB + config under a temp dir (bench/setup_env.py),
starts the real ``signer serve`` and the minimal baseline service (bench/baseline_signer.py) as
subprocesses, and measures, interleaving candidate and baseline inside every run (the CPU speed
of these machines drifts, so only same-run ratios mean anything):

1. Resign of a ~300 B Manufacturer Image for one device, 8 concurrent client threads each
   with its own channel (own TCP connection), calls/s, beside the baseline service.
2. The same Resign rate beside the by-hand pipeline
   ``openssl dgst -sha256 -binary F | pkcs11-tool --sign -m ECDSA``, one per image, sequential.
3. Resign of a 10 MB image (upgrade image 10,240,000 bytes), latency of one call, beside one
   baseline round trip that sends the 10 MB, hashes it, signs once and sends it back.
4. BuildDUIS SR 11.1, image_id path (the server re-signs the 10 MB image), 50,000 devices whose
   Supplier digital-signing cell names the token key, on a fresh server process: latency and
   the server's peak RSS (VmHWM).

Ratios are medians of per-run ratios; candidate and baseline columns are medians of the runs.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import (  # bench/ is sys.path[0]
    BENCH,
    OTA_HEADER_LENGTH,
    ROOT,
    TAIL_LENGTH,
    Env,
    Harness,
    Server,
    Stub,
    arguments,
    channel,
    latency,
    log,
    ota_header,
    runs_of,
    schema_dir,
    stub,
    verify_delivery,
    window_calls,
)
from report import RATIO_NOTE, Row, per_run, print_table, title
from setup_env import bulk_device_euis, import_cpl

from signer.api._proto.signer.v1 import signer_pb2 as pb

BIG_UPGRADE_IMAGE = 10_240_000
BIG_MANUFACTURER_IMAGE = BIG_UPGRADE_IMAGE - OTA_HEADER_LENGTH - TAIL_LENGTH  # 10,239,878
SMALL_MANUFACTURER_IMAGE = 300
CLIENTS = 8
BASELINE_METHOD = "/bench.Baseline/Sign"

Call = Callable[[], object]
SMALL_IMAGE = bytes((i * 7 + 3) & 0xFF for i in range(SMALL_MANUFACTURER_IMAGE))
BIG_IMAGE = (bytes(range(256)) * (BIG_MANUFACTURER_IMAGE // 256 + 1))[:BIG_MANUFACTURER_IMAGE]
#: the CPL production would hold: both images recorded, as entries the devices may take
FILE_VERSION = 2  # harness.ota_header's: BuildDUIS names it as firmware_version 00000002
CPL_TARGETS = {"RUN-SMALL": (FILE_VERSION, SMALL_IMAGE), "RUN-BIG": (FILE_VERSION, BIG_IMAGE)}


def throughput(calls: Sequence[Call], seconds: float, server: Server) -> tuple[float, float]:
    """Calls/s with one thread per callable (each bound to its own channel), and the
    server's CPU time per call in microseconds."""
    for c in calls:  # warm-up: connections up, server threads spun
        for _ in range(3):
            c()
    cpu0 = server.cpu()
    total, elapsed = window_calls(calls, seconds)
    return total / elapsed, (server.cpu() - cpu0) / total * 1e6


def pipeline_rate(env: Env, files: list[Path]) -> float:
    """Images/s of the by-hand pipeline, one shell per image, sequential."""
    cmds = [
        f"openssl dgst -sha256 -binary {f} | pkcs11-tool --module {env.module} "
        f"--token-label {env.token_label} --pin {env.pin()} --sign -m ECDSA "
        f"--id {env.supplier_key_id} -o {f}.sig"
        for f in files
    ]
    t = time.perf_counter()
    for cmd in cmds:
        subprocess.run(["sh", "-c", cmd], env=env.process_env(), check=True, capture_output=True)
    elapsed = time.perf_counter() - t
    for f in files:
        if Path(f"{f}.sig").stat().st_size != 64:
            raise RuntimeError(f"pkcs11-tool did not write a 64-byte signature for {f}")
    return len(files) / elapsed


def baseline_call(server: Server, delivery: bytes) -> Call:
    """One baseline round trip of ``delivery`` over a channel of its own."""
    method = channel(server.address).unary_unary(
        BASELINE_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
    )
    assert len(method(delivery)) == len(delivery) + 64
    return lambda: method(delivery)


def resign_call(client: Stub, request: pb.ResignRequest) -> Call:
    return lambda: client.Resign(request)


@dataclass
class Resign:
    """Rows 1-3: the Resign calls of both sides, and the by-hand pipeline's images."""

    signer: Server
    baseline: Server
    small: list[Call]  # CLIENTS signer clients, each with its own channel
    base_small: list[Call]
    big: Call
    base_big: Call
    big_request: pb.ResignRequest
    files: list[Path]


def prepare_resign(h: Harness, env: Env, pipeline_images: int) -> Resign:
    signer, baseline = h.start_signer(env, "main"), h.start_baseline(env)
    log(
        f"signer serve at {signer.address} (pid {signer.pid}), "
        f"baseline at {baseline.address} (pid {baseline.pid})"
    )
    client, mkey = stub(signer.address), env.manufacturer()
    small, big = SMALL_IMAGE, BIG_IMAGE
    device = [env.small_device]
    small_req = pb.ResignRequest(image_id=verify_delivery(client, mkey, small), device_ids=device)
    big_req = pb.ResignRequest(image_id=verify_delivery(client, mkey, big), device_ids=device)
    check = client.Resign(small_req)
    assert len(check.images) == 1 and not check.refused, check
    assert len(check.images[0].upgrade_image) == OTA_HEADER_LENGTH + len(small) + TAIL_LENGTH
    assert len(client.Resign(big_req).images[0].upgrade_image) == BIG_UPGRADE_IMAGE
    files = []
    for i in range(pipeline_images):
        f = h.tmp / f"pipeline-{i:02d}.bin"
        f.write_bytes(small[:-2] + i.to_bytes(2, "big"))
        files.append(f)
    small_clients = [stub(signer.address) for _ in range(CLIENTS)]
    return Resign(
        signer=signer,
        baseline=baseline,
        small=[resign_call(s, small_req) for s in small_clients],
        # what the baseline signs and echoes: the delivery, header + image
        base_small=[
            baseline_call(baseline, ota_header(len(small)) + small) for _ in range(CLIENTS)
        ],
        big=resign_call(client, big_req),
        base_big=baseline_call(baseline, ota_header(len(big)) + big),
        big_request=big_req,
        files=files,
    )


class ResignRows:
    """Rows 1-3 and their context rows, one measurement of each per run."""

    def __init__(self, window: float, big_calls: int, raw_seconds: float) -> None:
        self.window, self.big_calls, self.raw_seconds = window, big_calls, raw_seconds
        self.r1 = Row(
            f"1 Resign ~300 B, {CLIENTS} clients vs minimal service",
            "calls/s",
            goal_kind="min_ratio",
            goal=0.8,
        )
        self.r2 = Row(
            f"2 Resign ~300 B, {CLIENTS} clients vs openssl|pkcs11-tool per image",
            "/s",
            goal_kind="min_ratio",
            goal=30,
        )
        self.r3 = Row(
            "3 Resign 10 MB, one call vs echo+SHA-256+sign", "ms", goal_kind="max_ratio", goal=1.5
        )
        self.cpu = Row("  server CPU per small call, signer vs minimal", "us")
        self.pipe = Row("  minimal service vs openssl|pkcs11-tool", "/s")
        self.raw = Row("  SoftHSM raw sign rate, in-process, 1 thread", "sign/s")

    def context(self) -> list[Row]:
        return [self.cpu, self.pipe, self.raw]

    def measure(self, env: Env, r: Resign, raw_rate: Callable[[float], float], run: int) -> None:
        """One run: the small-image rates, the pipeline, the 10 MB latencies, the raw rate."""
        order = ["b", "s"] if run % 2 else ["s", "b"]  # alternate who goes first
        rates = {
            who: throughput(
                r.small if who == "s" else r.base_small,
                self.window,
                r.signer if who == "s" else r.baseline,
            )
            for who in order
        }
        pipe = pipeline_rate(env, r.files)
        lat: dict[str, list[float]] = {"s": [], "b": []}
        for _ in range(self.big_calls):
            for who in order:
                lat[who].append(latency(r.big if who == "s" else r.base_big))
        self.r1.add(rates["s"][0], rates["b"][0])
        self.r2.add(rates["s"][0], pipe)
        self.r3.add(statistics.median(lat["s"]) * 1000, statistics.median(lat["b"]) * 1000)
        self.cpu.add(rates["s"][1], rates["b"][1])
        self.pipe.add(rates["b"][0], pipe)
        self.raw.add(raw_rate(self.raw_seconds))


@dataclass
class Duis:
    """Row 4 on a fresh server: BuildDUIS latencies, VmHWM, and the upgrade_image path."""

    devices: int
    first_ms: float = 0.0  # the warm-up call
    idle_hwm: int = 0
    both_hwm: int = 0

    def __post_init__(self) -> None:
        self.r4 = Row(
            f"4 BuildDUIS 11.1, 10 MB, {self.devices:,} devices, image_id path",
            "ms",
            goal_kind="max_abs",
            goal=1000,
        )
        self.r5 = Row(
            "4 ... server peak RSS (VmHWM) after those calls", "MB", goal_kind="max_abs", goal=400
        )
        self.upgrade = Row("  BuildDUIS, same, upgrade_image path (10 MB sent)", "ms")

    def measure(self, h: Harness, env: Env, big: pb.ResignRequest, runs: int) -> None:
        devices = self.devices
        log(f"BuildDUIS 11.1: fresh server, 10 MB image, {devices:,} devices")
        server = h.start_signer(env, "duis")
        self.idle_hwm = server.vm("VmHWM")
        client = stub(server.address)
        ids = bulk_device_euis(devices)
        by_id = duis_request(ids, pb.BuildDUISRequest(image_id=big.image_id))
        for i in range(runs + 1):  # the first call is a warm-up, reported apart
            ms, resp = timed_ms(lambda: client.BuildDUIS(by_id))
            if i == 0:
                assert len(resp.device_ids) == devices and not resp.refused, resp.refused[:3]
                assert len(resp.duis_request) > BIG_UPGRADE_IMAGE * 4 // 3
                self.first_ms = ms
            else:
                self.r4.add(ms)
            del resp
        self.r5.add(server.vm("VmHWM") / 1e6)
        upgrade = client.Resign(big).images[0].upgrade_image
        by_image = duis_request(ids, pb.BuildDUISRequest(upgrade_image=upgrade))
        for i in range(runs + 1):
            ms, resp = timed_ms(lambda: client.BuildDUIS(by_image))
            if i == 0:
                assert len(resp.device_ids) == devices and not resp.refused, resp.refused[:3]
            else:
                self.upgrade.add(ms)
            del resp
        self.both_hwm = server.vm("VmHWM")
        server.stop()


def duis_request(ids: list[str], image: pb.BuildDUISRequest) -> pb.BuildDUISRequest:
    """SR 11.1 for ``ids`` of ``image`` (a request with only its image_id or upgrade_image)."""
    image.device_ids.extend(ids)
    image.firmware_version, image.service_reference = "00000002", "11.1"  # harness file version
    return image


def timed_ms(call: Callable[[], pb.BuildDUISResponse]) -> tuple[float, pb.BuildDUISResponse]:
    t = time.perf_counter()
    out = call()
    return (time.perf_counter() - t) * 1000, out


@dataclass
class Sizes:
    """How much each part does: a real run, or a --quick smoke run."""

    window: float  # seconds per throughput measurement
    pipeline_images: int
    big_calls: int  # 10 MB calls per side per run
    devices: int
    raw_seconds: float

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(0.5, 5, 1, 5_000, 0.3) if quick else cls(2.0, 20, 5, 50_000, 0.5)


def print_notes(size: Sizes, duis: Duis, resign_hwm: int) -> None:
    print("notes:")
    print(
        f"  1/2: {CLIENTS} client threads in one process, each with its own channel "
        f"(own TCP connection), {size.window:g} s windows, candidate and baseline interleaved;"
        "\n       minimal = bench/baseline_signer.py (proto-less gRPC, SHA-256 + "
        "CKM_ECDSA under one lock, same token, echoes header+image+signature);"
        f"\n       pipeline = `openssl dgst | pkcs11-tool --sign` per image, "
        f"{size.pipeline_images} images, sequential; server CPU from /proc/<pid>/stat"
    )
    print(
        f"  3:   median of {size.big_calls} calls per side per run; the minimal service "
        "receives and returns the 10 MB, signer receives an image_id, returns the 10 MB"
    )
    schema = "set" if schema_dir() else "NOT set (no validation)"
    print(
        f"  4:   fresh server, schema_dir {schema}"
        f"; first (warm-up) call {duis.first_ms:,.0f} ms; VmHWM right after start "
        f"{duis.idle_hwm / 1e6:,.0f} MB,\n       after the upgrade_image calls too "
        f"{duis.both_hwm / 1e6:,.0f} MB; (the rows 1-3 server ended at VmHWM "
        f"{resign_hwm / 1e6:,.0f} MB)"
    )
    print(RATIO_NOTE)


def profile(env: Env, devices: int) -> None:
    """bench/profile_service.py on this environment: Resign, then BuildDUIS."""
    for case in ("resign", "duis"):
        cmd = [sys.executable, str(BENCH / "profile_service.py"), env.config, case]
        subprocess.run(
            [*cmd, "--devices", str(devices)], cwd=ROOT, env=env.process_env(), check=False
        )


def parse_args() -> argparse.Namespace:
    ap = arguments(
        __doc__,
        quick="smoke run: 1 run, short windows, 5,000 devices (not a measurement)",
        keep="keep the temp dir (logs, token, DB)",
    )
    ap.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile Resign and BuildDUIS in-process (bench/profile_service.py)",
    )
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    runs, size = runs_of(args), Sizes.of(args.quick)
    with Harness("signer-bench-", keep=args.keep) as h:
        log(f"setting up token, DB ({size.devices:,} devices) and config in {h.tmp}")
        env = h.provision(size.devices)
        import_cpl(env.db_url, CPL_TARGETS)  # strict CPL (the default), as production runs
        resign = prepare_resign(h, env, size.pipeline_images)
        raw = h.raw_hsm(env)
        for _ in range(2):  # 10 MB warm-up: buffers and allocator arenas of both servers
            resign.big()
            resign.base_big()
        rows = ResignRows(size.window, size.big_calls, size.raw_seconds)
        for run in range(runs):
            log(f"run {run + 1}/{runs}")
            rows.measure(env, resign, raw.rate, run)
        raw.close()
        resign_hwm = resign.signer.vm("VmHWM")
        resign.signer.stop()
        resign.baseline.stop()
        duis = Duis(size.devices)
        duis.measure(h, env, resign.big_request, runs)

        table = [rows.r1, rows.r2, rows.r3, duis.r4, duis.r5, *rows.context(), duis.upgrade]
        print_table(table, title("signer benchmark", quick=args.quick, runs=runs))
        print_notes(size, duis, resign_hwm)
        per_run(table)
        h.done()
        if args.profile:
            profile(env, size.devices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
