"""What every benchmark sets up: a throwaway environment, the real servers, clients, timers.

The environment is made by ``bench/setup_env.py`` in a process of its own (the driver must not
have the PKCS#11 module loaded while the token is built) and described by one JSON line, read
here as an :class:`Env`. A :class:`Harness` owns the temp dir and everything started in it, and
stops and removes them at the end whatever happens (or keeps the dir with ``--keep``).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias, cast

import grpc
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.gbcs.ota import OtaHeader
from signer.limits import CHANNEL_OPTIONS

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCHEMA_DIR = ROOT.parent / "shared" / "vectors" / "xsd"
MANUFACTURER_CODE = 0x121D
OTA_HEADER_LENGTH = 56
TAIL_LENGTH = 66  # the upgrade image's signature tail


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def schema_dir() -> Path | None:
    """The DUIS schema of ../shared/vectors when present: production validates, so do we."""
    return SCHEMA_DIR if SCHEMA_DIR.is_dir() else None


# -- command line -------------------------------------------------------------------------


def arguments(doc: str, *, quick: str, keep: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: --runs, --quick, --keep (with its own help)."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument("--quick", action="store_true", help=quick)
    ap.add_argument("--keep", action="store_true", help=keep)
    return ap


def runs_of(args: argparse.Namespace) -> int:
    return 1 if args.quick else max(1, int(args.runs))


# -- the environment ----------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """What bench/setup_env.py made: token, keys, database and the config naming them."""

    directory: Path
    config: str
    softhsm2_conf: str
    module: str
    token_label: str
    pin_file: str
    supplier_key_label: str
    supplier_key_id: str
    supplier_ski: str
    manufacturer_key: str
    db_url: str
    small_device: str

    @classmethod
    def from_json(cls, line: str) -> Env:
        data: dict[str, Any] = json.loads(line)
        data["directory"] = Path(data["directory"])
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})

    def pin(self) -> str:
        return Path(self.pin_file).read_text().strip()

    def manufacturer(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(
            Path(self.manufacturer_key).read_bytes(), password=None
        )
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def process_env(self) -> dict[str, str]:
        return child_env({"SOFTHSM2_CONF": self.softhsm2_conf})


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without SIGNER_* overrides, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNER_")}
    env.update(extra)
    return env


def provision(directory: Path, devices: int, db_url: str | None = None) -> Env:
    """Run bench/setup_env.py: a fresh token, keys, ``devices`` bulk devices, a config."""
    cmd = [sys.executable, str(BENCH / "setup_env.py"), str(directory), "--devices", str(devices)]
    if (schema := schema_dir()) is not None:
        cmd += ["--schema-dir", str(schema)]
    if db_url is not None:
        cmd += ["--db-url", db_url]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"bench/setup_env.py failed:\n{out.stderr[-3000:]}")
    return Env.from_json(out.stdout.strip().splitlines()[-1])


# -- processes ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def vm_of(pid: int | str, name: str) -> int:
    """A /proc/<pid>/status figure (VmHWM, VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


@dataclass
class Server:
    """A service subprocess that announced ``READY host:port``."""

    name: str
    proc: subprocess.Popen[str]
    address: str
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def vm(self, field_name: str) -> int:
        return vm_of(self.pid, field_name)

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start(name: str, cmd: list[str], env: dict[str, str], log_file: Path) -> Server:
    out = log_file.open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=out, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    while line.startswith("METRICS "):  # the metrics endpoint is announced first
        line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise RuntimeError(f"{name} did not start: {line!r}\n{log_file.read_text()[-3000:]}")
    return Server(name, proc, line.split()[1], log_file)


class Harness:
    """The temp dir of one benchmark and what runs in it, cleaned up on exit (LIFO)."""

    def __init__(self, prefix: str, *, keep: bool) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.keep = keep
        self.began = time.perf_counter()
        self._stack = contextlib.ExitStack()
        self._stack.callback(self._remove)

    def __enter__(self) -> Harness:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()

    def _remove(self) -> None:
        if self.keep:
            log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def on_exit(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` at the end, before whatever was registered earlier."""
        self._stack.callback(fn)

    def done(self) -> None:
        log(f"done in {time.perf_counter() - self.began:,.0f} s")

    def provision(self, devices: int, db_url: str | None = None) -> Env:
        return provision(self.tmp / "env", devices, db_url)

    def start_signer(self, env: Env, tag: str) -> Server:
        """The real ``signer serve`` on the environment's config."""
        server = start(
            "signer serve",
            [sys.executable, "-m", "signer.cli.main", "serve", "--config", env.config],
            env.process_env(),
            self.tmp / f"signer-{tag}.log",
        )
        self.on_exit(server.stop)
        return server

    def start_baseline(self, env: Env) -> Server:
        """bench/baseline_signer.py: the minimal signing service, same token and key."""
        cmd = [sys.executable, str(BENCH / "baseline_signer.py"), "--module", env.module]
        cmd += ["--token-label", env.token_label, "--pin-file", env.pin_file]
        cmd += ["--key-label", env.supplier_key_label]
        server = start("baseline", cmd, env.process_env(), self.tmp / "baseline.log")
        self.on_exit(server.stop)
        return server

    def raw_hsm(self, env: Env) -> RawHsm:
        raw = RawHsm(env)
        self.on_exit(raw.close)
        return raw


# -- clients ------------------------------------------------------------------------------


def channel(address: str) -> grpc.Channel:
    # A local subchannel pool gives each channel its own TCP connection.
    return grpc.insecure_channel(
        address, options=[*CHANNEL_OPTIONS, ("grpc.use_local_subchannel_pool", 1)]
    )


Stub: TypeAlias = pb_grpc.FirmwareSignerStub


def stub(address: str) -> Stub:
    """A signer client over a channel (and TCP connection) of its own."""
    client: Stub = Stub(channel(address))
    return client


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


def verify_delivery(client: Stub, key: ec.EllipticCurvePrivateKey, image: bytes) -> str:
    """Deliver ``image`` signed by the manufacturer; the image_id the server verified."""
    header = ota_header(len(image))
    verdict = client.VerifyManufacturer(
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


# -- timing -------------------------------------------------------------------------------


def latency(call: Callable[[], object]) -> float:
    t = time.perf_counter()
    call()
    return time.perf_counter() - t


def window_calls(calls: Sequence[Callable[[], object]], seconds: float) -> tuple[int, float]:
    """(calls made, seconds) with one thread per callable, all released together, each
    calling until ``seconds`` have passed; the seconds run until the last call ended."""
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
    t0[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return sum(counts), max(ends) - t0[0]


def in_parallel(work: Callable[[int], object], n: int) -> float:
    """Seconds until work(0) .. work(n - 1), one thread each, have all returned."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(n + 1)

    def run(r: int) -> None:
        barrier.wait()
        try:
            work(r)
        except BaseException as exc:  # reported by the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in range(n)]
    for th in threads:
        th.start()
    t = time.perf_counter()
    barrier.wait()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t
    if errors:
        raise RuntimeError(f"a client thread failed: {errors[0]}") from errors[0]
    return elapsed


# -- the HSM itself -----------------------------------------------------------------------


class RawHsm:
    """SoftHSM via python-pkcs11 in this process: the ceiling any service can reach."""

    def __init__(self, env: Env) -> None:
        import pkcs11
        from pkcs11 import KeyType, Mechanism, ObjectClass
        from pkcs11.types import SignMixin

        os.environ["SOFTHSM2_CONF"] = env.softhsm2_conf
        lib = pkcs11.lib(env.module)
        self.session = lib.get_token(token_label=env.token_label).open(user_pin=env.pin())
        self.key = cast(
            SignMixin,
            self.session.get_key(
                object_class=ObjectClass.PRIVATE_KEY,
                key_type=KeyType.EC,
                label=env.supplier_key_label,
            ),
        )
        self.mechanism = Mechanism.ECDSA
        self._open = True

    def sign(self, digest: bytes) -> bytes:
        """CKM_ECDSA over a digest: the raw r||s."""
        return bytes(self.key.sign(digest, mechanism=self.mechanism))

    def rate(self, seconds: float) -> float:
        """Signatures/s, one thread, for about ``seconds``."""
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
        if self._open:
            self._open = False
            self.session.close()
