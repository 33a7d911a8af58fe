"""Replicas on PostgreSQL: a report, not a test (exits 0 whenever it ran).

    .venv/bin/python bench/replicas.py [--runs N] [--quick] [--keep] [--devices N]
                                       [--clients K] [--window S]

The environment of bench/activation.py (SoftHSM2 token, Supplier and XML-signing keys with
self-issued SMKI certificates, manufacturer key, the three-entry strict CPL, devices with
inventory on BENCH-2 whose Supplier cell names the token key, ``[duis] schema_dir`` set so
every document is schema-validated, the audit trail on as always), but the database is a
throwaway PostgreSQL cluster (tests/support/postgres.py: Debian's binaries, Unix socket only).
Two real ``signer serve`` processes share that database and the token; each measurement
loads either the first alone (1 replica) or both (2 replicas), in alternating order inside
every run (this machine's speed drifts 20-40 %: only same-run ratios mean anything).

1. The activation path, as activation.py's goal row: ``--devices`` (5,000) devices dealt
   round-robin over the replicas, one StreamActivation 11.3 per replica at the same time (Ta),
   then one StreamSignPreCommands of its own requests' CS06 pre-commands per replica (Ts);
   devices/s = N / (Ta + Ts). Goal: 2 replicas >= 1.8x one.
2. BuildDUIS SR 11.1 by image_id, the ~300 B image, 10 devices per call, ``--clients`` (8)
   client threads with a channel each, thread i on replica i mod R; calls/s over a window.
   Goal: 2 replicas >= 1.8x one.
3. The raw SoftHSM sign rate (python-pkcs11, one thread, this process), measured in every run;
   each row's one-thread HSM ceiling = raw / HSM signatures per device (3) or per call (2).

Context: server CPU per device / call summed over the replicas, PostgreSQL's CPU (the
postmaster's own and reaped children's time plus its live backends', from /proc), this
client's CPU, the whole machine's busy cores (/proc/stat), the 2-core bound that CPU implies,
and (in the notes) what PostgreSQL's active backends were waiting on, sampled from
pg_stat_activity every 20 ms.
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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from activation import (  # bench/ is sys.path[0]
    BATCH,
    IMAGE,
    activate_and_sign,
    activation_eui,
    add_inventory_devices,
    import_cpl,
    vm_of,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from run import (
    RawHsm,
    Row,
    Server,
    channel,
    cpu_seconds,
    log,
    per_run,
    print_table,
    start_signer,
    verify_delivery,
)

from signer.api._proto.signer.v1 import signer_pb2 as pb
from signer.api._proto.signer.v1 import signer_pb2_grpc as pb_grpc

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # tests.support.postgres; bench/ stays sys.path[0]
from tests.support.postgres import Cluster, libpq_of, start_cluster  # noqa: E402

SCHEMA_DIR = ROOT.parent / "shared" / "vectors" / "xsd"
GOAL_RATIO = 1.8
DUIS_DEVICES = 10  # devices per BuildDUIS call
DUIS_GROUPS = 100  # distinct 10-device lists the clients cycle through
SIGS_ACTIVATION = 3  # 11.3 XML signature, CS06 signature, SignedPreCommand XML signature
SIGS_DUIS = 2  # the image's ARP signature, the 11.1 XML signature
SAMPLE_EVERY = 0.02  # pg_stat_activity sampling period, seconds
CLK = os.sysconf("SC_CLK_TCK")


# -- environment --------------------------------------------------------------------------


def setup_worker(directory: str, db_url: str, schema_dir: str) -> None:
    """bench/setup_env.py's main on a given database URL, run as its own process (the
    driver must not have the PKCS#11 module loaded while the token is built); prints the
    same JSON line. No bulk devices: the benchmark inserts its own, with inventory."""
    import setup_env as se

    from signer.config import load_config
    from signer.registry import manufacturers
    from signer.service.services import open_services
    from signer.smki.lifecycle import KeyPurpose

    d = Path(directory).resolve()
    d.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)
    conf, pin_file = se.init_token(d)
    config = se.write_config(d, conf, pin_file, db_url, Path(schema_dir) if schema_dir else None)
    svc = open_services(load_config(config))
    try:
        supplier = se.token_key(svc, se.SUPPLIER_KEY_LABEL, KeyPurpose.SUPPLIER_DS, now)
        se.token_key(svc, se.XML_KEY_LABEL, KeyPurpose.XML_SIGN, now)
        mkey, mcert = se.manufacturer(d, now)
        manufacturers.add_certificate(svc.db, se.MANUFACTURER_CODE, mcert, now)
    finally:
        svc.close()
    assert supplier.ski is not None
    json.dump(
        {
            "directory": str(d),
            "config": str(config),
            "softhsm2_conf": str(conf),
            "module": se.MODULE,
            "token_label": se.TOKEN_LABEL,
            "pin_file": str(pin_file),
            "supplier_key_label": se.SUPPLIER_KEY_LABEL,
            "supplier_key_id": supplier.key_id.hex(),
            "supplier_ski": supplier.ski.hex(),
            "manufacturer_key": str(mkey),
            "manufacturer_code": se.MANUFACTURER_CODE,
            "db_url": db_url,
        },
        sys.stdout,
    )
    sys.stdout.write("\n")


def analyze(db_url: str) -> float:
    """ANALYZE the database the devices were just bulk-inserted into; returns the seconds.

    Autovacuum would do it within a minute or so; until then the planner has no statistics
    for devices / trust_anchor_cells and picks a nested loop over every Supplier cell for
    the device look-up (11 ms per 10-device BuildDUIS call at 5,000 devices, instead of
    0.1 ms), so the measurement would depend on when autovacuum came round."""
    import psycopg

    t = time.perf_counter()
    with psycopg.connect(libpq_of(db_url), autocommit=True) as conn:
        conn.execute("ANALYZE")
    return time.perf_counter() - t


# -- CPU accounting -----------------------------------------------------------------------


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def postgres_cpu(cluster: Cluster) -> float:
    """CPU seconds of the whole PostgreSQL server: the postmaster's own time and that of its
    reaped children (cutime/cstime: backends that have exited), plus its live children's."""
    pm = int((cluster.data / "postmaster.pid").read_text().split()[0])
    f = _stat(pm)
    ticks = sum(int(x) for x in f[11:15])
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            f = _stat(entry.name)
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(f[1]) == pm:
            ticks += int(f[11]) + int(f[12])
    return ticks / CLK


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine so far (every core, every process)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLK


