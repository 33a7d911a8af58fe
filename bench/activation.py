"""Activation benchmark (SR 11.3 + CS06): a report, not a test (exits 0 whenever it ran).

    .venv/bin/python bench/activation.py [--runs N] [--quick] [--campaign N] [--keep]
                                         [--devices N] [--max-minutes M] [--profile]

Builds a throwaway SoftHSM2 token, keys with self-issued SMKI certificates and a SQLite DB
(bench/setup_env.py, with ``[duis] schema_dir`` set so every document is schema-validated),
imports a three-entry CPL (BENCH-1 -> BENCH-2 -> BENCH-3, BENCH-3 = the benchmark image),
bulk-inserts devices whose inventory is ESME / hardware 0x0001 / on BENCH-2 (so the pathway
permits the upgrade) and whose Supplier digital-signing cell names the token's Supplier key,
and starts the real ``signer serve``.

1. Activation throughput, the way a Supplier drives it, for ``--devices`` (5,000) devices:
   a. ``StreamActivation`` over gRPC, batches of 1,000: per device the SR 11.3 request built,
      schema-validated and XML-signed (one HSM signature), recorded, streamed back;
   b. ``SignPreCommand`` over gRPC for each of those devices' CS06 pre-commands (laid out by
      hand as the DCC would return them, with that request's counter), 4 client threads: the
      full service path (look-up, every check, CS06 signature in the token, verification,
      SignedPreCommand DUIS request built, validated and XML-signed: two HSM signatures);
   c. the pure ``parse_pre_command`` + ``sign_pre_command`` with the token key via
      python-pkcs11, one thread in this process (what the CS06 signing itself costs).
   The goal row combines a and b: N / (time of a + time of b). The pure variant a + c is
   shown as context. The raw SoftHSM sign rate (python-pkcs11, one thread, this process) is
   measured in every run; "baseline" = the HSM ceiling of each row (raw rate / signatures
   per device), so the ratio says how much of the one-thread HSM rate the pipeline reaches.
2. Peak RSS of a *fresh* server during one ``StreamActivation`` of ``--campaign`` devices
   (default 1,000,000), batches of 1,000 (at most 8 ahead of the results received),
   results counted and dropped as they arrive:
   VmHWM from /proc/<pid>/status right after start and at the end, duration and devices/s.
   If the median stream rate of part 1 says the campaign would take more than
   ``--max-minutes`` (15), the campaign is skipped and the rate printed; while it runs, the
   client stops sending at that limit (the row is then marked partial).

Candidate and baseline alternate inside every run (this machine's speed drifts 20-40 %);
columns are medians of the runs, ratios medians of the per-run ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import hashlib
import json
import os
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asn1crypto.core import OctetString
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, ObjectClass
from run import (  # bench/ is sys.path[0]
    RawHsm,
    Server,
    channel,
    cpu_seconds,
    log,
    print_table,
    start_signer,
    verify_delivery,
)
from setup_env import MANUFACTURER_CODE, SUPPLIER_EUI
from sqlalchemy import insert

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc
from signer.gbcs.precommand import parse_pre_command, sign_pre_command
from signer.gbcs.roles import RemotePartyRole
from signer.gbcs.signature import verify_p256_sha256
from signer.gbcs.trust_anchor import CellUsage, KeyUsage
from signer.registry.db import open_database
from signer.registry.models import Device, TrustAnchorCellRow

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCHEMA_DIR = ROOT.parent / "shared" / "vectors" / "xsd"
GOAL_DEVICES_PER_S = 4000.0
GOAL_RSS_MB = 300.0
BATCH = 1000  # device IDs per StreamActivation message
PRE_CLIENTS = 4  # SignPreCommand client threads, each with its own channel
IN_FLIGHT = 8  # campaign batches sent ahead of the results received
IMAGE = bytes((i * 13 + 5) & 0xFF for i in range(300))  # the Manufacturer Image activated
FILE_VERSION = 2  # run.ota_header's file version: the CPL writes it as 00000002
MODEL = "BENCH-M1"
TARGET_ENTRY = "BENCH-3"
CURRENT_ENTRY = "BENCH-2"
HARDWARE_VERSION = 1


# -- environment --------------------------------------------------------------------------


def activation_eui(i: int) -> str:
    """Devices of the throughput runs (prefix 00-DA), disjoint from setup_env's 00-DB."""
    return f"00-DA-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"


def campaign_eui(i: int) -> str:
    """Devices of the campaign (prefix 00-DC), up to 2**24."""
    return f"00-DC-00-00-00-{i >> 16 & 0xFF:02X}-{i >> 8 & 0xFF:02X}-{i & 0xFF:02X}"


