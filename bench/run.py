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
import datetime as dt
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.api.server import CHANNEL_OPTIONS
from signer.gbcs.ota import OtaHeader

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCHEMA_DIR = ROOT.parent / "shared" / "vectors" / "xsd"
MANUFACTURER_CODE = 0x121D
OTA_HEADER_LENGTH = 56
TAIL_LENGTH = 66
BIG_UPGRADE_IMAGE = 10_240_000
BIG_MANUFACTURER_IMAGE = BIG_UPGRADE_IMAGE - OTA_HEADER_LENGTH - TAIL_LENGTH  # 10,239,878
SMALL_MANUFACTURER_IMAGE = 300
CLIENTS = 8
BASELINE_METHOD = "/bench.Baseline/Sign"


# -- processes ----------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[str]
    address: str
    log: Path

    def vm(self, field_name: str) -> int:
        """A /proc/<pid>/status figure (VmHWM, VmRSS) in bytes."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(field_name)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    env.update(extra)
    return env


def start(name: str, cmd: list[str], env: dict[str, str], log: Path) -> Server:
    out = log.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line.startswith("METRICS "):  # the metrics endpoint is announced first
        line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{name} did not start: {line!r}\n{log.read_text()[-3000:]}")
    return Server(name, proc, line.split()[1], log)


def start_signer(info: dict[str, Any], tmp: Path, tag: str) -> Server:
    return start(
        "signer serve",
        [sys.executable, "-m", "signer.cli.main", "serve", "--config", info["config"]],
        _env({"SOFTHSM2_CONF": info["softhsm2_conf"]}),
        tmp / f"signer-{tag}.log",
    )


def start_baseline(info: dict[str, Any], tmp: Path) -> Server:
    return start(
        "baseline",
        [
            sys.executable,
            str(BENCH / "baseline_signer.py"),
            "--module",
            info["module"],
            "--token-label",
            info["token_label"],
            "--pin-file",
            info["pin_file"],
            "--key-label",
            info["supplier_key_label"],
        ],
        _env({"SOFTHSM2_CONF": info["softhsm2_conf"]}),
        tmp / "baseline.log",
    )


def channel(address: str) -> grpc.Channel:
    # A local subchannel pool gives each channel its own TCP connection.
    return grpc.insecure_channel(
        address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    )


# -- images ----------------------------------------------------------------------------


def ota_header(image_length: int, file_version: int = 2) -> bytes:
    return OtaHeader(
        header_version=0x0100,
        header_length=OTA_HEADER_LENGTH,
        field_control=0,
        manufacturer_code=MANUFACTURER_CODE,
        image_type=0x0001,
        file_version=file_version,
        zigbee_stack_version=0x0002,
        header_string=b"signer benchmark image".ljust(32, b"\0"),
        total_image_size=OTA_HEADER_LENGTH + image_length + TAIL_LENGTH,
        security_credential_version=None,
        upgrade_file_destination=None,
        min_hardware_version=None,
        max_hardware_version=None,
    ).to_bytes()


def verify_delivery(
    stub: pb_grpc.FirmwareSignerStub, key: ec.EllipticCurvePrivateKey, image: bytes
) -> str:
    header = ota_header(len(image))
    verdict = stub.VerifyManufacturer(
        pb.VerifyManufacturerRequest(
            separate=pb.SeparateDelivery(
                ota_header=header,
                manufacturer_image=image,
                signature=key.sign(header + image, ec.ECDSA(hashes.SHA256())),
                hash=hashlib.sha256(image).digest(),
            )
        )
    )
    if not verdict.verified:
        raise RuntimeError(f"delivery not verified: {verdict.checks}")
    return str(verdict.image_id)


# -- measurements -------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def throughput(
    calls: list[Callable[[], object]], seconds: float, server: Server
) -> tuple[float, float]:
    """Calls/s with one thread per callable (each bound to its own channel), and the
    server's CPU time per call in microseconds."""
    for c in calls:  # warm-up: connections up, server threads spun
        for _ in range(3):
            c()
    counts = [0] * len(calls)
    ends = [0.0] * len(calls)
    barrier = threading.Barrier(len(calls) + 1)
    t0 = [0.0]

    def worker(i: int, call: Callable[[], object]) -> None:
        barrier.wait()
        deadline = t0[0] + seconds
        n = 0
        while True:
            call()
            n += 1
            now = time.perf_counter()
            if now >= deadline:
                break
        counts[i], ends[i] = n, now

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    cpu0 = cpu_seconds(server.proc.pid)
    t0[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    cpu = cpu_seconds(server.proc.pid) - cpu0
    total = sum(counts)
    return total / (max(ends) - t0[0]), cpu / total * 1e6


def latency(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def pipeline_rate(info: dict[str, Any], files: list[Path]) -> float:
    """Images/s of the by-hand pipeline, one shell per image, sequential."""
    pin = Path(info["pin_file"]).read_text().strip()
    env = _env({"SOFTHSM2_CONF": info["softhsm2_conf"]})
    cmds = [
        f"openssl dgst -sha256 -binary {f} | pkcs11-tool --module {info['module']} "
        f"--token-label {info['token_label']} --pin {pin} --sign -m ECDSA "
        f"--id {info['supplier_key_id']} -o {f}.sig"
        for f in files
    ]
    t = time.perf_counter()
    for cmd in cmds:
        subprocess.run(["sh", "-c", cmd], env=env, check=True, capture_output=True)
    elapsed = time.perf_counter() - t
    for f in files:
        if Path(f"{f}.sig").stat().st_size != 64:
            raise RuntimeError(f"pkcs11-tool did not write a 64-byte signature for {f}")
    return len(files) / elapsed


class RawHsm:
    """SoftHSM via python-pkcs11 in this process: the ceiling any service can reach."""

    def __init__(self, info: dict[str, Any]) -> None:
        import pkcs11
        from pkcs11 import KeyType, Mechanism, ObjectClass

        os.environ["SOFTHSM2_CONF"] = info["softhsm2_conf"]
        lib = pkcs11.lib(info["module"])
        self.session = lib.get_token(token_label=info["token_label"]).open(
            user_pin=Path(info["pin_file"]).read_text().strip()
        )
        self.key = self.session.get_key(
            object_class=ObjectClass.PRIVATE_KEY,
            key_type=KeyType.EC,
            label=info["supplier_key_label"],
        )
        self.mechanism = Mechanism.ECDSA

    def rate(self, seconds: float) -> float:
        digest = hashlib.sha256(b"raw").digest()
        n, t = 0, time.perf_counter()
        deadline = t + seconds
        while True:
            for _ in range(100):
                self.key.sign(digest, mechanism=self.mechanism)
            n += 100
            now = time.perf_counter()
            if now >= deadline:
                return n / (now - t)

    def close(self) -> None:
        self.session.close()


# -- the report ---------------------------------------------------------------------------


@dataclass
class Row:
    what: str
    unit: str
    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    # "min_ratio", "max_ratio", "max_abs" (candidate <= goal) or "" (context only)
    goal_kind: str = ""
    goal: float = 0.0

    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline, strict=True)]

    def verdict(self) -> str:
        if not self.candidate or not self.goal_kind:
            return ""
        if self.goal_kind == "min_ratio":
            ok = statistics.median(self.ratios()) >= self.goal
        elif self.goal_kind == "max_ratio":
            ok = statistics.median(self.ratios()) <= self.goal
        else:
            ok = statistics.median(self.candidate) <= self.goal
        return "pass" if ok else "FAIL"

    def cells(self) -> list[str]:
        def fmt(v: float) -> str:
            return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"

        cand = f"{fmt(statistics.median(self.candidate))} {self.unit}" if self.candidate else "-"
        base = f"{fmt(statistics.median(self.baseline))} {self.unit}" if self.baseline else "-"
        ratio = f"{statistics.median(self.ratios()):.2f}x" if self.baseline else "-"
        goal = {
            "min_ratio": f">= {self.goal:g}x",
            "max_ratio": f"<= {self.goal:g}x",
            "max_abs": f"<= {fmt(self.goal)} {self.unit}",
            "": "(context)",
        }[self.goal_kind]
        return [self.what, cand, base, ratio, goal, self.verdict()]


