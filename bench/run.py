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
   Supplier digital-signing cell names the token key, on a fresh server process: latency
   beside the sum of its unavoidable parts timed here on the same document, and the
   server's peak RSS (VmHWM).
7. Latency under load: p99 against p50 of Resign and BuildDUIS (~300 B image, 10 devices),
   32 client threads with a channel each.

The configuration is production's: strict CPL (imported: both images recorded, the devices'
inventory on their predecessor entry), schema validation on, the audit trail on.

Ratios are medians of per-run ratios; candidate and baseline columns are medians of the runs.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
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
    RawHsm,
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
    small_request: pb.ResignRequest
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
        small_request=small_req,
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
    """Row 4 on a fresh server: BuildDUIS latencies beside the sum of their unavoidable
    parts measured in the same run, VmHWM, and the upgrade_image path."""

    devices: int
    first_ms: float = 0.0  # the warm-up call
    idle_hwm: int = 0
    both_hwm: int = 0

    def __post_init__(self) -> None:
        self.r4 = Row(
            f"4 BuildDUIS 11.1, 10 MB, {self.devices:,} devices vs its unavoidable parts",
            "ms",
            goal_kind="max_ratio",
            goal=2.5,
        )
        self.r5 = Row(
            "4 ... server peak RSS (VmHWM) after those calls", "MB", goal_kind="max_abs", goal=400
        )
        self.parts = {name: Row(f"  part: {name}", "ms") for name in Parts.NAMES}
        self.upgrade = Row("  BuildDUIS, same, upgrade_image path (10 MB sent)", "ms")

    def measure(self, h: Harness, env: Env, big: pb.ResignRequest, runs: int, raw: RawHsm) -> None:
        devices = self.devices
        log(f"BuildDUIS 11.1: fresh server, 10 MB image, {devices:,} devices")
        server = h.start_signer(env, "duis")
        self.idle_hwm = server.vm("VmHWM")
        client = stub(server.address)
        ids = bulk_device_euis(devices)
        by_id = duis_request(ids, pb.BuildDUISRequest(image_id=big.image_id))
        upgrade = client.Resign(big).images[0].upgrade_image
        parts: Parts | None = None
        for i in range(runs + 1):  # the first call is a warm-up, reported apart
            ms, resp = timed_ms(lambda: client.BuildDUIS(by_id))
            if i == 0:
                assert len(resp.device_ids) == devices and not resp.refused, resp.refused[:3]
                assert len(resp.duis_request) > BIG_UPGRADE_IMAGE * 4 // 3
                self.first_ms = ms
                parts = Parts(resp.duis_request, upgrade, raw)
            else:
                assert parts is not None
                measured = parts.measure()
                for name, part_ms in measured.items():
                    self.parts[name].add(part_ms)
                self.r4.add(ms, sum(measured.values()))
            del resp
        self.r5.add(server.vm("VmHWM") / 1e6)
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


class Parts:
    """What any BuildDUIS of this request must do, timed here in the benchmark process on
    the document the server returned: issue 14's list of its unavoidable parts."""

    NAMES = (
        "SHA-256 + base64 of the upgrade image",
        "inclusive C14N + SHA-256 of the document",
        "schema validation of the document",
        "two HSM signatures",
    )

    def __init__(self, document: bytes, upgrade_image: bytes, raw: RawHsm) -> None:
        from lxml import etree

        self._etree = etree
        parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
        self.root = etree.fromstring(document, parser)
        self.upgrade = upgrade_image
        self.raw = raw
        directory = schema_dir()
        if directory is None:
            raise RuntimeError("../shared/vectors/xsd is missing: the schema part needs it")
        self.schema = etree.XMLSchema(etree.parse(str(directory / "DUIS_Schema_V5.4.xsd")))

    def measure(self) -> dict[str, float]:
        out: dict[str, float] = {}
        t = time.perf_counter()
        hashlib.sha256(self.upgrade).digest()
        base64.b64encode(self.upgrade)
        out[self.NAMES[0]] = time.perf_counter() - t
        t = time.perf_counter()
        hashlib.sha256(self._etree.tostring(self.root, method="c14n")).digest()
        out[self.NAMES[1]] = time.perf_counter() - t
        t = time.perf_counter()
        if not self.schema.validate(self.root):
            raise RuntimeError(
                f"the server's document is not schema-valid: {self.schema.error_log}"
            )
        out[self.NAMES[2]] = time.perf_counter() - t
        digest = hashlib.sha256(b"duis").digest()
        t = time.perf_counter()
        self.raw.sign(digest)
        self.raw.sign(digest)
        out[self.NAMES[3]] = time.perf_counter() - t
        return {k: v * 1000 for k, v in out.items()}


