"""kill -9 at random points of BuildDUIS, activation and pre-command signing, then check.

    .venv/bin/python bench/kill9.py [--kills 100] [--clients 6] [--db-url URL] [--keep]

The real ``signer serve`` (bench/faults.py: strict CPL imported, schema validation, audit
trail) is driven by ``--clients`` threads mixing BuildDUIS, BuildActivation,
StreamActivation, SignPreCommand and StreamSignPreCommands (raw CS06 pre-commands answering
the 11.3 requests the clients were given, ``accept_unauthenticated`` set); it is killed with
SIGKILL ``--kills`` times at a random moment (0.3-2.0 s into each life) and restarted on the
same database and token. A pre-command whose call was cut is offered again later: it may be
signed then, or refused ``pre_command_already_signed`` if the dead server had committed it.

Then: no RequestID counter returned twice (BuildDUIS and 11.3 requests), no 11.3 request's
pre-command returned signed twice, every signature returned has its ``ok`` audit record, the
chain re-hashes independently, and ``signer audit verify`` exits 0. Prints a summary; exits 1
on any violation (or on a status code other than OK/UNAVAILABLE/CANCELLED).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
from faults import (  # bench/ is sys.path[0]
    FIRMWARE_VERSION,
    Fleet,
    audit_rows,
    audit_verify,
    chain_breaks,
    counter_of,
    pre_command,
    prepare,
    sign_request,
    verify_image,
)
from harness import Harness, Stub, channel, log

from signer.api._proto.signer.v1 import signer_pb2 as pb

CUT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}  # what a kill may answer
OPS = ["BuildDUIS"] * 2 + ["BuildActivation"] * 2 + ["StreamActivation"]
OPS += ["SignPreCommand"] * 2 + ["StreamSignPreCommands"]


@dataclass
class Seen:
    """What the clients were given, across every life of the server."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    duis: list[str] = field(default_factory=list)  # BuildDUIS RequestIDs
    activations: list[str] = field(default_factory=list)  # 11.3 RequestIDs
    signed: list[str] = field(default_factory=list)  # RequestIDs of signed pre-commands
    to_sign: list[tuple[str, int]] = field(default_factory=list)  # (device, counter)
    maybe_signed: set[int] = field(default_factory=set)  # counters whose signing was cut
    answered: Counter[str] = field(default_factory=Counter)
    cut: Counter[str] = field(default_factory=Counter)
    already_signed: int = 0
    violations: list[str] = field(default_factory=list)

    def issued(self, requests: list[pb.ActivationRequest]) -> None:
        with self.lock:
            for r in requests:
                self.activations.append(r.request_id)
                self.to_sign.append((r.device_id, counter_of(r.request_id)))

    def take(self, n: int) -> list[tuple[str, int]]:
        with self.lock:
            random.shuffle(self.to_sign)
            taken, self.to_sign = self.to_sign[:n], self.to_sign[n:]
            return taken

    def refused(self, item: tuple[str, int], code: str, reason: str) -> None:
        with self.lock:
            if code == "pre_command_already_signed" and item[1] in self.maybe_signed:
                self.already_signed += 1  # the dead server had committed it: expected
            else:
                self.violations.append(f"pre-command {item} refused {code}: {reason}")


@dataclass
class Life:
    """The current server: its address, and set when it is gone."""

    address: str
    gone: threading.Event = field(default_factory=threading.Event)