def cpl_csv(image_hash: bytes) -> list[str]:
    head = (
        "entry_id,manufacturer_code,device_type,model,image_type,hardware_version,"
        "firmware_version,image_hash,upgrade_from,zigbee_chipset_vendor,"
        "zigbee_stack_version,band_join_option"
    )
    rows = [
        ("BENCH-1", "00000000", hashlib.sha256(b"BENCH-1").hexdigest(), "N/A"),
        (CURRENT_ENTRY, "00000001", hashlib.sha256(b"BENCH-2").hexdigest(), "BENCH-1"),
        (TARGET_ENTRY, f"{FILE_VERSION:08X}", image_hash.hex(), CURRENT_ENTRY),
    ]
    return [head] + [
        f"{e},{MANUFACTURER_CODE:04X},ESME,{MODEL},0001,{HARDWARE_VERSION:04X},{v},{h},{p},,,"
        for e, v, h, p in rows
    ]


def import_cpl(db_url: str) -> None:
    from signer.cpl.parse import read_csv
    from signer.registry import cpl

    db = open_database(db_url)
    report = cpl.import_entries(
        db, read_csv(cpl_csv(hashlib.sha256(IMAGE).digest())), dt.datetime.now(dt.UTC)
    )
    db.dispose()
    if not report.applied:
        raise RuntimeError(f"CPL import failed: {report.errors}")


def add_inventory_devices(db_url: str, eui_of: Any, n: int, ski_hex: str) -> float:
    """``n`` devices with inventory (ESME, hw 1, on BENCH-2) and a Supplier digital-signing
    management cell naming ``ski_hex``: batched SQLAlchemy Core inserts, generated batch by
    batch (1,000,000 never sit in memory). Returns the seconds it took."""
    t = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    db = open_database(db_url)
    step = 10_000
    with db.engine.begin() as conn:
        for start in range(0, n, step):
            chunk = [eui_of(i).replace("-", "") for i in range(start, min(n, start + step))]
            conn.execute(
                insert(Device.__table__),
                [
                    {
                        "eui": e,
                        "updated_at": now,
                        "device_type": "ESME",
                        "hardware_version": HARDWARE_VERSION,
                        "current_entry_id": CURRENT_ENTRY,
                    }
                    for e in chunk
                ],
            )
            conn.execute(
                insert(TrustAnchorCellRow.__table__),
                [
                    {
                        "device_eui": e,
                        "role": int(RemotePartyRole.SUPPLIER),
                        "key_usage": KeyUsage.DIGITAL_SIGNATURE.value,
                        "cell_usage": int(CellUsage.MANAGEMENT),
                        "subject_eui": SUPPLIER_EUI.hex,
                        "ski": ski_hex,
                    }
                    for e in chunk
                ],
            )
    db.dispose()
    return time.perf_counter() - t