def duis_request(ids: list[str], image: pb.BuildDUISRequest) -> pb.BuildDUISRequest:
    """SR 11.1 for ``ids`` of ``image`` (a request with only its image_id or upgrade_image)."""
    image.device_ids.extend(ids)
    image.firmware_version, image.service_reference = "00000002", "11.1"  # harness file version
    return image


def timed_ms(call: Callable[[], pb.BuildDUISResponse]) -> tuple[float, pb.BuildDUISResponse]:
    t = time.perf_counter()
    out = call()
    return (time.perf_counter() - t) * 1000, out


TAIL_CLIENTS = 32
TAIL_DEVICES = 10


class Tails:
    """Row 7: p99 against p50 of Resign and BuildDUIS (~300 B image, 10 devices) with 32
    clients, each its own channel, all calling for the window."""

    def __init__(self, window: float, h: Harness, env: Env, r: Resign) -> None:
        self.window = window
        devices = bulk_device_euis(TAIL_DEVICES)
        image_id = r.small_request.image_id
        resign = pb.ResignRequest(image_id=image_id, device_ids=devices)
        duis = duis_request(devices, pb.BuildDUISRequest(image_id=image_id))
        clients = [stub(r.signer.address) for _ in range(TAIL_CLIENTS)]
        self.calls = {
            "Resign": [lambda c=c: c.Resign(resign) for c in clients],
            "BuildDUIS": [lambda c=c: c.BuildDUIS(duis) for c in clients],
        }
        self.p99 = {
            name: Row(
                f"7 {name} ~300 B, {TAIL_DEVICES} devices, {TAIL_CLIENTS} clients: p99 vs p50",
                "ms",
                goal_kind="max_ratio",
                goal=10,
            )
            for name in self.calls
        }
        self.rate = {name: Row(f"  {name}, same, calls/s", "calls/s") for name in self.calls}

    def measure(self) -> None:
        for name, calls in self.calls.items():
            lat = sorted(latencies(calls, self.window))
            p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            self.p99[name].add(p99 * 1000, p50 * 1000)
            self.rate[name].add(len(lat) / self.window)

    def rows(self) -> list[Row]:
        return [*self.p99.values(), *self.rate.values()]


def latencies(calls: Sequence[Call], seconds: float) -> list[float]:
    """Every call's latency, one thread per callable calling for ``seconds``."""
    out: list[list[float]] = [[] for _ in calls]

    def timed(i: int, call: Call) -> Call:
        def one() -> object:
            t = time.perf_counter()
            result = call()
            out[i].append(time.perf_counter() - t)
            return result

        return one

    for c in calls:  # warm-up: connections up
        c()
    window_calls([timed(i, c) for i, c in enumerate(calls)], seconds)
    return [x for per in out for x in per]


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
        "  4:   parts = SHA-256 + base64 of the 10 MB upgrade image, inclusive C14N + SHA-256 "
        "and schema\n       validation of the document the server returned (lxml), two "
        "raw HSM signatures: timed in this process after each call"
    )
    print(
        f"  7:   {TAIL_CLIENTS} client threads with a channel each, {size.window * 2:g} s "
        "windows per RPC per run, the server of rows 1-3; BuildDUIS by image_id, 11.1"
    )
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
        resign_hwm = resign.signer.vm("VmHWM")
        tails = Tails(size.window * 2, h, env, resign)
        for run in range(runs):
            log(f"latency under load, run {run + 1}/{runs}")
            tails.measure()
        resign.signer.stop()
        resign.baseline.stop()
        duis = Duis(size.devices)
        duis.measure(h, env, resign.big_request, runs, raw)
        raw.close()

        table = [
            rows.r1,
            rows.r2,
            rows.r3,
            duis.r4,
            duis.r5,
            *tails.rows(),
            *rows.context(),
            *duis.parts.values(),
            duis.upgrade,
        ]
        print_table(table, title("signer benchmark", quick=args.quick, runs=runs))
        print_notes(size, duis, resign_hwm)
        per_run(table)
        h.done()
        if args.profile:
            profile(env, size.devices)
    return 0


if __name__ == "__main__":
    sys.exit(main())
