"""Bounded load: every RPC from 64 clients for 60 s, then a burst of concurrent unary calls.

    .venv/bin/python bench/load.py [--seconds 60] [--clients 64] [--burst 3000]
                                   [--warmup 10] [--db-url URL] [--keep]

The real ``signer serve`` (bench/faults.py: strict CPL imported, schema validation, audit
trail, the default 16 workers and ``max_concurrent_rpcs`` 1000) is driven by ``--clients``
threads, each with its own channel, each call picked at random among VerifyManufacturer,
Resign, BuildDUIS, GetUpgradePath, BuildActivation, StreamActivation, SignPreCommand (the
thread's own 11.3 requests' CS06 pre-commands; one in ten a replay of one already signed),
StreamSignPreCommands and ListKeys. Checks, exiting 1 if one fails:

- every answer has its expected status (EXPECTED below: OK, and FAILED_PRECONDITION for a
  replayed pre-command);
- the server's open file descriptors (/proc/PID/fd) and RSS, sampled every second, are flat
  after ``--warmup`` seconds (first/last/max printed; at most FD_SLACK more descriptors and
  RSS_SLACK more RSS at the end than at the first sample after warm-up);
- then ``--burst`` unary calls (ListKeys, GetUpgradePath) in flight at once from one channel:
  each OK or RESOURCE_EXHAUSTED with a message, never CANCELLED or anything else.

p50/p99 latency per RPC is printed in a table.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
from activation_env import IMAGE
from faults import (  # bench/ is sys.path[0]
    FIRMWARE_VERSION,
    START_ENTRY,
    Fleet,
    counter_of,
    pre_command,
    prepare,
    sign_request,
    verify_image,
)
from harness import Harness, Server, Stub, channel, log, verify_delivery, vm_of
from report import print_grid

from signer.api._proto.signer.v1 import signer_pb2 as pb

OK, REFUSED = grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION
#: the status each kind of call must end with
EXPECTED: dict[str, set[grpc.StatusCode]] = {
    "VerifyManufacturer": {OK},
    "Resign": {OK},
    "BuildDUIS": {OK},
    "GetUpgradePath": {OK},
    "BuildActivation": {OK},
    "StreamActivation": {OK},
    "SignPreCommand": {OK},
    "SignPreCommand (replay)": {REFUSED},  # pre_command_already_signed
    "StreamSignPreCommands": {OK},
    "ListKeys": {OK},
}
RPCS = [k for k in EXPECTED if "(" not in k]
FD_SLACK = 16  # descriptors
RSS_SLACK = 0.10  # of the RSS after warm-up


class Refused(Exception):
    """A call answered OK refused an item it should have taken."""


@dataclass
class Tally:
    lock: threading.Lock = field(default_factory=threading.Lock)
    latency: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    codes: Counter[tuple[str, str]] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)

    def add(self, kind: str, seconds: float, code: grpc.StatusCode, details: str = "") -> None:
        with self.lock:
            self.codes[kind, code.name] += 1
            if code in EXPECTED[kind]:
                self.latency[kind.split(" (")[0]].append(seconds)
            elif len(self.unexpected) < 20:
                self.unexpected.append(f"{kind}: {code.name} {details[:200]}")


class Client:
    """One thread's calls; its own channel, its own pending and signed 11.3 requests."""

    def __init__(self, fleet: Fleet, address: str, seed: int) -> None:
        self.fleet, self.rng = fleet, random.Random(seed)
        self.channel = channel(address)
        self.stub = Stub(self.channel)
        self.to_sign: list[tuple[str, int]] = []
        self.signed: list[tuple[str, int]] = []

    def one(self, tally: Tally) -> None:
        rpc = self.rng.choice(RPCS)
        if rpc == "SignPreCommand" and not self.to_sign:
            rpc = "BuildActivation"  # its pre-commands come next time
        if rpc == "StreamSignPreCommands" and len(self.to_sign) < 4:
            rpc = "StreamActivation"
        call: Callable[[], object] = getattr(self, rpc)
        kind = rpc
        if rpc == "SignPreCommand" and self.signed and self.rng.random() < 0.1:
            kind, call = "SignPreCommand (replay)", self.replay
        t = time.perf_counter()
        try:
            call()
        except grpc.RpcError as exc:
            tally.add(kind, time.perf_counter() - t, exc.code(), str(exc.details()))
        except (Refused, RuntimeError) as exc:  # an OK answer that refused what it should not
            with tally.lock:
                tally.unexpected.append(f"{kind}: {exc}")
        else:
            tally.add(kind, time.perf_counter() - t, OK)

    def devices(self, n: int) -> list[str]:
        return self.rng.sample(self.fleet.devices, n)

    def VerifyManufacturer(self) -> None:
        verify_delivery(self.stub, self.fleet.env.manufacturer(), IMAGE)

    def Resign(self) -> None:
        self.stub.Resign(
            pb.ResignRequest(image_id=self.fleet.image_id, device_ids=self.devices(2)), timeout=60
        )

    def BuildDUIS(self) -> None:
        self.stub.BuildDUIS(
            pb.BuildDUISRequest(
                image_id=self.fleet.image_id,
                device_ids=self.devices(3),
                firmware_version=FIRMWARE_VERSION,
            ),
            timeout=60,
        )

    def GetUpgradePath(self) -> None:
        self.stub.GetUpgradePath(upgrade_path_request(self.fleet), timeout=60)

    def BuildActivation(self) -> None:
        act = self.stub.BuildActivation(
            pb.BuildActivationRequest(
                activation=pb.ActivationSpec(image_id=self.fleet.image_id),
                device_ids=self.devices(2),
            ),
            timeout=60,
        )
        self.to_sign += [(r.device_id, counter_of(r.request_id)) for r in act.requests]

    def StreamActivation(self) -> None:
        def messages() -> Iterator[pb.ActivationCampaignRequest]:
            spec = pb.ActivationSpec(image_id=self.fleet.image_id)
            yield pb.ActivationCampaignRequest(activation=spec)
            for _ in range(2):
                yield pb.ActivationCampaignRequest(
                    devices=pb.DeviceBatch(device_ids=self.devices(5))
                )

        for message in self.stub.StreamActivation(messages(), timeout=60):
            self.to_sign += [
                (r.request.device_id, counter_of(r.request.request_id)) for r in message.results
            ]

    def SignPreCommand(self) -> None:
        item = self.to_sign.pop()
        self.stub.SignPreCommand(sign_request(*item), timeout=60)
        self.signed = [*self.signed[-20:], item]

    def replay(self) -> None:
        self.stub.SignPreCommand(sign_request(*self.rng.choice(self.signed)), timeout=60)

    def StreamSignPreCommands(self) -> None:
        items, self.to_sign = self.to_sign[:4], self.to_sign[4:]
        batches = iter(
            [
                pb.PreCommandBatch(
                    pre_commands=[pre_command(*i) for i in b], accept_unauthenticated=True
                )
                for b in (items[:2], items[2:])
            ]
        )
        for message in self.stub.StreamSignPreCommands(batches, timeout=60):
            for r in message.results:
                if not r.HasField("signed"):
                    raise Refused(f"pre-command refused: {r.refused.code}")
        self.signed = [*self.signed[-20:], *items]

    def ListKeys(self) -> None:
        self.stub.ListKeys(pb.ListKeysRequest(), timeout=60)