class Clients:
    """``n`` threads calling the current server until stopped; a cut call waits for the
    next life."""

    def __init__(self, fleet: Fleet, n: int, seen: Seen) -> None:
        self.fleet, self.seen = fleet, seen
        self.life: Life | None = None
        self.new_life = threading.Condition()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(n)]

    def serve(self, address: str) -> None:
        with self.new_life:
            if self.life is not None:
                self.life.gone.set()
            self.life = Life(address)
            self.new_life.notify_all()

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        self.stopping.set()
        with self.new_life:
            if self.life is not None:
                self.life.gone.set()
            self.new_life.notify_all()
        for t in self.threads:
            t.join(timeout=120)

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        life: Life | None = None
        while True:
            with self.new_life:
                while not self.stopping.is_set() and (self.life is None or self.life is life):
                    self.new_life.wait(timeout=1)
                life = self.life
            if self.stopping.is_set() or life is None:
                return
            ch = channel(life.address)
            self._life(Stub(ch), life, rng)
            ch.close()

    def _life(self, client: Stub, life: Life, rng: random.Random) -> None:
        """Calls on one life of the server until a kill cuts one (or it is gone)."""
        seen = self.seen
        while not self.stopping.is_set() and not life.gone.is_set():
            op = rng.choice(OPS)
            try:
                self._call(client, op, rng)
            except grpc.RpcError as exc:
                code = exc.code()
                with seen.lock:
                    if code in CUT:
                        seen.cut[op] += 1
                    else:
                        seen.violations.append(f"{op}: {code.name} {exc.details()}")
                if code in CUT:
                    return  # this life is over (or ending): wait for the next
                continue
            with seen.lock:
                seen.answered[op] += 1

    def _call(self, client: Stub, op: str, rng: random.Random) -> None:
        fleet, seen = self.fleet, self.seen
        picked = rng.sample(fleet.devices, 3)
        if op in ("SignPreCommand", "StreamSignPreCommands") and not seen.to_sign:
            op = "BuildActivation"
        if op == "BuildDUIS":
            duis = client.BuildDUIS(
                pb.BuildDUISRequest(
                    image_id=fleet.image_id, device_ids=picked, firmware_version=FIRMWARE_VERSION
                ),
                timeout=30,
            )
            with seen.lock:
                seen.duis.append(duis.request_id)
        elif op == "BuildActivation":
            act = client.BuildActivation(
                pb.BuildActivationRequest(
                    activation=pb.ActivationSpec(image_id=fleet.image_id), device_ids=picked[:2]
                ),
                timeout=30,
            )
            seen.issued(list(act.requests))
        elif op == "StreamActivation":
            for message in client.StreamActivation(self._campaign(rng), timeout=30):
                seen.issued([r.request for r in message.results if r.HasField("request")])
        elif op == "SignPreCommand":
            self._sign_one(client)
        else:
            self._sign_stream(client, rng)

    def _campaign(self, rng: random.Random) -> Iterator[pb.ActivationCampaignRequest]:
        yield pb.ActivationCampaignRequest(
            activation=pb.ActivationSpec(image_id=self.fleet.image_id)
        )
        for _ in range(3):
            ids = rng.sample(self.fleet.devices, 4)
            yield pb.ActivationCampaignRequest(devices=pb.DeviceBatch(device_ids=ids))

    def _sign_one(self, client: Stub) -> None:
        seen = self.seen
        items = seen.take(1)
        if not items:
            return
        try:
            signed = client.SignPreCommand(sign_request(*items[0]), timeout=30)
        except grpc.RpcError as exc:
            if exc.code() in CUT:
                self._offer_again(items)
            elif exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                seen.refused(items[0], "pre_command_already_signed", str(exc.details()))
                return
            raise
        with seen.lock:
            seen.signed.append(signed.request_id)

    def _sign_stream(self, client: Stub, rng: random.Random) -> None:
        seen = self.seen
        items = seen.take(rng.randint(2, 6))
        if not items:
            return
        batches = [b for b in (items[: len(items) // 2], items[len(items) // 2 :]) if b]
        done = 0
        try:
            request = (
                pb.PreCommandBatch(
                    pre_commands=[pre_command(*i) for i in b], accept_unauthenticated=True
                )
                for b in batches
            )
            answers = client.StreamSignPreCommands(request, timeout=30)
            for message, batch in zip(answers, batches, strict=True):
                for r, item in zip(message.results, batch, strict=True):
                    if r.HasField("signed"):
                        with seen.lock:
                            seen.signed.append(r.signed.request_id)
                    else:
                        seen.refused(item, r.refused.code, r.refused.reason)
                done += len(batch)
        except grpc.RpcError:
            self._offer_again(items[done:])
            raise

    def _offer_again(self, items: list[tuple[str, int]]) -> None:
        """A cut call may or may not have been committed: try those again later."""
        with self.seen.lock:
            self.seen.maybe_signed.update(c for _, c in items)
            self.seen.to_sign.extend(items)


def check(fleet: Fleet, seen: Seen) -> tuple[list[str], dict[str, int], int]:
    """The promises: (violations, ok records per operation, records)."""
    problems = list(seen.violations)
    counters = [counter_of(r) for r in seen.duis + seen.activations]
    if len(set(counters)) != len(counters):
        twice = [c for c, n in Counter(counters).items() if n > 1]
        problems.append(f"{len(twice)} RequestID counter(s) returned twice, e.g. {twice[:5]}")
    if len(set(seen.signed)) != len(seen.signed):
        again = [r for r, n in Counter(seen.signed).items() if n > 1]
        problems.append(f"{len(again)} pre-command(s) returned signed twice: {again[:5]}")
    if not set(seen.signed) <= set(seen.activations):
        problems.append("a signed pre-command answers no 11.3 request a client was given")
    rows = audit_rows(fleet.env.db_url)
    ok: dict[str, set[str]] = {}
    for r in rows:
        if r["outcome"] == "ok":
            ok.setdefault(r["operation"], set()).add(r["duis_request_id"])
    per_op = {
        op: sum(1 for r in rows if r["operation"] == op and r["outcome"] == "ok") for op in ok
    }
    wanted = [
        ("duis-sign", seen.duis),
        ("activation-sign", seen.activations),
        ("precommand-sign", seen.signed),
        ("precommand-duis-sign", seen.signed),
    ]
    for operation, returned in wanted:
        missing = set(returned) - ok.get(operation, set())
        if missing:
            problems.append(f"{len(missing)} returned without an ok {operation} record")
    if per_op.get("resign", 0) < len(seen.duis):
        problems.append(f"{per_op.get('resign', 0)} ok resign records for {len(seen.duis)} DUIS")
    problems += chain_breaks(fleet.env.db_url, rows)
    return problems, per_op, len(rows)


def run(h: Harness, fleet: Fleet, kills: int, clients: Clients) -> list[int]:
    """Start, load, kill -9 at a random moment, restart: ``kills`` times. Returns the ms
    each life lasted."""
    lives: list[int] = []
    server = h.start_signer(fleet.env, "life-000")
    verify_image(fleet, server)
    clients.serve(server.address)
    clients.start()
    for n in range(1, kills + 1):
        wait = random.uniform(0.3, 2.0)
        time.sleep(wait)
        os.kill(server.pid, signal.SIGKILL)
        if server.proc.wait(timeout=30) != -signal.SIGKILL:
            raise RuntimeError("the server exited before the kill")
        lives.append(round(wait * 1000))
        if n % 10 == 0:
            log(f"{n}/{kills} kills; {sum(clients.seen.answered.values()):,} calls answered")
        server = h.start_signer(fleet.env, f"life-{n:03d}")
        clients.serve(server.address)
    time.sleep(1.0)  # a last life, undisturbed
    clients.stop()
    server.stop()
    return lives


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--clients", type=int, default=6, help="client threads (default 6)")
    ap.add_argument("--devices", type=int, default=200, help="inventory devices (default 200)")
    ap.add_argument("--db-url", default=None, help="another database (default: SQLite)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, token, DB)")
    args = ap.parse_args()
    with Harness("signer-kill9-", keep=args.keep) as h:
        fleet = prepare(h, args.devices, args.db_url)
        seen = Seen()
        clients = Clients(fleet, args.clients, seen)
        t = time.perf_counter()
        run(h, fleet, args.kills, clients)
        elapsed = time.perf_counter() - t
        problems, per_op, records = check(fleet, seen)
        verify = audit_verify(fleet.env)
        if verify.returncode != 0:
            problems.append(f"signer audit verify exited {verify.returncode}: {verify.stdout}")
        summary(args, seen, elapsed, per_op, records, verify.returncode, verify.stdout)
        for p in problems:
            print(f"VIOLATION: {p}")
        print("result: " + ("FAIL" if problems else "pass (no promise broken)"))
        h.done()
        return 1 if problems else 0


def summary(
    args: argparse.Namespace,
    seen: Seen,
    elapsed: float,
    per_op: dict[str, int],
    records: int,
    verify_rc: int,
    verify_out: str,
) -> None:
    db = "PostgreSQL" if args.db_url else "SQLite"
    print(f"\nkill -9 x {args.kills} in {elapsed:,.0f} s ({db}, {args.clients} client threads)")
    print("calls answered / cut by a kill, per RPC:")
    for op in sorted(set(OPS)):
        print(f"  {op:24} {seen.answered[op]:7,} / {seen.cut[op]:5,}")
    print(f"  {'total':24} {sum(seen.answered.values()):7,} / {sum(seen.cut.values()):5,}")
    counters = len(seen.duis) + len(seen.activations)
    print(
        f"RequestID counters returned: {counters:,} ({len(seen.duis):,} BuildDUIS, "
        f"{len(seen.activations):,} SR 11.3), distinct: "
        f"{len({counter_of(r) for r in seen.duis + seen.activations}):,}"
    )
    print(
        f"pre-commands returned signed: {len(seen.signed):,} (distinct "
        f"{len(set(seen.signed)):,}); cut and offered again: {len(seen.maybe_signed):,}, of "
        f"which refused as already signed by a dead server: {seen.already_signed:,}"
    )
    shown = ", ".join(f"{op} {n:,}" for op, n in sorted(per_op.items()))
    print(f"audit records: {records:,}; ok: {shown}")
    print(f"signer audit verify: exit {verify_rc}: {verify_out.strip().splitlines()[-1:]}")


if __name__ == "__main__":
    sys.exit(main())