def cs06_pre_command(
    *,
    originator: str,
    recipient: str,
    counter: int,
    firmware_hash: bytes,
    execution_time: str | None = None,
    message_code: int = 0x0012,
    cra_flag: int = 0x01,
) -> bytes:
    """A GBCS CS06 pre-command laid out by hand from spec section 6, as the DCC would send it
    (a copy of tests/independent.py's, so the bench does not import tests/)."""
    content = b"\x04\x20" + firmware_hash
    value = counter.to_bytes((counter.bit_length() + 8) // 8, "big")
    content += bytes([0x02, len(value)]) + value
    if execution_time is not None:
        content += bytes([0x18, len(execution_time)]) + execution_time.encode()
    content = bytes([0x30, len(content)]) + content
    return (
        bytes([0xDF, 0x09, cra_flag])
        + counter.to_bytes(8, "big")
        + b"\x08"
        + bytes.fromhex(originator.replace("-", ""))
        + b"\x08"
        + bytes.fromhex(recipient.replace("-", ""))
        + b"\x00"
        + b"\x02"
        + message_code.to_bytes(2, "big")
        + bytes([len(content)])
        + content
    )


def vm_of(pid: int | str, name: str) -> int:
    """A /proc/<pid>/status figure (VmHWM, VmRSS) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(name)


# -- measurements -------------------------------------------------------------------------


def campaign_messages(
    image_id: str,
    eui_of: Any,
    n: int,
    *,
    stop_at: float = float("inf"),
    sent: dict[str, Any] | None = None,
    window: threading.Semaphore | None = None,
    closed: threading.Event | None = None,
) -> Iterator[pb.ActivationCampaignRequest]:
    """The activation, then batches of BATCH device IDs generated as gRPC asks for them.

    With ``window``, a batch goes out only when the consumer has released a slot (it releases
    one per BATCH results), so at most that many batches are in flight: the client never runs
    ahead of the server, and stopping at ``stop_at`` stops the campaign promptly."""
    yield pb.ActivationCampaignRequest(activation=pb.ActivationSpec(image_id=image_id))
    for start in range(0, n, BATCH):
        while window is not None and not window.acquire(timeout=0.5):
            if closed is not None and closed.is_set():
                return
        if time.perf_counter() >= stop_at:
            if sent is not None:
                sent["capped"] = True
            return
        ids = [eui_of(i) for i in range(start, min(n, start + BATCH))]
        if sent is not None:
            sent["devices"] += len(ids)
        yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=ids))


def stream_activation(
    stub: pb_grpc.FirmwareSignerStub, image_id: str, n: int, ids: list[str] | None = None
) -> tuple[float, list[tuple[str, int]]]:
    """(seconds, [(device, counter)]) of one StreamActivation of the first n devices (or of
    ``ids``)."""
    out: list[tuple[str, int]] = []
    eui_of = activation_eui if ids is None else ids.__getitem__
    t = time.perf_counter()
    results = (
        r for b in stub.StreamActivation(campaign_messages(image_id, eui_of, n)) for r in b.results
    )
    for r in results:
        if r.WhichOneof("result") != "request":
            raise RuntimeError(
                f"device refused: {r.refused.device_id} {r.refused.reason} {r.refused.detail}"
            )
        out.append((r.request.device_id, int(r.request.request_id.rsplit(":", 1)[1])))
    elapsed = time.perf_counter() - t
    if len(out) != n:
        raise RuntimeError(f"{len(out)} results for {n} devices")
    return elapsed, out


def sign_pre_commands(
    stubs: list[pb_grpc.FirmwareSignerStub], pres: list[bytes]
) -> tuple[float, pb.SignPreCommandResponse]:
    """Seconds to get every pre-command signed over gRPC, one thread per stub; and one
    response to check."""
    share = [pres[i :: len(stubs)] for i in range(len(stubs))]
    sample: list[pb.SignPreCommandResponse] = []

    def worker(r: int) -> None:
        for p in share[r]:
            sample.append(stubs[r].SignPreCommand(pb.SignPreCommandRequest(pre_command=p)))
            del sample[:-1]  # one is enough

    return in_parallel(worker, len(stubs)), sample[0]


def stream_sign_pre_commands(stub: pb_grpc.FirmwareSignerStub, pres: list[bytes]) -> float:
    """Seconds to get every pre-command signed through StreamSignPreCommands, in batches."""

    def batches() -> Iterator[pb.PreCommandBatch]:
        for i in range(0, len(pres), BATCH):
            yield pb.PreCommandBatch(pre_commands=pres[i : i + BATCH])

    t = time.perf_counter()
    done = 0
    for message in stub.StreamSignPreCommands(batches()):
        for r in message.results:
            if r.WhichOneof("result") != "signed":
                raise RuntimeError(f"pre-command refused: {r.refused.reason}")
            done += 1
    elapsed = time.perf_counter() - t
    if done != len(pres):
        raise RuntimeError(f"{done} results for {len(pres)} pre-commands")
    return elapsed


def activate_and_sign(
    stubs: list[pb_grpc.FirmwareSignerStub], image_id: str, n: int, digest: bytes
) -> tuple[float, float]:
    """(Ta, Ts) of the whole activation of the first n devices spread over the replicas
    behind ``stubs``: device i goes to replica i mod R; each replica gets one
    StreamActivation at the same time (Ta ends when the last one does), then one
    StreamSignPreCommands of the pre-commands answering its own requests (Ts)."""
    ids = [activation_eui(i) for i in range(n)]
    shares = [ids[r :: len(stubs)] for r in range(len(stubs))]
    built: list[list[tuple[str, int]]] = [[] for _ in stubs]

    def activate(r: int) -> None:
        built[r] = stream_activation(stubs[r], image_id, len(shares[r]), shares[r])[1]

    ta = in_parallel(activate, len(stubs))
    pres = [
        [
            cs06_pre_command(
                originator=str(SUPPLIER_EUI), recipient=d, counter=c, firmware_hash=digest
            )
            for d, c in b
        ]
        for b in built
    ]
    ts = in_parallel(lambda r: stream_sign_pre_commands(stubs[r], pres[r]), len(stubs))
    return ta, ts


def in_parallel(work: Any, n: int) -> float:
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


def pure_sign(raw: RawHsm, pres: list[bytes]) -> float:
    """Seconds for parse_pre_command + sign_pre_command (SHA-256 + CKM_ECDSA in the token
    via python-pkcs11) of every pre-command, one thread."""

    def sign(digest: bytes) -> bytes:
        return bytes(raw.key.sign(digest, mechanism=raw.mechanism))

    t = time.perf_counter()
    for p in pres:
        signed = sign_pre_command(parse_pre_command(p), sign)
    elapsed = time.perf_counter() - t
    assert len(signed) == len(pres[-1]) + 65  # APDU || 0x40 || r||s
    return elapsed


# -- the report ---------------------------------------------------------------------------


@dataclass
class Row:
    """One table row: candidate and baseline per run; goal "min_abs" (candidate >= goal),
    "max_abs" (candidate <= goal) or "" (context)."""

    what: str
    unit: str
    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    goal_kind: str = ""
    goal: float = 0.0
    base_unit: str = ""
    note: str = ""  # replaces the verdict when set (skipped, partial)

    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline, strict=True)]

    def verdict(self) -> str:
        if self.note:
            return self.note
        if not self.candidate or not self.goal_kind:
            return ""
        med = statistics.median(self.candidate)
        ok = med >= self.goal if self.goal_kind == "min_abs" else med <= self.goal
        return "pass" if ok else "FAIL"

    def cells(self) -> list[str]:
        cand = f"{fmt(statistics.median(self.candidate))} {self.unit}" if self.candidate else "-"
        base = (
            f"{fmt(statistics.median(self.baseline))} {self.base_unit or self.unit}"
            if self.baseline
            else "-"
        )
        ratio = f"{statistics.median(self.ratios()):.2f}x" if self.baseline else "-"
        goal = {
            "min_abs": f">= {fmt(self.goal)} {self.unit}",
            "max_abs": f"<= {fmt(self.goal)} {self.unit}",
            "": "(context)",
        }[self.goal_kind]
        return [self.what, cand, base, ratio, goal, self.verdict()]


def fmt(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


def per_run(rows: list[Row]) -> None:
    print("\nper run (candidate / baseline):")
    for r in rows:
        if not r.candidate:
            continue
        pairs = (
            zip(r.candidate, r.baseline, strict=True)
            if r.baseline
            else ((c, None) for c in r.candidate)
        )
        shown = ", ".join(fmt(c) + (f"/{fmt(b)}" if b is not None else "") for c, b in pairs)
        print(f"  {r.what.strip()}: {shown}")


# -- the campaign -------------------------------------------------------------------------


@dataclass
class Campaign:
    requested: int
    sent: int = 0
    requests: int = 0
    refused: int = 0
    seconds: float = 0.0
    first_result_s: float = 0.0
    capped: bool = False
    idle_hwm: int = 0
    end_hwm: int = 0
    client_rss_before: int = 0
    client_rss_max: int = 0
    samples: list[tuple[int, float, int]] = field(default_factory=list)  # done, s, VmRSS


def run_campaign(server: Server, image_id: str, n: int, max_seconds: float) -> Campaign:
    c = Campaign(
        requested=n,
        idle_hwm=vm_of(server.proc.pid, "VmHWM"),
        client_rss_before=vm_of("self", "VmRSS"),
    )
    c.client_rss_max = c.client_rss_before
    stub = pb_grpc.FirmwareSignerStub(channel(server.address))
    sent: dict[str, Any] = {"devices": 0, "capped": False}
    every = max(BATCH, n // 20)
    window = threading.Semaphore(IN_FLIGHT)
    closed = threading.Event()
    t = time.perf_counter()
    done = 0
    try:
        for r in (
            r
            for b in stub.StreamActivation(
                campaign_messages(
                    image_id,
                    campaign_eui,
                    n,
                    stop_at=t + max_seconds,
                    sent=sent,
                    window=window,
                    closed=closed,
                )
            )
            for r in b.results
        ):
            if r.WhichOneof("result") == "request":
                c.requests += 1
            else:
                c.refused += 1
            done += 1
            if done % BATCH == 0:
                window.release()
            if done == 1:
                c.first_result_s = time.perf_counter() - t
            if done % every == 0:
                c.samples.append((done, time.perf_counter() - t, vm_of(server.proc.pid, "VmRSS")))
                c.client_rss_max = max(c.client_rss_max, vm_of("self", "VmRSS"))
    finally:
        closed.set()
    c.seconds = time.perf_counter() - t
    c.end_hwm = vm_of(server.proc.pid, "VmHWM")
    c.client_rss_max = max(c.client_rss_max, vm_of("self", "VmRSS"))
    c.sent, c.capped = sent["devices"], sent["capped"]
    return c


# -- profile (a separate process: cProfile sees only its own main thread) ---------------------


class Phases:
    """Wall time per step of a use case, without a profiler: the worker process replaces the
    functions the use case calls (module attributes, and the token/schema instance methods)
    by timing wrappers. The steps wrapped do not nest, so their times add up."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t
                self.calls[name] = self.calls.get(name, 0) + 1

        self._undo.append((owner, attr, original))
        setattr(owner, attr, timed)

    def undo(self) -> None:
        for owner, attr, original in reversed(self._undo):
            setattr(owner, attr, original)
        self._undo.clear()

    def report(self, title: str, n: int, total: float) -> None:
        print(
            f"\n{title}: {n:,} devices, {total / n * 1e6:,.0f} us each (wall, timing wrappers on)"
        )
        rows = [(sec, name, self.calls[name]) for name, sec in self.seconds.items()]
        accounted = sum(r[0] for r in rows)
        rows.append((total - accounted, "(the rest: loop, dataclasses, generators)", n))
        for own, label, calls in sorted(rows, reverse=True):
            print(
                f"  {own / n * 1e6:8,.1f} us/device  {own / total * 100:5.1f} %  "
                f"{label}  [{calls:,} calls]"
            )


def profile_worker(config: str, image_id: str, devices: int, pre_commands: int) -> None:
    """stream_activations and sign_pre_command_batch in-process, in the main thread: plain
    timing, a per-step breakdown, then cProfile."""
    import signer.registry.activations as reg_activations
    import signer.registry.audit as reg_audit
    import signer.registry.counters as reg_counters
    import signer.service.activation as act
    from signer.config import load_config
    from signer.duis.xmldsig import PendingSignature
    from signer.service.activation import ActivationSpec, BuiltActivation
    from signer.service.services import open_services

    svc = open_services(load_config(Path(config)))
    spec = ActivationSpec(image_id=image_id)
    ids = [activation_eui(i) for i in range(devices)]
    digest = hashlib.sha256(IMAGE).digest()

    def batches() -> Iterator[list[str]]:
        for i in range(0, devices, BATCH):
            yield ids[i : i + BATCH]

    def stream() -> list[tuple[str, int]]:
        return [
            (str(b.device), b.request_id.counter)
            for batch in act.stream_activations(svc, spec, batches())
            for b in batch
            if isinstance(b, BuiltActivation)
        ]

    def sign_all(built: list[tuple[str, int]]) -> None:
        """The StreamSignPreCommands path: sign_pre_command_batch, batches of BATCH."""
        pres = [
            cs06_pre_command(
                originator=str(SUPPLIER_EUI), recipient=dev, counter=counter, firmware_hash=digest
            )
            for dev, counter in built[:pre_commands]
        ]
        for i in range(0, len(pres), BATCH):
            act.sign_pre_command_batch(svc, pres[i : i + BATCH])

    def timed(fn: Any, *a: Any) -> tuple[float, Any]:
        t = time.perf_counter()
        out = fn(*a)
        return time.perf_counter() - t, out

    stream()  # warm-up: caches, graph, schema
    plain, built = timed(stream)
    plain_pre, _ = timed(sign_all, built)
    print(
        f"\nin-process, no profiler: stream_activations {devices / plain:,.0f} devices/s "
        f"({plain / devices * 1e6:,.0f} us/device); sign_pre_command_batch "
        f"{pre_commands / plain_pre:,.0f}/s ({plain_pre / pre_commands * 1e6:,.0f} us each)"
    )

    def wrapped() -> Phases:
        ph = Phases()
        for attr in (
            "parse_devices",
            "select_eligible",
            "verified_image",
            "xml_signing_key",
            "build_activate_firmware",
            "prepare_signature",
            "parse_pre_command",
            "check_pre_command",
            "select_keys",
            "pre_command_digest",
            "signed_pre_command",
            "build_signed_pre_command",
        ):
            ph.wrap(act, attr, attr)
        ph.wrap(PendingSignature, "finish", "PendingSignature.finish (serialise)")
        ph.wrap(reg_counters, "reserve", "counters.reserve")
        ph.wrap(reg_activations, "insert_issued", "activations.insert_issued (INSERT)")
        ph.wrap(reg_activations, "get_many", "activations.get_many (one SELECT per batch)")
        ph.wrap(
            reg_activations,
            "claim_pre_commands",
            "activations.claim_pre_commands (UPDATE + commit)",
        )
        ph.wrap(svc.token, "sign_digests", "HSM sign_digests (one call per key and batch)")
        ph.wrap(reg_audit, "record", "audit.record (one transaction per batch or call)")
        if svc.schema is not None:
            ph.wrap(svc.schema, "validate", "DuisSchema.validate")
        return ph

    ph = wrapped()
    total, built = timed(stream)
    ph.undo()
    ph.report("=== steps of stream_activations", devices, total)
    ph = wrapped()
    total, _ = timed(sign_all, built)
    ph.undo()
    ph.report("=== steps of sign_pre_command_batch", pre_commands, total)

    for title, n in (("stream_activations", devices), ("sign_pre_command_batch", pre_commands)):
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        if title == "stream_activations":
            built = stream()
        else:
            sign_all(built)
        prof.disable()
        wall = time.perf_counter() - t
        print(
            f"\n=== cProfile {title}: {n:,} devices, {wall:,.2f} s under the profiler "
            f"({wall / n * 1e6:,.0f} us each) ==="
        )
        stats = pstats.Stats(prof)
        stats.sort_stats("tottime").print_stats(15)
        stats.sort_stats("cumulative").print_stats(25)
    svc.close()


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 run, 1,000 devices, a 20,000-device campaign",
    )
    ap.add_argument(
        "--campaign",
        type=int,
        default=None,
        help="devices in the streamed campaign (default 1,000,000, --quick 20,000; 0 = skip)",
    )
    ap.add_argument(
        "--devices",
        type=int,
        default=None,
        help="devices per throughput run (default 5,000; --quick 1,000)",
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=15.0,
        help="skip a campaign estimated to take longer, and stop sending at this "
        "limit (default 15)",
    )
    ap.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="signer serve replicas (one database, one token) that share the goal "
        "row's campaign (default 2: one per core of this machine)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, token, DB)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="afterwards, cProfile stream_activations and sign_pre_command_batch "
        "in a separate process",
    )
    ap.add_argument(
        "--profile-worker",
        nargs=4,
        metavar=("CONFIG", "IMAGE_ID", "N", "PRE"),
        help=argparse.SUPPRESS,
    )
    args = ap.parse_args()
    if args.profile_worker:
        config, image_id, n, pre = args.profile_worker
        profile_worker(config, image_id, int(n), int(pre))
        return 0
    runs = 1 if args.quick else max(1, args.runs)
    devices = args.devices or (1_000 if args.quick else 5_000)
    campaign_n = (
        args.campaign if args.campaign is not None else (20_000 if args.quick else 1_000_000)
    )
    schema_dir = SCHEMA_DIR if SCHEMA_DIR.is_dir() else None
    if campaign_n > 1 << 24:
        raise SystemExit("--campaign is limited to 16,777,216 devices")

    tmp = Path(tempfile.mkdtemp(prefix="signer-bench-act-"))
    servers: list[Server] = []
    raw: RawHsm | None = None
    began = time.perf_counter()
    try:
        log(f"setting up token, DB and config in {tmp}")
        setup = [sys.executable, str(BENCH / "setup_env.py"), str(tmp / "env"), "--devices", "0"]
        if schema_dir is not None:
            setup += ["--schema-dir", str(schema_dir)]
        out = subprocess.run(setup, capture_output=True, text=True, cwd=ROOT, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"bench/setup_env.py failed:\n{out.stderr[-3000:]}")
        info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        db_url = f"sqlite:///{Path(info['directory']) / 'signer.db'}"
        import_cpl(db_url)
        insert_s = add_inventory_devices(db_url, activation_eui, devices, info["supplier_ski"])
        log(f"{devices:,} devices with inventory inserted in {insert_s:,.1f} s")
        mkey = serialization.load_pem_private_key(
            Path(info["manufacturer_key"]).read_bytes(), password=None
        )
        assert isinstance(mkey, ec.EllipticCurvePrivateKey)

        # -- 1: throughput --------------------------------------------------------------
        signer = start_signer(info, tmp, "throughput")
        servers.append(signer)
        log(f"signer serve at {signer.address} (pid {signer.proc.pid})")
        stub = pb_grpc.FirmwareSignerStub(channel(signer.address))
        image_id = verify_delivery(stub, mkey, IMAGE)
        digest = hashlib.sha256(IMAGE).digest()
        pre_stubs = [
            pb_grpc.FirmwareSignerStub(channel(signer.address)) for _ in range(PRE_CLIENTS)
        ]
        replicas = [signer] + [
            start_signer(info, tmp, f"replica-{r}") for r in range(1, max(1, args.replicas))
        ]
        servers.extend(replicas[1:])
        replica_stubs = [stub] + [
            pb_grpc.FirmwareSignerStub(channel(r.address)) for r in replicas[1:]
        ]
        raw = RawHsm(info)
        supplier_public = _ec_public(
            raw.session.get_key(
                object_class=ObjectClass.PUBLIC_KEY, label=info["supplier_key_label"]
            )
        )

        def pre_commands(built: list[tuple[str, int]]) -> list[bytes]:
            return [
                cs06_pre_command(
                    originator=str(SUPPLIER_EUI), recipient=d, counter=c, firmware_hash=digest
                )
                for d, c in built
            ]

        # warm-up: connections, caches (image, CPL graph, certificate verdict), schema
        _, warm = stream_activation(stub, image_id, min(devices, 2 * BATCH))
        sign_pre_commands(pre_stubs, pre_commands(warm[: 4 * PRE_CLIENTS]))
        activate_and_sign(replica_stubs, image_id, min(devices, 2 * BATCH * len(replicas)), digest)

        r_goal = Row(
            f"1 activation, {len(replicas)} replicas: StreamActivation 11.3 + "
            "StreamSignPreCommands, N/(Ta+Ts)",
            "dev/s",
            goal_kind="min_abs",
            goal=GOAL_DEVICES_PER_S,
            base_unit="dev/s",
        )
        r_one = Row("  same, one replica (one server process)", "dev/s", base_unit="dev/s")
        r_cpu_all = Row(
            f"  server CPU per device, {len(replicas)} replicas, whole activation", "us"
        )
        r_unary = Row(
            "  same with one SignPreCommand call per device, N/(Ta+Tp)", "dev/s", base_unit="dev/s"
        )
        r_s = Row(f"  s StreamSignPreCommands over gRPC, batches {BATCH:,}", "/s")
        r_pure = Row(
            "  same with CS06 = pure sign_pre_command, N/(Ta+Tc)", "dev/s", base_unit="dev/s"
        )
        r_a = Row(f"  a StreamActivation over gRPC, {devices:,} dev, batches {BATCH:,}", "dev/s")
        r_b = Row(f"  b SignPreCommand over gRPC, {PRE_CLIENTS} clients", "calls/s")
        r_c = Row("  c pure parse+sign_pre_command, token, 1 thread", "/s")
        r_raw = Row("  SoftHSM raw sign rate, python-pkcs11, 1 thread", "sign/s")
        r_cpu_a = Row("  server CPU per device, a (StreamActivation)", "us")
        r_cpu_b = Row("  server CPU per call, b (SignPreCommand)", "us")
        r_me_a = Row("  bench (client) CPU per device, a", "us")
        r_me_b = Row("  bench (client) CPU per call, b", "us")
        for run in range(runs):
            log(f"run {run + 1}/{runs}: {devices:,} devices")
            raws: list[float] = []
            if run % 2 == 0:
                raws.append(raw.rate(0.5))
            cpu0, me0 = cpu_seconds(signer.proc.pid), time.process_time()
            ta, built = stream_activation(stub, image_id, devices)
            cpu_a = cpu_seconds(signer.proc.pid) - cpu0
            me_a = time.process_time() - me0
            pres = pre_commands(built)
            if run % 2:
                tc = pure_sign(raw, pres)
                raws.append(raw.rate(0.5))
            cpu0, me0 = cpu_seconds(signer.proc.pid), time.process_time()
            tp, sample = sign_pre_commands(pre_stubs, pres)
            cpu_b = cpu_seconds(signer.proc.pid) - cpu0
            me_b = time.process_time() - me0
            if run % 2 == 0:
                tc = pure_sign(raw, pres)
            if run == 0:  # the signed pre-command is APDU || 0x40 || r||s, verifiable
                cmd = sample.signed_pre_command
                verify_p256_sha256(supplier_public, cmd[1:-65], cmd[-64:])
                assert (
                    sample.duis_request.startswith(b"<?xml")
                    and b"SignedPreCommand" in sample.duis_request
                )
            rate = statistics.median(raws)
            r_raw.candidate.append(rate)
            r_a.candidate.append(devices / ta)
            r_a.baseline.append(rate)  # ceiling: 1 signature per device
            r_b.candidate.append(devices / tp)
            r_b.baseline.append(rate / 2)  # CS06 + SignedPreCommand XML signature
            r_c.candidate.append(devices / tc)
            r_c.baseline.append(rate)
            ta2, ts = activate_and_sign([stub], image_id, devices, digest)
            r_s.candidate.append(devices / ts)
            r_s.baseline.append(rate / 2)
            r_one.candidate.append(devices / (ta2 + ts))
            r_one.baseline.append(rate / 3)
            cpu0 = sum(cpu_seconds(r.proc.pid) for r in replicas)
            ta3, ts3 = activate_and_sign(replica_stubs, image_id, devices, digest)
            r_cpu_all.candidate.append(
                (sum(cpu_seconds(r.proc.pid) for r in replicas) - cpu0) / devices * 1e6
            )
            r_goal.candidate.append(devices / (ta3 + ts3))
            r_goal.baseline.append(rate / 3)
            r_unary.candidate.append(devices / (ta + tp))
            r_unary.baseline.append(rate / 3)
            r_pure.candidate.append(devices / (ta + tc))
            r_pure.baseline.append(rate / 2)
            r_cpu_a.candidate.append(cpu_a / devices * 1e6)
            r_cpu_b.candidate.append(cpu_b / devices * 1e6)
            r_me_a.candidate.append(me_a / devices * 1e6)
            r_me_b.candidate.append(me_b / devices * 1e6)
            log(
                f"  goal {devices / (ta3 + ts3):,.0f} dev/s ({len(replicas)} replicas), "
                f"one replica {devices / (ta2 + ts):,.0f} dev/s; stream {devices / ta:,.0f} "
                f"dev/s, SignPreCommand {devices / tp:,.0f}/s, pure {devices / tc:,.0f}/s, "
                f"raw {rate:,.0f} sign/s"
            )
        raw.close()
        raw = None
        throughput_hwm = vm_of(signer.proc.pid, "VmHWM")
        for r in replicas:
            r.stop()
        servers.clear()

        # -- 2: campaign on a fresh server ------------------------------------------------
        r_rss = Row(
            f"2 campaign {campaign_n:,} dev: server peak RSS (VmHWM)",
            "MB",
            goal_kind="max_abs",
            goal=GOAL_RSS_MB,
        )
        r_idle = Row("  server VmHWM right after start", "MB")
        r_rate = Row("  campaign rate (one StreamActivation)", "dev/s")
        r_dur = Row("  campaign duration", "s")
        stream_rate = statistics.median(r_a.candidate)
        estimate = campaign_n / stream_rate if campaign_n else 0.0
        fits_10 = int(stream_rate * 600) // BATCH * BATCH
        camp: Campaign | None = None
        insert_campaign_s = 0.0
        if campaign_n <= 0:
            r_rss.note = "skipped (--campaign 0)"
        elif estimate > args.max_minutes * 60:
            r_rss.note = f"SKIPPED: est. {estimate / 60:,.0f} min"
            log(
                f"campaign of {campaign_n:,} devices skipped: at {stream_rate:,.0f} devices/s "
                f"it would take about {estimate / 60:,.1f} min (> {args.max_minutes:g}); "
                f"about {fits_10:,} fit in 10 min (--campaign {fits_10})"
            )
        else:
            log(f"inserting {campaign_n:,} campaign devices")
            insert_campaign_s = add_inventory_devices(
                db_url, campaign_eui, campaign_n, info["supplier_ski"]
            )
            log(
                f"  inserted in {insert_campaign_s:,.0f} s; campaign: fresh server, "
                f"est. {estimate / 60:,.1f} min at {stream_rate:,.0f} dev/s"
            )
            fresh = start_signer(info, tmp, "campaign")
            servers.append(fresh)
            camp = run_campaign(fresh, image_id, campaign_n, args.max_minutes * 60)
            fresh.stop()
            servers.clear()
            done = camp.requests + camp.refused
            if camp.refused or done != camp.sent:
                raise RuntimeError(
                    f"campaign: {camp.requests:,} requests, {camp.refused:,} "
                    f"refused, {camp.sent:,} sent"
                )
            r_rss.candidate.append(camp.end_hwm / 1e6)
            r_idle.candidate.append(camp.idle_hwm / 1e6)
            r_rate.candidate.append(done / camp.seconds)
            r_dur.candidate.append(camp.seconds)
            if camp.capped:
                r_rss.note = f"PARTIAL {done:,}"

        rows = [
            r_goal,
            r_one,
            r_unary,
            r_pure,
            r_a,
            r_s,
            r_b,
            r_c,
            r_raw,
            r_cpu_all,
            r_cpu_a,
            r_cpu_b,
            r_me_a,
            r_me_b,
            r_rss,
            r_idle,
            r_rate,
            r_dur,
        ]
        mode = "QUICK SMOKE RUN (not a measurement)" if args.quick else f"median of {runs} runs"
        print_table(
            rows,
            f"activation benchmark, {mode}; {os.cpu_count()} CPUs, "
            f"{dt.datetime.now():%Y-%m-%d %H:%M}",
        )
        schema = "set (every document validated)" if schema_dir else "NOT set (no validation)"
        print("notes:")
        print(
            f"  schema_dir {schema}; CPL strict; devices: ESME, hw 0x0001, on {CURRENT_ENTRY},"
            f" target {TARGET_ENTRY}; one Supplier key on the token for all devices"
        )
        print(
            f"  1: goal row: {len(replicas)} replicas of signer serve (one database, one "
            "token, one process each), the N devices dealt round-robin; one StreamActivation"
            "\n     per replica at the same time (Ta: until the last ends), then one "
            "StreamSignPreCommands per replica of its own requests' pre-commands, batches"
            "\n     of 1,000 (Ts); rate N/(Ta+Ts). 'one replica': the same against the first "
            "server alone. Context rows a, b, c load the first server alone:\n     a "
            "StreamActivation of N devices (Ta), SignPreCommand for each of them from "
            f"{PRE_CLIENTS} client threads with a channel each (Tp), the pure CS06\n     "
            "signing in this process (Tc). Baseline = the one-thread HSM ceiling: raw rate /"
            " HSM signatures per device (a: 1, b: 2, c: 1, goal\n     rows: 3, pure row: 2). "
            "CPU from /proc/<pid>/stat (servers) and process_time (this client, which shares "
            "the 2 cores with the servers)."
        )
        if camp is not None:
            done = camp.requests + camp.refused
            print(
                f"  2: {done:,} of {campaign_n:,} devices activated in {camp.seconds:,.0f} s "
                f"({done / camp.seconds:,.0f} dev/s; first result after "
                f"{camp.first_result_s * 1000:,.0f} ms); inserting them took "
                f"{insert_campaign_s:,.0f} s;"
                + (f" STOPPED SENDING at {args.max_minutes:g} min" if camp.capped else "")
            )
            trail = ", ".join(f"{d // 1000:,}k:{rss / 1e6:,.0f}" for d, _, rss in camp.samples)
            print(f"     server VmRSS (MB) along the way: {trail}")
            print(
                f"     client VmRSS {camp.client_rss_before / 1e6:,.0f} MB before, "
                f"max {camp.client_rss_max / 1e6:,.0f} MB during (results counted, not kept)"
            )
        else:
            print(
                f"  2: {r_rss.note or 'skipped'}: the stream rate was "
                f"{stream_rate:,.0f} dev/s (median of part 1); {campaign_n:,} devices "
                "would take "
                f"~{estimate / 60:,.1f} min; ~{fits_10:,} fit in 10 min"
            )
        print(
            f"  the throughput server ended at VmHWM {throughput_hwm / 1e6:,.0f} MB; "
            f"bench process max RSS "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:,.0f} MB"
        )
        per_run(rows)
        log(f"done in {time.perf_counter() - began:,.0f} s")

        if args.profile:
            subprocess.run(
                [
                    sys.executable,
                    str(Path(__file__).resolve()),
                    "--profile-worker",
                    info["config"],
                    image_id,
                    str(devices),
                    str(devices),
                ],
                cwd=ROOT,
                check=False,
                env={**os.environ, "SOFTHSM2_CONF": info["softhsm2_conf"]},
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


def _ec_public(obj: Any) -> ec.EllipticCurvePublicKey:
    """The public key of a PKCS#11 EC public-key object (EC_POINT, maybe DER-wrapped)."""
    point = bytes(obj[Attribute.EC_POINT])
    if point[:1] == b"\x04" and len(point) != 65:
        point = OctetString.load(point).native
    return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)


if __name__ == "__main__":
    sys.exit(main())