def upgrade_path_request(fleet: Fleet) -> pb.GetUpgradePathRequest:
    return pb.GetUpgradePathRequest(from_entry_id=START_ENTRY, image_id=fleet.image_id)


@dataclass
class Samples:
    """(seconds since start, open fds, RSS bytes) of the server, every second."""

    rows: list[tuple[float, int, int]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self, pid: int, t0: float) -> None:
        while not self.stop.wait(1.0):
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            self.rows.append((time.perf_counter() - t0, fds, vm_of(pid, "VmRSS")))

    def report(self, warmup: float) -> list[str]:
        """Print first/last/max after warm-up; what is not flat."""
        after = [r for r in self.rows if r[0] >= warmup] or self.rows[-1:]
        (_, fd0, rss0), (_, fd1, rss1) = after[0], after[-1]
        fdmax, rssmax = max(r[1] for r in after), max(r[2] for r in after)
        mib = 1024 * 1024
        print(
            f"\nserver after {warmup:g} s warm-up ({len(after)} samples, 1/s): first / last / max"
        )
        print(f"  open file descriptors  {fd0} / {fd1} / {fdmax}")
        print(
            f"  RSS (MiB)              {rss0 / mib:,.1f} / {rss1 / mib:,.1f} / {rssmax / mib:,.1f}"
        )
        problems = []
        if fd1 > fd0 + FD_SLACK:
            problems.append(f"open file descriptors grew {fd0} -> {fd1}")
        if rss1 > rss0 * (1 + RSS_SLACK):
            problems.append(f"RSS grew {rss0 / mib:,.1f} -> {rss1 / mib:,.1f} MiB")
        return problems