def print_table(rows: list[Row], header: str) -> None:
    head = ["what", "candidate", "baseline", "ratio", "goal", "result"]
    body = [r.cells() for r in rows]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(header)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for cells in body:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) if i < 4 else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    print(line)


def per_run(rows: list[Row]) -> None:
    print("\nper run (candidate / baseline):")
    for r in rows:
        pairs = (
            zip(r.candidate, r.baseline, strict=True)
            if r.baseline
            else ((c, None) for c in r.candidate)
        )
        shown = ", ".join(f"{c:,.1f}" + (f"/{b:,.1f}" if b is not None else "") for c, b in pairs)
        print(f"  {r.what}: {shown}")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 run, short windows, 5,000 devices (not a measurement)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, token, DB)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile Resign and BuildDUIS in-process (bench/profile_service.py)",
    )
    args = ap.parse_args()
    runs = 1 if args.quick else max(1, args.runs)
    window = 0.5 if args.quick else 2.0  # seconds per throughput measurement
    pipeline_images = 5 if args.quick else 20
    big_calls = 1 if args.quick else 5  # 10 MB calls per side per run
    devices = 5_000 if args.quick else 50_000
    schema_dir = SCHEMA_DIR if SCHEMA_DIR.is_dir() else None

    tmp = Path(tempfile.mkdtemp(prefix="signer-bench-"))
    servers: list[Server] = []
    raw: RawHsm | None = None
    began = time.perf_counter()
    try:
        log(f"setting up token, DB ({devices:,} devices) and config in {tmp}")
        setup = [
            sys.executable,
            str(BENCH / "setup_env.py"),
            str(tmp / "env"),
            "--devices",
            str(devices),
        ]
        if schema_dir is not None:
            setup += ["--schema-dir", str(schema_dir)]
        out = subprocess.run(setup, capture_output=True, text=True, cwd=ROOT, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"bench/setup_env.py failed:\n{out.stderr[-3000:]}")
        info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        mkey = serialization.load_pem_private_key(
            Path(info["manufacturer_key"]).read_bytes(), password=None
        )
        assert isinstance(mkey, ec.EllipticCurvePrivateKey)

        signer = start_signer(info, tmp, "main")
        servers.append(signer)
        baseline = start_baseline(info, tmp)
        servers.append(baseline)
        log(
            f"signer serve at {signer.address} (pid {signer.proc.pid}), "
            f"baseline at {baseline.address} (pid {baseline.proc.pid})"
        )

        setup_ch = channel(signer.address)
        stub = pb_grpc.FirmwareSignerStub(setup_ch)
        small = bytes((i * 7 + 3) & 0xFF for i in range(SMALL_MANUFACTURER_IMAGE))
        big = (bytes(range(256)) * (BIG_MANUFACTURER_IMAGE // 256 + 1))[:BIG_MANUFACTURER_IMAGE]
        small_id = verify_delivery(stub, mkey, small)
        big_id = verify_delivery(stub, mkey, big)
        small_req = pb.ResignRequest(image_id=small_id, device_ids=[info["small_device"]])
        big_req = pb.ResignRequest(image_id=big_id, device_ids=[info["small_device"]])
        check = stub.Resign(small_req)
        assert len(check.images) == 1 and not check.refused, check
        assert len(check.images[0].upgrade_image) == OTA_HEADER_LENGTH + len(small) + TAIL_LENGTH
        check = stub.Resign(big_req)
        assert len(check.images[0].upgrade_image) == BIG_UPGRADE_IMAGE
        small_delivery = ota_header(len(small)) + small  # what the baseline signs and echoes
        big_delivery = ota_header(len(big)) + big
        del check

        signer_calls = []
        for _ in range(CLIENTS):
            s = pb_grpc.FirmwareSignerStub(channel(signer.address))
            signer_calls.append(lambda s=s: s.Resign(small_req))
        base_calls = []
        for _ in range(CLIENTS):
            m = channel(baseline.address).unary_unary(
                BASELINE_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
            )
            base_calls.append(lambda m=m: m(small_delivery))
        assert len(base_calls[0]()) == len(small_delivery) + 64
        big_signer = lambda: stub.Resign(big_req)  # noqa: E731
        big_base_m = channel(baseline.address).unary_unary(
            BASELINE_METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b
        )
        big_base = lambda: big_base_m(big_delivery)  # noqa: E731
        assert len(big_base()) == len(big_delivery) + 64

        files = []
        for i in range(pipeline_images):
            f = tmp / f"pipeline-{i:02d}.bin"
            f.write_bytes(small[:-2] + i.to_bytes(2, "big"))
            files.append(f)
        raw = RawHsm(info)

        for _ in range(2):  # 10 MB warm-up: buffers and allocator arenas of both servers
            big_signer()
            big_base()

        r1 = Row(
            f"1 Resign ~300 B, {CLIENTS} clients vs minimal service",
            "calls/s",
            goal_kind="min_ratio",
            goal=0.8,
        )
        r2 = Row(
            f"2 Resign ~300 B, {CLIENTS} clients vs openssl|pkcs11-tool per image",
            "/s",
            goal_kind="min_ratio",
            goal=30,
        )
        r3 = Row(
            "3 Resign 10 MB, one call vs echo+SHA-256+sign", "ms", goal_kind="max_ratio", goal=1.5
        )
        c_cpu = Row("  server CPU per small call, signer vs minimal", "us")
        c_pipe = Row("  minimal service vs openssl|pkcs11-tool", "/s")
        c_raw = Row("  SoftHSM raw sign rate, in-process, 1 thread", "sign/s")
        for run in range(runs):
            log(f"run {run + 1}/{runs}")
            order = ["b", "s"] if run % 2 else ["s", "b"]  # alternate who goes first
            rates: dict[str, tuple[float, float]] = {}
            for who in order:
                rates[who] = throughput(
                    signer_calls if who == "s" else base_calls,
                    window,
                    signer if who == "s" else baseline,
                )
            pipe = pipeline_rate(info, files)
            lat: dict[str, list[float]] = {"s": [], "b": []}
            for _ in range(big_calls):
                for who in order:
                    lat[who].append(latency(big_signer if who == "s" else big_base))
            r1.candidate.append(rates["s"][0])
            r1.baseline.append(rates["b"][0])
            r2.candidate.append(rates["s"][0])
            r2.baseline.append(pipe)
            r3.candidate.append(statistics.median(lat["s"]) * 1000)
            r3.baseline.append(statistics.median(lat["b"]) * 1000)
            c_cpu.candidate.append(rates["s"][1])
            c_cpu.baseline.append(rates["b"][1])
            c_pipe.candidate.append(rates["b"][0])
            c_pipe.baseline.append(pipe)
            c_raw.candidate.append(raw.rate(0.3 if args.quick else 0.5))
        raw.close()
        raw = None
        resign_hwm = signer.vm("VmHWM")
        for s in servers:
            s.stop()
        servers.clear()

        # -- 4: BuildDUIS on a fresh server ----------------------------------------------
        log(f"BuildDUIS 11.1: fresh server, 10 MB image, {devices:,} devices")
        duis_server = start_signer(info, tmp, "duis")
        servers.append(duis_server)
        idle_hwm = duis_server.vm("VmHWM")
        dstub = pb_grpc.FirmwareSignerStub(channel(duis_server.address))
        from setup_env import bulk_device_euis  # bench/ is sys.path[0]

        device_ids = bulk_device_euis(devices)
        by_id = pb.BuildDUISRequest(
            image_id=big_id,
            device_ids=device_ids,
            firmware_version="BENCH",
            service_reference="11.1",
        )
        r4 = Row(
            f"4 BuildDUIS 11.1, 10 MB, {devices:,} devices, image_id path",
            "ms",
            goal_kind="max_abs",
            goal=1000,
        )
        r5 = Row(
            "4 ... server peak RSS (VmHWM) after those calls", "MB", goal_kind="max_abs", goal=400
        )
        c_up = Row("  BuildDUIS, same, upgrade_image path (10 MB sent)", "ms")
        first = 0.0
        upgrade = b""
        for i in range(runs + 1):  # the first call is a warm-up, reported apart
            t = time.perf_counter()
            resp = dstub.BuildDUIS(by_id)
            elapsed = time.perf_counter() - t
            if i == 0:
                assert len(resp.device_ids) == devices and not resp.refused, resp.refused[:3]
                assert len(resp.duis_request) > BIG_UPGRADE_IMAGE * 4 // 3
                first = elapsed
            else:
                r4.candidate.append(elapsed * 1000)
            del resp
        r5.candidate.append(duis_server.vm("VmHWM") / 1e6)
        upgrade = dstub.Resign(big_req).images[0].upgrade_image
        by_image = pb.BuildDUISRequest(
            upgrade_image=upgrade,
            device_ids=device_ids,
            firmware_version="BENCH",
            service_reference="11.1",
        )
        for i in range(runs + 1):
            t = time.perf_counter()
            resp = dstub.BuildDUIS(by_image)
            elapsed = time.perf_counter() - t
            if i == 0:
                assert len(resp.device_ids) == devices and not resp.refused, resp.refused[:3]
            else:
                c_up.candidate.append(elapsed * 1000)
            del resp
        both_hwm = duis_server.vm("VmHWM")
        duis_server.stop()
        servers.clear()

        rows = [r1, r2, r3, r4, r5, c_cpu, c_pipe, c_raw, c_up]
        mode = "QUICK SMOKE RUN (not a measurement)" if args.quick else f"median of {runs} runs"
        print_table(
            rows,
            f"signer benchmark, {mode}; {os.cpu_count()} CPUs, {dt.datetime.now():%Y-%m-%d %H:%M}",
        )
        print("notes:")
        print(
            f"  1/2: {CLIENTS} client threads in one process, each with its own channel "
            f"(own TCP connection), {window:g} s windows, candidate and baseline interleaved;"
            "\n       minimal = bench/baseline_signer.py (proto-less gRPC, SHA-256 + "
            "CKM_ECDSA under one lock, same token, echoes header+image+signature);"
            f"\n       pipeline = `openssl dgst | pkcs11-tool --sign` per image, "
            f"{pipeline_images} images, sequential; server CPU from /proc/<pid>/stat"
        )
        print(
            f"  3:   median of {big_calls} calls per side per run; the minimal service "
            "receives and returns the 10 MB, signer receives an image_id, returns the 10 MB"
        )
        schema = "set" if schema_dir else "NOT set (no validation)"
        print(
            f"  4:   fresh server, schema_dir {schema}"
            f"; first (warm-up) call {first * 1000:,.0f} ms; VmHWM right after start "
            f"{idle_hwm / 1e6:,.0f} MB,\n       after the upgrade_image calls too "
            f"{both_hwm / 1e6:,.0f} MB; (the rows 1-3 server ended at VmHWM "
            f"{resign_hwm / 1e6:,.0f} MB)"
        )
        print("  ratio = median of the per-run ratios; candidate/baseline = medians of the runs")
        per_run(rows)
        log(f"done in {time.perf_counter() - began:,.0f} s")

        if args.profile:
            for case in ("resign", "duis"):
                subprocess.run(
                    [
                        sys.executable,
                        str(BENCH / "profile_service.py"),
                        info["config"],
                        case,
                        "--devices",
                        str(devices),
                    ],
                    cwd=ROOT,
                    env=_env({"SOFTHSM2_CONF": info["softhsm2_conf"]}),
                    check=False,
                )
    finally:
        if raw is not None:
            raw.close()
        for s in servers:
            s.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