@dataclass
class Usage:
    wall: float = 0.0
    servers: float = 0.0
    postgres: float = 0.0
    client: float = 0.0
    machine: float = 0.0


class Meter:
    """CPU of the servers (summed), PostgreSQL, this client and the machine over a window."""

    def __init__(self, servers: list[Server], cluster: Cluster, sampler: WaitSampler) -> None:
        self.servers, self.cluster, self.sampler = servers, cluster, sampler

    def _now(self) -> Usage:
        return Usage(
            time.perf_counter(),
            sum(cpu_seconds(s.proc.pid) for s in self.servers),
            postgres_cpu(self.cluster),
            time.process_time(),
            machine_busy(),
        )

    def measure(self, label: str, work: Callable[[], Any]) -> tuple[Any, Usage]:
        """work()'s result and the CPU it took; the wait sampler files its samples under
        ``label`` meanwhile."""
        a = self._now()
        out = self.sampler.during(label, work)
        b = self._now()
        return out, Usage(*(getattr(b, k) - getattr(a, k) for k in Usage.__dataclass_fields__))


class WaitSampler:
    """What PostgreSQL's client backends are doing, sampled every SAMPLE_EVERY s from
    pg_stat_activity while a label is set: per label the samples, the backends in a
    statement or a transaction, (state or wait event, statement) counts, and how often the
    audit trail's head row was held (a backend inside the audit append, not itself waiting
    for a lock) and by a holder that was waiting on its client (idle in transaction)."""

    QUERY = (
        "SELECT state, coalesce(wait_event_type, ''), coalesce(wait_event, ''), "
        "left(regexp_replace(query, '\\s+', ' ', 'g'), 48) FROM pg_stat_activity "
        "WHERE state IN ('active', 'idle in transaction') "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    AUDIT = ("UPDATE audit_head", "INSERT INTO audit_records")

    def __init__(self, libpq: str) -> None:
        import psycopg

        self.conn = psycopg.connect(libpq, autocommit=True)
        self.label: str | None = None
        self.samples: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()
        self.held: Counter[str] = Counter()
        self.held_idle: Counter[str] = Counter()
        self.what: dict[str, Counter[tuple[str, str]]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY):
            label = self.label
            if label is None:
                continue
            rows = self.conn.execute(self.QUERY).fetchall()
            self.samples[label] += 1
            self.busy[label] += len(rows)
            what = self.what.setdefault(label, Counter())
            holders = []
            for state, kind, event, query in rows:
                doing = (
                    f"Lock:{event}"
                    if kind == "Lock"
                    else "idle in tx"
                    if state != "active"
                    else "running"
                    if not kind
                    else f"{kind}:{event}"
                )
                what[(doing, query)] += 1
                if query.startswith(self.AUDIT) and kind != "Lock":
                    holders.append(state)
            if holders:
                self.held[label] += 1
                if all(h != "active" for h in holders):
                    self.held_idle[label] += 1

    def during(self, label: str, work: Callable[[], Any]) -> Any:
        self.label = label
        try:
            return work()
        finally:
            self.label = None

    def report(self, label: str, top: int = 4) -> str:
        n = self.samples[label]
        if not n:
            return f"{label}: no samples"
        what = self.what.get(label, Counter())
        head = sum(
            c
            for (d, q), c in what.items()
            if d.startswith("Lock:") and q.startswith("UPDATE audit_head")
        )
        parts = [f"{d} {q!r} {c / n:.2f}" for (d, q), c in what.most_common(top)]
        return (
            f"{label} ({n} samples): audit head held {self.held[label] / n:.0%} of the "
            f"time (by a holder idle in transaction {self.held_idle[label] / n:.0%}), "
            f"{head / n:.2f} backends waiting for it; {self.busy[label] / n:.2f} "
            "backends busy:\n        " + "; ".join(parts)
        )

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.conn.close()


# -- measurements -------------------------------------------------------------------------


def duis_rate(
    stubs: list[pb_grpc.FirmwareSignerStub], requests: list[pb.BuildDUISRequest], seconds: float
) -> float:
    """BuildDUIS calls/s: one thread per stub (each its own channel), cycling through the
    requests from its own offset, for ``seconds``."""
    counts = [0] * len(stubs)
    ends = [0.0] * len(stubs)
    t0 = [0.0]
    ready = threading.Barrier(len(stubs) + 1)

    def worker(i: int) -> None:
        ready.wait()
        deadline = t0[0] + seconds
        n, k = 0, i * len(requests) // len(stubs)
        while True:
            stubs[i].BuildDUIS(requests[k % len(requests)])
            n, k = n + 1, k + 1
            now = time.perf_counter()
            if now >= deadline:
                break
        counts[i], ends[i] = n, now

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stubs))]
    for th in threads:
        th.start()
    t0[0] = time.perf_counter()
    ready.wait()
    for th in threads:
        th.join()
    return sum(counts) / (max(ends) - t0[0])


