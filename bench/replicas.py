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
import itertools
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from activation_clients import activate_and_sign  # bench/ is sys.path[0]
from activation_env import BATCH, IMAGE, activation_eui, add_inventory_devices, import_cpl
from harness import (
    Env,
    Harness,
    RawHsm,
    Server,
    Stub,
    arguments,
    log,
    runs_of,
    schema_dir,
    stub,
    verify_delivery,
    window_calls,
)
from pg import SAMPLE_EVERY, Cluster, Meter, Usage, WaitSampler, analyze, libpq_of, start_postgres
from report import RATIO_NOTE, Row, per_run, print_table, title

from signer.api._proto.signer.v1 import signer_pb2 as pb

GOAL_RATIO = 1.8
DUIS_DEVICES = 10  # devices per BuildDUIS call
DUIS_GROUPS = 100  # distinct 10-device lists the clients cycle through
SIGS_ACTIVATION = 3  # 11.3 XML signature, CS06 signature, SignedPreCommand XML signature
SIGS_DUIS = 2  # the image's ARP signature, the 11.1 XML signature


# -- measurements -------------------------------------------------------------------------


def duis_rate(clients: list[Stub], requests: list[pb.BuildDUISRequest], seconds: float) -> float:
    """BuildDUIS calls/s: one thread per client (each its own channel), cycling through the
    requests from its own offset, for ``seconds``."""

    def cycling(i: int) -> Callable[[], object]:
        k = itertools.count(i * len(requests) // len(clients))
        return lambda: clients[i].BuildDUIS(requests[next(k) % len(requests)])

    calls, elapsed = window_calls([cycling(i) for i in range(len(clients))], seconds)
    return calls / elapsed


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


@dataclass
class Replicas:
    """Two ``signer serve`` on one database and one token, and their clients."""

    servers: list[Server]
    clients: list[Stub]  # one per replica
    image_id: str
    duis_requests: list[pb.BuildDUISRequest]
    duis_clients: dict[int, list[Stub]]  # per replica count: thread i on replica i mod R


def start_replicas(h: Harness, env: Env, clients: int) -> Replicas:
    servers = [h.start_signer(env, f"replica-{r}") for r in range(2)]
    log("signer serve replicas: " + ", ".join(f"{s.address} (pid {s.pid})" for s in servers))
    first = [stub(s.address) for s in servers]
    image_id = verify_delivery(first[0], env.manufacturer(), IMAGE)
    ids = [activation_eui(i) for i in range(DUIS_DEVICES * DUIS_GROUPS)]
    requests = [
        pb.BuildDUISRequest(
            image_id=image_id,
            device_ids=ids[g * DUIS_DEVICES : (g + 1) * DUIS_DEVICES],
            firmware_version="00000002",
            service_reference="11.1",
        )
        for g in range(DUIS_GROUPS)
    ]
    per_count = {n: [stub(servers[i % n].address) for i in range(clients)] for n in (1, 2)}
    return Replicas(servers, first, image_id, requests, per_count)


def warm_up(r: Replicas, devices: int) -> None:
    """Connections, pools, caches (image, CPL graph, schema), and a look at the answers."""
    activate_and_sign(r.clients, r.image_id, min(devices, 2 * BATCH * 2))
    for n in (1, 2):
        for s in r.duis_clients[n]:
            for k in range(3):
                resp = s.BuildDUIS(r.duis_requests[k])
    assert len(resp.device_ids) == DUIS_DEVICES and not resp.refused, resp.refused[:3]
    assert resp.duis_request.startswith(b"<?xml") and b"Signature" in resp.duis_request


@dataclass
class Runs:
    """Rows 1-3, one measurement of each per run, 1 and 2 replicas in alternating order."""

    runs: int
    devices: int
    clients: int
    window: float
    raw_seconds: float
    act: Side = field(init=False)
    duis: Side = field(init=False)
    raw: Row = field(init=False)

    def __post_init__(self) -> None:
        self.act = side(
            "1",
            f"activation 11.3+CS06 on PostgreSQL, {self.devices:,} dev, N/(Ta+Ts)",
            "dev/s",
            "device",
            SIGS_ACTIVATION,
        )
        self.duis = side(
            "2",
            f"BuildDUIS 11.1 ~300 B on PostgreSQL, {DUIS_DEVICES} dev/call, {self.clients} clients",
            "calls/s",
            "call",
            SIGS_DUIS,
        )
        self.raw = Row("3 SoftHSM raw sign rate, python-pkcs11, 1 thread", "sign/s")

    def rows(self) -> list[Row]:
        return [*self.act.rows(), *self.duis.rows(), self.raw]

    def measure(self, r: Replicas, meter: Meter, hsm: RawHsm, run: int) -> None:
        order = (1, 2) if run % 2 == 0 else (2, 1)
        log(f"run {run + 1}/{self.runs}: replicas in the order {order}")
        raws = [hsm.rate(self.raw_seconds)]
        rates: dict[int, float] = {}
        use: dict[int, Usage] = {}
        for n in order:
            (ta, ts), use[n] = meter.measure(
                f"activation, {n} replica(s)",
                partial(activate_and_sign, r.clients[:n], r.image_id, self.devices),
            )
            rates[n] = self.devices / (ta + ts)
        raws.append(hsm.rate(self.raw_seconds))
        ceiling = statistics.median(raws)
        self.act.add(rates, use, {1: self.devices, 2: self.devices}, ceiling / SIGS_ACTIVATION)
        log(
            f"  activation: 1 replica {rates[1]:,.0f} dev/s, 2 replicas {rates[2]:,.0f} "
            f"dev/s ({rates[2] / rates[1]:.2f}x)"
        )
        d_rates: dict[int, float] = {}
        d_use: dict[int, Usage] = {}
        for n in reversed(order):
            d_rates[n], d_use[n] = meter.measure(
                f"BuildDUIS, {n} replica(s)",
                partial(duis_rate, r.duis_clients[n], r.duis_requests, self.window),
            )
        raws.append(hsm.rate(self.raw_seconds))
        ceiling = statistics.median(raws)
        units = {n: round(d_rates[n] * d_use[n].wall) for n in (1, 2)}
        self.duis.add(d_rates, d_use, units, ceiling / SIGS_DUIS)
        self.raw.add(ceiling)
        log(
            f"  BuildDUIS: 1 replica {d_rates[1]:,.0f} calls/s, 2 replicas "
            f"{d_rates[2]:,.0f} calls/s ({d_rates[2] / d_rates[1]:.2f}x); raw "
            f"{ceiling:,.0f} sign/s"
        )


@dataclass
class Notes:
    """What the notes under the table report besides the rows."""

    cluster: Cluster
    insert_s: float
    analyze_s: float
    waits: list[str]
    hwm: list[int]  # the servers' VmHWM
    errors: list[str]  # server logs with a traceback


def print_notes(runs: Runs, notes: Notes) -> None:
    schema = "set (every document validated)" if schema_dir() else "NOT set (no validation)"
    print("notes:")
    print(
        f"  PostgreSQL {notes.cluster.bin_dir.parent.name} (tests/support/postgres.py: Unix "
        "socket, fsync off); two signer serve processes on it and on one SoftHSM2 token;"
        f"\n  CPL strict, schema_dir {schema}, audit trail on; 1 replica = the first "
        "server alone, the second idle; order alternates per run."
    )
    print(
        f"  devices bulk-inserted ({notes.insert_s:,.1f} s), then ANALYZE "
        f"({notes.analyze_s:,.1f} s) so the planner has statistics from the start."
    )
    print(
        f"  1: the N devices dealt round-robin; one StreamActivation per replica at once "
        f"(Ta), then one StreamSignPreCommands per replica, batches of {BATCH:,} (Ts)."
    )
    print(
        f"  2: {runs.clients} client threads, thread i on replica i mod R, {runs.window:g} s "
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
    for w in notes.waits:
        print(f"    {w}")
    print(
        f"  servers' VmHWM: {', '.join(f'{h / 1e6:,.0f} MB' for h in notes.hwm)}; "
        f"tracebacks in server logs: {', '.join(notes.errors) or 'none'}"
    )
    print(RATIO_NOTE)


def parse_args() -> argparse.Namespace:
    ap = arguments(
        __doc__,
        quick="smoke run: 1 run, 1,000 devices, 0.5 s windows (not a measurement)",
        keep="keep the temp dir (server logs, token, a pg_dump of the database, PostgreSQL's log)",
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
    args = ap.parse_args()
    args.devices = args.devices or (1_000 if args.quick else 5_000)
    args.window = args.window or (0.5 if args.quick else 3.0)
    args.clients = max(2, args.clients)
    if args.devices < DUIS_DEVICES * DUIS_GROUPS:
        raise SystemExit(f"--devices must be at least {DUIS_DEVICES * DUIS_GROUPS:,}")
    return args


def main() -> int:
    args = parse_args()
    runs = Runs(runs_of(args), args.devices, args.clients, args.window, 0.3 if args.quick else 0.5)
    with Harness("signer-bench-repl-", keep=args.keep) as h:
        cluster, db_url = start_postgres(h)
        log(f"setting up token, keys and config in {h.tmp} (database {db_url})")
        env = h.provision(0, db_url)
        import_cpl(db_url)
        insert_s = add_inventory_devices(db_url, activation_eui, runs.devices, env.supplier_ski)
        log(f"{runs.devices:,} devices with inventory inserted in {insert_s:,.1f} s")
        analyze_s = analyze(db_url)
        replicas = start_replicas(h, env, runs.clients)
        warm_up(replicas, runs.devices)
        hsm = h.raw_hsm(env)
        sampler = WaitSampler(libpq_of(db_url))
        h.on_exit(sampler.close)
        meter = Meter(replicas.servers, cluster.data, sampler)
        for run in range(runs.runs):
            runs.measure(replicas, meter, hsm, run)
        hsm.close()
        sampler.close()
        labels = [f"{w}, {n} replica(s)" for w in ("activation", "BuildDUIS") for n in (1, 2)]
        notes = Notes(
            cluster,
            insert_s,
            analyze_s,
            waits=[sampler.report(label) for label in labels],
            hwm=[s.vm("VmHWM") for s in replicas.servers],
            errors=[s.log.name for s in replicas.servers if "Traceback" in s.log.read_text()],
        )
        rows = runs.rows()
        print_table(rows, title("replicas on PostgreSQL", quick=args.quick, runs=runs.runs))
        print_notes(runs, notes)
        per_run(rows)
        h.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
