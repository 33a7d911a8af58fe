"""Campaign benchmark (issue 16 section 5): a report, not a test (exits 0 whenever it ran).

    .venv/bin/python bench/campaigns.py [--runs N] [--quick] [--keep] [--plan N]
                                        [--devices N] [--campaign N] [--apply-prefix N]
                                        [--full]

The environment of bench/activation.py, in the production configuration except what a
benchmark must set: a throwaway SoftHSM2 token, Supplier and XML-signing keys with
self-issued SMKI certificates and a SQLite DB (bench/setup_env.py: ``[duis] schema_dir`` set,
so every document is schema-validated, the audit trail on as always, ``[campaigns]
direct_limit = 0`` for the StreamActivation baseline, development mode as every benchmark
server, so two approvers are played with ``signer-dev-identity``); a strict CPL (BENCH-1 ->
BENCH-2 -> BENCH-3, BENCH-3 the ~300 B benchmark image, verified through VerifyManufacturer);
devices bulk-inserted with inventory on BENCH-2 and a Supplier digital-signing cell naming
the token's key (bench/activation_env.py). The real ``signer serve`` runs as a subprocess.
Every campaign is an SR 11.3 activation (``CAMPAIGN_PRODUCT_ACTIVATION``) of that image.

Rows, every run on one server, candidate and baseline in alternating order:

1. Plan: devices/s of one ``PlanCampaign`` stream of ``--plan`` (200,000) devices, batches of
   1,000 (per device: screened, its key selected, its line hashed, its row written; nothing
   signed), until the CampaignPlan answer. Goal: >= 20,000 devices/s (the issue's absolute
   goal). Baseline: ``StreamActivation`` devices/s of row 2, so the ratio travels between
   machines (what planning costs against doing the activation).
2. Apply: devices/s of ``ApplyCampaign`` of an approved (two dev-identity approvers) plan of
   ``--devices`` (10,000) devices (per device the SR 11.3 built, schema-validated, XML-signed
   in the token, pre-flighted: parsed, schema-validated again, XML signature verified,
   counter and hash checked; outcome recorded). Baseline: one ``StreamActivation`` of the same
   devices on the same server (the activation path). Goal: >= 0.8x.
3. Server RSS: on a *fresh* server, ``PlanCampaign`` of ``--campaign`` (1,000,000) devices,
   two approvals, then ``ApplyCampaign``: by default of the first ``--apply-prefix`` (50,000)
   devices, the stream then cancelled (the plan stays APPLYING, as an interrupted apply
   does); with ``--full`` the whole campaign (about 1,000,000 / row 2's rate: many minutes
   on 2 cores). Goal: peak RSS (``VmHWM``) <= 300 MB. The row says which was run.

Candidate and baseline alternate inside every run (this machine's speed drifts 20-40 %);
columns are medians of the runs, ratios medians of the per-run ratios (bench/report.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from activation_clients import stream_activation  # bench/ is sys.path[0]
from activation_env import (
    BATCH,
    CURRENT_ENTRY,
    IMAGE,
    TARGET_ENTRY,
    EuiOf,
    activation_eui,
    add_inventory_devices,
    campaign_eui,
    import_cpl,
)
from harness import Env, Harness, Server, Stub, arguments, log, runs_of, stub, verify_delivery
from harness import schema_dir as find_schema_dir
from report import Row, per_run, print_table, title

from signer.api._proto.signer.v1 import signer_pb2 as pb

GOAL_PLAN_RATE = 20_000.0  # devices/s, issue 16 section 5
GOAL_APPLY_RATIO = 0.8  # of the activation path's rate
GOAL_RSS_MB = 300.0
APPROVERS = ("bench-approver-a", "bench-approver-b")
IDENTITY = "signer-dev-identity"


def who(name: str) -> list[tuple[str, str]]:
    return [(IDENTITY, name)]


# -- the campaign calls -------------------------------------------------------------------


def plan_messages(image_id: str, eui_of: EuiOf, n: int) -> Iterator[pb.PlanCampaignRequest]:
    """The spec, then batches of BATCH device IDs generated as gRPC asks for them."""
    spec = pb.CampaignSpec(image_id=image_id, product=pb.CAMPAIGN_PRODUCT_ACTIVATION)
    yield pb.PlanCampaignRequest(spec=spec)
    for start in range(0, n, BATCH):
        ids = [eui_of(i) for i in range(start, min(n, start + BATCH))]
        yield pb.PlanCampaignRequest(devices=pb.DeviceBatch(device_ids=ids))


def plan(client: Stub, image_id: str, eui_of: EuiOf, n: int, requester: str) -> tuple[float, str]:
    """(seconds, plan ID) of one PlanCampaign of the first n devices of ``eui_of``; every
    device must be eligible."""
    t = time.perf_counter()
    answer = client.PlanCampaign(plan_messages(image_id, eui_of, n), metadata=who(requester))
    elapsed = time.perf_counter() - t
    if answer.devices != n or answer.eligible != n:
        raise RuntimeError(
            f"plan of {n:,} devices: {answer.devices:,} planned, {answer.eligible:,} eligible, "
            f"refused {[(c.name, c.devices) for c in answer.by_reason]}"
        )
    if answer.state != pb.CAMPAIGN_STATE_PLANNED:
        raise RuntimeError(f"a new plan is {pb.CampaignState.Name(answer.state)}, not PLANNED")
    return elapsed, str(answer.plan_id)


def approve(client: Stub, plan_id: str) -> float:
    """Seconds for the two approvals a plan of 100 devices or more needs."""
    t = time.perf_counter()
    for name in APPROVERS:
        answer = client.ApproveCampaign(
            pb.ApproveCampaignRequest(plan_id=plan_id, comment="bench"), metadata=who(name)
        )
    if answer.state != pb.CAMPAIGN_STATE_APPROVED:
        raise RuntimeError(f"approved twice, the plan is {pb.CampaignState.Name(answer.state)}")
    return time.perf_counter() - t


@dataclass
class Applied:
    seconds: float = 0.0
    issued: int = 0
    first_result_s: float = 0.0
    samples: list[tuple[int, int]] = field(default_factory=list)  # (issued, server VmRSS)


def apply(
    client: Stub,
    plan_id: str,
    requester: str,
    n: int,
    *,
    stop_after: int | None = None,
    server: Server | None = None,
    every: int = 0,
) -> Applied:
    """ApplyCampaign of a plan of n devices: every device issued (none withheld or
    refused), the last message the APPLIED plan. With ``stop_after``, the stream is
    cancelled once that many devices were issued. With ``server`` and ``every``, its VmRSS
    is sampled every ``every`` devices."""
    out = Applied()
    t = time.perf_counter()
    stream = client.ApplyCampaign(pb.ApplyCampaignRequest(plan_id=plan_id), metadata=who(requester))
    final: pb.CampaignPlan | None = None
    try:
        for message in stream:
            for r in message.results:
                kind = r.WhichOneof("result")
                if kind != "issued" or r.issued.WhichOneof("artifact") != "activation":
                    raise RuntimeError(f"apply: a {kind} result: {r}"[:500])
                out.issued += 1
                if out.issued == 1:
                    out.first_result_s = time.perf_counter() - t
                if server is not None and every and out.issued % every == 0:
                    out.samples.append((out.issued, server.vm("VmRSS")))
            if message.HasField("plan"):
                final = message.plan
            if stop_after is not None and out.issued >= stop_after:
                stream.cancel()
                break
    except grpc.RpcError as exc:
        if exc.code() != grpc.StatusCode.CANCELLED or stop_after is None:
            raise
    out.seconds = time.perf_counter() - t
    if stop_after is not None:
        return out
    if out.issued != n or final is None or final.state != pb.CAMPAIGN_STATE_APPLIED:
        state = pb.CampaignState.Name(final.state) if final is not None else "no final message"
        raise RuntimeError(f"apply of {n:,} devices: {out.issued:,} issued, {state}")
    if final.issued != n or final.withheld:
        raise RuntimeError(
            f"apply: the plan says {final.issued:,} issued, {final.withheld} withheld"
        )
    return out


# -- rows 1 and 2 -------------------------------------------------------------------------


class Throughput:
    """Rows 1 and 2, one measurement of each per run."""

    def __init__(self, plan_n: int, devices: int) -> None:
        self.plan_n, self.n = plan_n, devices
        self.plan = Row(
            f"1 plan: PlanCampaign 11.3, {plan_n:,} dev, batches {BATCH:,}",
            "dev/s",
            goal_kind="min_abs",
            goal=GOAL_PLAN_RATE,
        )
        self.apply = Row(
            f"2 apply: ApplyCampaign 11.3, {devices:,} dev (vs StreamActivation, same dev)",
            "dev/s",
            goal_kind="min_ratio",
            goal=GOAL_APPLY_RATIO,
        )
        self.stream = Row(f"  StreamActivation 11.3, {devices:,} dev, batches {BATCH:,}", "dev/s")
        self.small_plan = Row(f"  plan of the {devices:,} apply devices", "dev/s")
        self.approvals = Row("  two ApproveCampaign calls", "ms")
        self.cpu_plan = Row("  server CPU per device, plan", "us")
        self.cpu_apply = Row("  server CPU per device, apply", "us")
        self.cpu_stream = Row("  server CPU per device, StreamActivation", "us")

    def rows(self) -> list[Row]:
        return [
            *(self.plan, self.apply, self.stream, self.small_plan, self.approvals),
            *(self.cpu_plan, self.cpu_apply, self.cpu_stream),
        ]

    def measure(self, server: Server, client: Stub, image_id: str, run: int) -> None:
        n = self.n
        requester = f"bench-requester-{run}"

        def activation() -> tuple[float, float]:
            cpu0 = server.cpu()
            ta, _ = stream_activation(client, image_id, n)
            return ta, server.cpu() - cpu0

        def campaign() -> tuple[float, float]:
            tp, plan_id = plan(client, image_id, activation_eui, n, requester)
            self.small_plan.add(n / tp)
            self.approvals.add(approve(client, plan_id) * 1000)
            cpu0 = server.cpu()
            done = apply(client, plan_id, requester, n)
            return done.seconds, server.cpu() - cpu0

        if run % 2 == 0:
            ta, cpu_a = activation()
            tc, cpu_c = campaign()
        else:
            tc, cpu_c = campaign()
            ta, cpu_a = activation()
        cpu0 = server.cpu()
        tp, _ = plan(client, image_id, campaign_eui, self.plan_n, f"bench-planner-{run}")
        cpu_p = server.cpu() - cpu0
        self.stream.add(n / ta)
        self.apply.add(n / tc, n / ta)
        self.plan.add(self.plan_n / tp, n / ta)
        self.cpu_plan.add(cpu_p / self.plan_n * 1e6)
        self.cpu_apply.add(cpu_c / n * 1e6)
        self.cpu_stream.add(cpu_a / n * 1e6)
        log(
            f"  plan {self.plan_n / tp:,.0f} dev/s, apply {n / tc:,.0f} dev/s, "
            f"StreamActivation {n / ta:,.0f} dev/s"
        )


# -- row 3 --------------------------------------------------------------------------------


@dataclass
class Large:
    """Row 3: one large campaign on a fresh server, planned, approved, applied."""

    n: int
    prefix: int  # devices applied (n with --full)
    rss: Row = field(init=False)
    rows_: list[Row] = field(default_factory=list)
    idle_hwm: int = 0
    plan_hwm: int = 0
    plan_s: float = 0.0
    plan_cpu: float = 0.0
    applied: Applied | None = None

    def __post_init__(self) -> None:
        what = "all" if self.prefix >= self.n else f"first {self.prefix:,}"
        self.rss = Row(
            f"3 campaign {self.n:,} dev: plan + 2 approvals + apply ({what}): server VmHWM",
            "MB",
            goal_kind="max_abs",
            goal=GOAL_RSS_MB,
        )
        self.idle = Row("  server VmHWM right after start", "MB")
        self.after_plan = Row(f"  server VmHWM after the plan of {self.n:,}", "MB")
        self.plan_rate = Row(f"  plan of {self.n:,} dev", "dev/s")
        self.apply_rate = Row(f"  apply ({what}) of that plan", "dev/s")

    def rows(self) -> list[Row]:
        return [self.rss, self.idle, self.after_plan, self.plan_rate, self.apply_rate]

    def measure(self, h: Harness, env: Env, image_id: str) -> None:
        fresh = h.start_signer(env, "large")
        client = stub(fresh.address)
        self.idle_hwm = fresh.vm("VmHWM")
        requester = "bench-large-requester"
        log(f"large campaign: plan of {self.n:,} devices on a fresh server (pid {fresh.pid})")
        cpu0 = fresh.cpu()
        self.plan_s, plan_id = plan(client, image_id, campaign_eui, self.n, requester)
        self.plan_cpu = fresh.cpu() - cpu0
        self.plan_hwm = fresh.vm("VmHWM")
        log(f"  planned in {self.plan_s:,.1f} s; VmHWM {self.plan_hwm / 1e6:,.0f} MB; approving")
        approve(client, plan_id)
        log(f"  applying {self.prefix:,} of {self.n:,} devices")
        full = self.prefix >= self.n
        self.applied = apply(
            client,
            plan_id,
            requester,
            self.n,
            stop_after=None if full else self.prefix,
            server=fresh,
            every=max(BATCH, self.prefix // 20),
        )
        end_hwm = fresh.vm("VmHWM")
        fresh.stop()
        self.rss.add(end_hwm / 1e6)
        self.idle.add(self.idle_hwm / 1e6)
        self.after_plan.add(self.plan_hwm / 1e6)
        self.plan_rate.add(self.n / self.plan_s)
        self.apply_rate.add(self.applied.issued / self.applied.seconds)
        if not full:
            self.rss.note = ("pass" if end_hwm / 1e6 <= GOAL_RSS_MB else "FAIL") + " (prefix)"

    def print_notes(self) -> None:
        a = self.applied
        if a is None:
            print(f"  3: {self.rss.note or 'skipped'}")
            return
        full = self.prefix >= self.n
        print(
            f"  3: fresh server; plan of {self.n:,} devices in {self.plan_s:,.0f} s "
            f"({self.plan_cpu / self.n * 1e6:,.0f} us server CPU per device), two approvals, "
            f"apply of {'all' if full else f'the first {a.issued:,}'} in {a.seconds:,.0f} s "
            f"(first result after {a.first_result_s * 1000:,.0f} ms)"
            + ("" if full else "; the stream then cancelled: --full applies all")
        )
        trail = ", ".join(f"{d // 1000:,}k:{rss / 1e6:,.0f}" for d, rss in a.samples)
        print(f"     server VmRSS (MB) during apply: {trail}")


# -- main ---------------------------------------------------------------------------------


def print_notes(large: Large) -> None:
    schema = "set (every document validated)" if find_schema_dir() else "NOT set (no validation)"
    print("notes:")
    print(
        f"  schema_dir {schema}; CPL strict; audit trail on; devices: ESME, hw 0x0001, on "
        f"{CURRENT_ENTRY}, target {TARGET_ENTRY}; one Supplier key on the token for all devices;"
        "\n  development mode (approvers played with signer-dev-identity); "
        "[campaigns] direct_limit = 0 (the StreamActivation baseline)"
    )
    print(
        "  1, 2: one server; every run a new requester, so a new plan (the plan ID hashes the "
        "requester); row 1's baseline\n     is row 2's StreamActivation rate (an absolute "
        "goal does not travel; the ratio does). Server CPU from /proc/<pid>/stat."
    )
    large.print_notes()


def parse_args() -> argparse.Namespace:
    ap = arguments(
        __doc__,
        quick="smoke run: 1 run, plan 20,000, apply 1,000, a 50,000-device campaign",
        keep="keep the temp dir (logs, token, DB)",
    )
    ap.add_argument("--plan", type=int, default=None, help="devices per plan run (200,000)")
    ap.add_argument("--devices", type=int, default=None, help="devices per apply run (10,000)")
    ap.add_argument(
        "--campaign", type=int, default=None, help="devices of row 3's campaign (1,000,000)"
    )
    ap.add_argument(
        "--apply-prefix",
        type=int,
        default=None,
        help="devices of row 3's campaign applied before the stream is cancelled (50,000)",
    )
    ap.add_argument("--full", action="store_true", help="row 3 applies the whole campaign")
    args = ap.parse_args()
    args.plan = args.plan or (20_000 if args.quick else 200_000)
    args.devices = args.devices or (1_000 if args.quick else 10_000)
    args.campaign = args.campaign or (50_000 if args.quick else 1_000_000)
    if max(args.campaign, args.plan) > 1 << 24:
        raise SystemExit("--campaign and --plan are limited to 16,777,216 devices")
    prefix = args.apply_prefix or (5_000 if args.quick else 50_000)
    args.apply_prefix = args.campaign if args.full else min(prefix, args.campaign)
    return args


def main() -> int:
    a = parse_args()
    runs = runs_of(a)
    with Harness("signer-bench-camp-", keep=a.keep) as h:
        log(f"setting up token, DB and config in {h.tmp}")
        env = h.provision(0)
        import_cpl(env.db_url)
        t = add_inventory_devices(env.db_url, activation_eui, a.devices, env.supplier_ski)
        big = max(a.plan, a.campaign)
        t += add_inventory_devices(env.db_url, campaign_eui, big, env.supplier_ski)
        log(f"{a.devices + big:,} devices with inventory inserted in {t:,.1f} s")
        server = h.start_signer(env, "throughput")
        client = stub(server.address)
        image_id = verify_delivery(client, env.manufacturer(), IMAGE)
        log(f"signer serve at {server.address} (pid {server.pid}); warming up")
        stream_activation(client, image_id, min(a.devices, 2 * BATCH))
        plan(client, image_id, campaign_eui, min(a.plan, 2 * BATCH), "bench-warm-up")
        part = Throughput(a.plan, a.devices)
        for run in range(runs):
            log(f"run {run + 1}/{runs}")
            part.measure(server, client, image_id, run)
        server.stop()
        large = Large(a.campaign, a.apply_prefix)
        large.measure(h, env, image_id)

        rows = [*part.rows(), *large.rows()]
        print_table(rows, title("campaign benchmark", quick=a.quick, runs=runs))
        print_notes(large)
        per_run(rows)
        h.done()
    return 0


if __name__ == "__main__":
    sys.exit(main())