@dataclass
class Side:
    """The rows of one workload (activation or BuildDUIS), 2 replicas vs 1."""

    goal: Row
    hsm1: Row
    hsm2: Row
    server: Row
    postgres: Row
    client: Row
    busy: Row
    cores: Row
    other: Row
    bound: Row
    usage: dict[int, list[Usage]] = field(default_factory=lambda: {1: [], 2: []})

    def add(
        self, rate: dict[int, float], use: dict[int, Usage], units: dict[int, int], ceiling: float
    ) -> None:
        self.goal.candidate.append(rate[2])
        self.goal.baseline.append(rate[1])
        self.hsm1.candidate.append(rate[1])
        self.hsm1.baseline.append(ceiling)
        self.hsm2.candidate.append(rate[2])
        self.hsm2.baseline.append(ceiling)
        per = {r: 1e6 / units[r] for r in (1, 2)}
        self.server.candidate.append(use[2].servers * per[2])
        self.server.baseline.append(use[1].servers * per[1])
        self.postgres.candidate.append(use[2].postgres * per[2])
        self.postgres.baseline.append(use[1].postgres * per[1])
        self.client.candidate.append(use[2].client * per[2])
        self.client.baseline.append(use[1].client * per[1])
        self.busy.candidate.append(use[2].machine / use[2].wall)
        self.busy.baseline.append(use[1].machine / use[1].wall)
        self.cores.candidate.append(use[2].servers / use[2].wall)
        self.cores.baseline.append(use[1].servers / use[1].wall)
        # floored: /proc/stat and the per-process figures are sampled a moment apart
        for r, row in ((2, self.other.candidate), (1, self.other.baseline)):
            row.append(
                max(
                    0.01,
                    (use[r].machine - use[r].servers - use[r].postgres - use[r].client)
                    / use[r].wall,
                )
            )
        total = use[2].servers + use[2].postgres + use[2].client  # CPU-s for units[2]
        self.bound.candidate.append(2.0 * units[2] / total)
        self.bound.baseline.append(rate[1])
        for r in (1, 2):
            self.usage[r].append(use[r])

    def rows(self) -> list[Row]:
        return [
            self.goal,
            self.hsm1,
            self.hsm2,
            self.server,
            self.postgres,
            self.client,
            self.cores,
            self.busy,
            self.other,
            self.bound,
        ]


