"""Part 2 of bench/activation.py: one StreamActivation of a whole campaign on a fresh server.

Measures the server's peak RSS (VmHWM) while batches of BATCH device IDs are generated as gRPC
asks for them (at most IN_FLIGHT ahead of the results) and the results are counted and
dropped. A campaign the throughput runs say would take longer than ``--max-minutes`` is
skipped; one that runs over stops sending at that limit and its row says PARTIAL.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from activation_clients import Pacing, campaign_messages  # bench/ is sys.path[0]
from activation_env import BATCH, add_inventory_devices, campaign_eui
from harness import Env, Harness, Server, log, stub, vm_of
from report import Row

GOAL_RSS_MB = 300.0
IN_FLIGHT = 8  # campaign batches sent ahead of the results received


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

    @property
    def done(self) -> int:
        return self.requests + self.refused


def run_campaign(server: Server, image_id: str, n: int, max_seconds: float) -> Campaign:
    c = Campaign(requested=n, idle_hwm=server.vm("VmHWM"), client_rss_before=vm_of("self", "VmRSS"))
    c.client_rss_max = c.client_rss_before
    client = stub(server.address)
    every = max(BATCH, n // 20)
    t = time.perf_counter()
    pacing = Pacing(threading.Semaphore(IN_FLIGHT), stop_at=t + max_seconds)
    done = 0
    try:
        messages = campaign_messages(image_id, campaign_eui, n, pacing)
        for r in (r for b in client.StreamActivation(messages) for r in b.results):
            if r.WhichOneof("result") == "request":
                c.requests += 1
            else:
                c.refused += 1
            done += 1
            if done % BATCH == 0:
                pacing.window.release()
            if done == 1:
                c.first_result_s = time.perf_counter() - t
            if done % every == 0:
                c.samples.append((done, time.perf_counter() - t, server.vm("VmRSS")))
                c.client_rss_max = max(c.client_rss_max, vm_of("self", "VmRSS"))
    finally:
        pacing.closed.set()
    c.seconds = time.perf_counter() - t
    c.end_hwm = server.vm("VmHWM")
    c.client_rss_max = max(c.client_rss_max, vm_of("self", "VmRSS"))
    c.sent, c.capped = pacing.sent.devices, pacing.sent.capped
    return c


@dataclass
class CampaignPart:
    """The campaign rows, and what the notes say about it."""

    n: int
    max_minutes: float
    stream_rate: float  # devices/s, median of the throughput runs
    rss: Row = field(init=False)
    idle: Row = field(init=False)
    rate: Row = field(init=False)
    duration: Row = field(init=False)
    run: Campaign | None = None
    insert_s: float = 0.0

    def __post_init__(self) -> None:
        self.rss = Row(
            f"2 campaign {self.n:,} dev: server peak RSS (VmHWM)",
            "MB",
            goal_kind="max_abs",
            goal=GOAL_RSS_MB,
        )
        self.idle = Row("  server VmHWM right after start", "MB")
        self.rate = Row("  campaign rate (one StreamActivation)", "dev/s")
        self.duration = Row("  campaign duration", "s")

    @property
    def estimate(self) -> float:
        return self.n / self.stream_rate if self.n else 0.0

    @property
    def fits_10(self) -> int:
        return int(self.stream_rate * 600) // BATCH * BATCH

    def rows(self) -> list[Row]:
        return [self.rss, self.idle, self.rate, self.duration]

    def measure(self, h: Harness, env: Env, image_id: str) -> None:
        """Skip, or insert the campaign's devices and stream them to a fresh server."""
        if self.n <= 0:
            self.rss.note = "skipped (--campaign 0)"
            return
        if self.estimate > self.max_minutes * 60:
            self.rss.note = f"SKIPPED: est. {self.estimate / 60:,.0f} min"
            log(
                f"campaign of {self.n:,} devices skipped: at {self.stream_rate:,.0f} devices/s "
                f"it would take about {self.estimate / 60:,.1f} min (> {self.max_minutes:g}); "
                f"about {self.fits_10:,} fit in 10 min (--campaign {self.fits_10})"
            )
            return
        log(f"inserting {self.n:,} campaign devices")
        self.insert_s = add_inventory_devices(env.db_url, campaign_eui, self.n, env.supplier_ski)
        log(
            f"  inserted in {self.insert_s:,.0f} s; campaign: fresh server, "
            f"est. {self.estimate / 60:,.1f} min at {self.stream_rate:,.0f} dev/s"
        )
        fresh = h.start_signer(env, "campaign")
        camp = self.run = run_campaign(fresh, image_id, self.n, self.max_minutes * 60)
        fresh.stop()
        if camp.refused or camp.done != camp.sent:
            raise RuntimeError(
                f"campaign: {camp.requests:,} requests, {camp.refused:,} "
                f"refused, {camp.sent:,} sent"
            )
        self.rss.add(camp.end_hwm / 1e6)
        self.idle.add(camp.idle_hwm / 1e6)
        self.rate.add(camp.done / camp.seconds)
        self.duration.add(camp.seconds)
        if camp.capped:
            self.rss.note = f"PARTIAL {camp.done:,}"

    def print_notes(self) -> None:
        camp = self.run
        if camp is None:
            print(
                f"  2: {self.rss.note or 'skipped'}: the stream rate was "
                f"{self.stream_rate:,.0f} dev/s (median of part 1); {self.n:,} devices "
                "would take "
                f"~{self.estimate / 60:,.1f} min; ~{self.fits_10:,} fit in 10 min"
            )
            return
        print(
            f"  2: {camp.done:,} of {self.n:,} devices activated in {camp.seconds:,.0f} s "
            f"({camp.done / camp.seconds:,.0f} dev/s; first result after "
            f"{camp.first_result_s * 1000:,.0f} ms); inserting them took "
            f"{self.insert_s:,.0f} s;"
            + (f" STOPPED SENDING at {self.max_minutes:g} min" if camp.capped else "")
        )
        trail = ", ".join(f"{d // 1000:,}k:{rss / 1e6:,.0f}" for d, _, rss in camp.samples)
        print(f"     server VmRSS (MB) along the way: {trail}")
        print(
            f"     client VmRSS {camp.client_rss_before / 1e6:,.0f} MB before, "
            f"max {camp.client_rss_max / 1e6:,.0f} MB during (results counted, not kept)"
        )