def load(fleet: Fleet, server: Server, clients: int, seconds: float) -> tuple[Tally, Samples]:
    tally, samples = Tally(), Samples()
    workers = [Client(fleet, server.address, i) for i in range(clients)]
    t0 = time.perf_counter()
    until = t0 + seconds
    sampler = threading.Thread(target=samples.run, args=(server.pid, t0), daemon=True)

    def run(c: Client) -> None:
        while time.perf_counter() < until:
            c.one(tally)

    threads = [threading.Thread(target=run, args=(c,)) for c in workers]
    sampler.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    samples.stop.set()
    sampler.join()
    for c in workers:
        c.channel.close()
    return tally, samples


def burst(
    fleet: Fleet, server: Server, n: int
) -> tuple[Counter[tuple[str, str]], float, list[str]]:
    """``n`` unary calls in flight at once from one channel: (code, details) counted."""
    ch = channel(server.address)
    client = Stub(ch)
    client.ListKeys(pb.ListKeysRequest(), timeout=60)
    path = upgrade_path_request(fleet)
    t = time.perf_counter()
    calls = [
        client.ListKeys.future(pb.ListKeysRequest(), timeout=300)
        if i % 2
        else client.GetUpgradePath.future(path, timeout=300)
        for i in range(n)
    ]
    seen: Counter[tuple[str, str]] = Counter()
    for call in calls:
        try:
            call.result()
            seen["OK", ""] += 1
        except grpc.RpcError as exc:
            seen[exc.code().name, str(exc.details())] += 1
    elapsed = time.perf_counter() - t
    ch.close()
    bad = [
        f"burst: {n} x {code} {details!r}"
        for (code, details), n in seen.items()
        if not (code == "OK" or (code == "RESOURCE_EXHAUSTED" and details))
    ]
    return seen, elapsed, bad


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_latency(tally: Tally, seconds: float, clients: int) -> None:
    body = []
    for rpc in RPCS:
        got = tally.latency.get(rpc, [])
        if got:
            body.append(
                [
                    rpc,
                    f"{len(got):,}",
                    f"{len(got) / seconds:,.1f}",
                    f"{percentile(got, 0.5) * 1000:,.1f}",
                    f"{percentile(got, 0.99) * 1000:,.1f}",
                ]
            )
    head = ["RPC", "calls", "calls/s", "p50 ms", "p99 ms"]
    heading = (
        f"latency per RPC, {clients} clients, {seconds:g} s, {time.strftime('%Y-%m-%d %H:%M')}"
    )
    print_grid(heading, head, body, right={1, 2, 3, 4})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--burst", type=int, default=3000, help="burst size (0: none)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds before fds/RSS count")
    ap.add_argument("--devices", type=int, default=500, help="inventory devices (default 500)")
    ap.add_argument("--db-url", default=None, help="another database (default: SQLite)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, token, DB)")
    args = ap.parse_args()
    with Harness("signer-load-", keep=args.keep) as h:
        fleet = prepare(h, args.devices, args.db_url)
        server = h.start_signer(fleet.env, "load")
        verify_image(fleet, server)
        log(f"{args.clients} clients for {args.seconds:g} s on {server.address} (pid {server.pid})")
        tally, samples = load(fleet, server, args.clients, args.seconds)
        print_latency(tally, args.seconds, args.clients)
        print("\nstatus codes per kind of call:")
        for (kind, code), n in sorted(tally.codes.items()):
            mark = "" if grpc.StatusCode[code] in EXPECTED[kind] else "   <- UNEXPECTED"
            print(f"  {kind:26} {code:20} {n:7,}{mark}")
        problems = list(tally.unexpected) + samples.report(args.warmup)
        if args.burst:
            log(f"burst of {args.burst:,} concurrent unary calls")
            seen, elapsed, bad = burst(fleet, server, args.burst)
            shown = ", ".join(
                f"{c} {d!r}: {n:,}" if d else f"{c}: {n:,}" for (c, d), n in seen.items()
            )
            print(f"\nburst of {args.burst:,} unary calls in {elapsed:,.1f} s: {shown}")
            problems += bad
        for p in problems:
            print(f"VIOLATION: {p}")
        print("result: " + ("FAIL" if problems else "pass"))
        h.done()
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