def side(n: str, what: str, unit: str, per: str, sigs: int) -> Side:
    return Side(
        goal=Row(f"{n} {what}, 2 replicas vs 1", unit, goal_kind="min_ratio", goal=GOAL_RATIO),
        hsm1=Row(f"  1 replica vs one-thread HSM ceiling (raw / {sigs})", unit),
        hsm2=Row(f"  2 replicas vs one-thread HSM ceiling (raw / {sigs})", unit),
        server=Row(f"  server CPU per {per}, sum over replicas, 2 vs 1", "us"),
        postgres=Row(f"  PostgreSQL CPU per {per}, 2 vs 1", "us"),
        client=Row(f"  bench client CPU per {per}, 2 vs 1", "us"),
        cores=Row("  servers' CPU, sum over replicas, 2 vs 1", "cores"),
        busy=Row("  machine busy (all processes, /proc/stat), 2 vs 1", "cores"),
        other=Row("  of which not servers/PostgreSQL/bench (other load), 2 vs 1", "cores"),
        bound=Row("  2-core bound 2/(server+PG+client CPU), 2 repl., vs 1 replica", unit),
    )


# -- main ---------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 1 run, 1,000 devices, 0.5 s windows (not a measurement)",
    )
    ap.add_argument(
        "--devices",
        type=int,
        default=None,
        help="devices per activation measurement (default 5,000; --quick 1,000)",
    )
    ap.add_argument(
        "--clients",
        type=int,
        default=8,
        help="BuildDUIS client threads, spread over the replicas (default 8)",
    )
    ap.add_argument(
        "--window",
        type=float,
        default=None,
        help="seconds per BuildDUIS measurement (default 3; --quick 0.5)",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (server logs, token, a pg_dump of the database, PostgreSQL's log)",
    )
    ap.add_argument(
        "--setup-worker", nargs=3, metavar=("DIR", "DB_URL", "SCHEMA_DIR"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.setup_worker:
        setup_worker(*args.setup_worker)
        return 0
    runs = 1 if args.quick else max(1, args.runs)
    devices = args.devices or (1_000 if args.quick else 5_000)
    window = args.window or (0.5 if args.quick else 3.0)
    clients = max(2, args.clients)
    schema_dir = SCHEMA_DIR if SCHEMA_DIR.is_dir() else None
    if devices < DUIS_DEVICES * DUIS_GROUPS:
        raise SystemExit(f"--devices must be at least {DUIS_DEVICES * DUIS_GROUPS:,}")

    tmp = Path(tempfile.mkdtemp(prefix="signer-bench-repl-"))
    servers: list[Server] = []
    raw: RawHsm | None = None
    cluster: Cluster | None = None
    sampler: WaitSampler | None = None
    db_url = ""
    began = time.perf_counter()
    try:
        log("starting a throwaway PostgreSQL cluster")
        try:
            cluster = start_cluster()
        except LookupError as exc:
            raise SystemExit(f"bench/replicas.py needs PostgreSQL: {exc}") from None
        db_url = cluster.create_database("bench")
        log(f"setting up token, keys and config in {tmp} (database {db_url})")
        setup = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--setup-worker",
            str(tmp / "env"),
            db_url,
            str(schema_dir or ""),
        ]
        out = subprocess.run(setup, capture_output=True, text=True, cwd=ROOT, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"setup failed:\n{out.stderr[-3000:]}")
        info: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        import_cpl(db_url)
        insert_s = add_inventory_devices(db_url, activation_eui, devices, info["supplier_ski"])
        log(f"{devices:,} devices with inventory inserted in {insert_s:,.1f} s")
        analyze_s = analyze(db_url)
        mkey = serialization.load_pem_private_key(
            Path(info["manufacturer_key"]).read_bytes(), password=None
        )
        assert isinstance(mkey, ec.EllipticCurvePrivateKey)

        for r in range(2):
            servers.append(start_signer(info, tmp, f"replica-{r}"))
        log(
            "signer serve replicas: "
            + ", ".join(f"{s.address} (pid {s.proc.pid})" for s in servers)
        )
        stubs = [pb_grpc.FirmwareSignerStub(channel(s.address)) for s in servers]
        image_id = verify_delivery(stubs[0], mkey, IMAGE)
        digest = hashlib.sha256(IMAGE).digest()
        ids = [activation_eui(i) for i in range(DUIS_DEVICES * DUIS_GROUPS)]
        duis_requests = [
            pb.BuildDUISRequest(
                image_id=image_id,
                device_ids=ids[g * DUIS_DEVICES : (g + 1) * DUIS_DEVICES],
                firmware_version="BENCH",
                service_reference="11.1",
            )
            for g in range(DUIS_GROUPS)
        ]
        # thread i talks to replica i mod R, each thread over a channel of its own
        duis_stubs = {
            n: [pb_grpc.FirmwareSignerStub(channel(servers[i % n].address)) for i in range(clients)]
            for n in (1, 2)
        }

        # warm-up and checks: connections, pools, caches (image, CPL graph, schema)
        activate_and_sign(stubs, image_id, min(devices, 2 * BATCH * 2), digest)
        for n in (1, 2):
            for s in duis_stubs[n]:
                for k in range(3):
                    resp = s.BuildDUIS(duis_requests[k])
        assert len(resp.device_ids) == DUIS_DEVICES and not resp.refused, resp.refused[:3]
        assert resp.duis_request.startswith(b"<?xml") and b"Signature" in resp.duis_request
        raw = RawHsm(info)
        sampler = WaitSampler(libpq_of(db_url))
        meter = Meter(servers, cluster, sampler)

        act = side(
            "1",
            f"activation 11.3+CS06 on PostgreSQL, {devices:,} dev, N/(Ta+Ts)",
            "dev/s",
            "device",
            SIGS_ACTIVATION,
        )
        duis = side(
            "2",
            f"BuildDUIS 11.1 ~300 B on PostgreSQL, {DUIS_DEVICES} dev/call, {clients} clients",
            "calls/s",
            "call",
            SIGS_DUIS,
        )
        r_raw = Row("3 SoftHSM raw sign rate, python-pkcs11, 1 thread", "sign/s")
        for run in range(runs):
            order = (1, 2) if run % 2 == 0 else (2, 1)
            log(f"run {run + 1}/{runs}: replicas in the order {order}")
            raws = [raw.rate(0.3 if args.quick else 0.5)]
            rates: dict[int, float] = {}
            use: dict[int, Usage] = {}
            for n in order:
                (ta, ts), use[n] = meter.measure(
                    f"activation, {n} replica(s)",
                    partial(activate_and_sign, stubs[:n], image_id, devices, digest),
                )
                rates[n] = devices / (ta + ts)
            raws.append(raw.rate(0.3 if args.quick else 0.5))
            ceiling = statistics.median(raws)
            act.add(rates, use, {1: devices, 2: devices}, ceiling / SIGS_ACTIVATION)
            log(
                f"  activation: 1 replica {rates[1]:,.0f} dev/s, 2 replicas {rates[2]:,.0f} "
                f"dev/s ({rates[2] / rates[1]:.2f}x)"
            )
            d_rates: dict[int, float] = {}
            d_use: dict[int, Usage] = {}
            for n in reversed(order):
                d_rates[n], d_use[n] = meter.measure(
                    f"BuildDUIS, {n} replica(s)",
                    partial(duis_rate, duis_stubs[n], duis_requests, window),
                )
            raws.append(raw.rate(0.3 if args.quick else 0.5))
            ceiling = statistics.median(raws)
            units = {n: round(d_rates[n] * d_use[n].wall) for n in (1, 2)}
            duis.add(d_rates, d_use, units, ceiling / SIGS_DUIS)
            r_raw.candidate.append(ceiling)
            log(
                f"  BuildDUIS: 1 replica {d_rates[1]:,.0f} calls/s, 2 replicas "
                f"{d_rates[2]:,.0f} calls/s ({d_rates[2] / d_rates[1]:.2f}x); raw "
                f"{ceiling:,.0f} sign/s"
            )
        raw.close()
        raw = None
        sampler.close()
        waits = [
            sampler.report(f"{w}, {n} replica(s)")
            for w in ("activation", "BuildDUIS")
            for n in (1, 2)
        ]
        sampler = None
        hwm = [vm_of(s.proc.pid, "VmHWM") for s in servers]
        errors = [s.log.name for s in servers if "Traceback" in s.log.read_text()]

        rows = [*act.rows(), *duis.rows(), r_raw]
        mode = "QUICK SMOKE RUN (not a measurement)" if args.quick else f"median of {runs} runs"
        print_table(
            rows,
            f"replicas on PostgreSQL, {mode}; {os.cpu_count()} CPUs, "
            f"{dt.datetime.now():%Y-%m-%d %H:%M}",
        )
        schema = "set (every document validated)" if schema_dir else "NOT set (no validation)"
        print("notes:")
        print(
            f"  PostgreSQL {cluster.bin_dir.parent.name} (tests/support/postgres.py: Unix "
            "socket, fsync off); two signer serve processes on it and on one SoftHSM2 token;"
            f"\n  CPL strict, schema_dir {schema}, audit trail on; 1 replica = the first "
            "server alone, the second idle; order alternates per run."
        )
        print(
            f"  devices bulk-inserted ({insert_s:,.1f} s), then ANALYZE ({analyze_s:,.1f} s) "
            "so the planner has statistics from the start."
        )
        print(
            f"  1: the N devices dealt round-robin; one StreamActivation per replica at once "
            f"(Ta), then one StreamSignPreCommands per replica, batches of {BATCH:,} (Ts)."
        )
        print(
            f"  2: {clients} client threads, thread i on replica i mod R, {window:g} s "
            f"windows, {DUIS_GROUPS} distinct {DUIS_DEVICES}-device lists."
        )
        print(
            "  candidate/baseline of the goal rows: 2 replicas / 1 replica; HSM rows: "
            "the rate / raw SoftHSM rate over the HSM signatures it needs; CPU rows: "
            "2 replicas / 1 replica;\n  2-core bound = 2 CPU-s/s over the server + "
            "PostgreSQL + client CPU per unit at 2 replicas, against the 1-replica rate "
            "(its ratio: the best 2/1 these cores allow)."
        )
        print(
            "  PostgreSQL activity (pg_stat_activity every "
            f"{SAMPLE_EVERY * 1000:.0f} ms; per statement: backends per sample):"
        )
        for w in waits:
            print(f"    {w}")
        print(
            f"  servers' VmHWM: {', '.join(f'{h / 1e6:,.0f} MB' for h in hwm)}; "
            f"tracebacks in server logs: {', '.join(errors) or 'none'}"
        )
        print("  ratio = median of the per-run ratios; candidate/baseline = medians of the runs")
        per_run(rows)
        log(f"done in {time.perf_counter() - began:,.0f} s")
    finally:
        if sampler is not None:
            sampler.close()
        if raw is not None:
            raw.close()
        for s in servers:
            s.stop()
        if cluster is not None:
            try:
                if args.keep and db_url:
                    cluster.dump(db_url, tmp / "signer.pgdump")
                    shutil.copy(cluster.root / "server.log", tmp / "postgresql.log")
            finally:
                cluster.stop()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
