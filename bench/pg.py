"""The throwaway PostgreSQL of bench/replicas.py: started, analysed, watched.

The cluster is tests/support/postgres.py's (Debian's binaries, Unix socket only, fsync off).
CPU from /proc: the signer servers (summed), the PostgreSQL server (the postmaster's own and
reaped children's time plus its live backends'), this client and the whole machine, over one
measurement; and pg_stat_activity sampled every SAMPLE_EVERY s meanwhile, to see how often the
audit trail's head row was held and by whom.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import TypeVar

from harness import ROOT, Harness, Server, log  # bench/ is sys.path[0]

if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # tests.support.postgres; bench/ stays sys.path[0]
from tests.support.postgres import Cluster as Cluster
from tests.support.postgres import libpq_of as libpq_of
from tests.support.postgres import start_cluster

T = TypeVar("T")

SAMPLE_EVERY = 0.02  # pg_stat_activity sampling period, seconds
CLK = os.sysconf("SC_CLK_TCK")

# -- the cluster --------------------------------------------------------------------------


def start_postgres(h: Harness) -> tuple[Cluster, str]:
    """A throwaway cluster, stopped (after a dump with --keep) when the harness closes."""
    log("starting a throwaway PostgreSQL cluster")
    try:
        cluster = start_cluster()
    except LookupError as exc:
        raise SystemExit(f"bench/replicas.py needs PostgreSQL: {exc}") from None
    h.on_exit(cluster.stop)
    db_url = cluster.create_database("bench")
    if h.keep:

        def dump() -> None:
            cluster.dump(db_url, h.tmp / "signer.pgdump")
            shutil.copy(cluster.root / "server.log", h.tmp / "postgresql.log")

        h.on_exit(dump)
    return cluster, db_url


# -- environment --------------------------------------------------------------------------


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


def postgres_cpu(data: Path) -> float:
    """CPU seconds of the PostgreSQL server of data directory ``data``: the postmaster's own
    time and that of its reaped children (cutime/cstime: backends that have exited), plus its
    live children's."""
    pm = int((data / "postmaster.pid").read_text().split()[0])
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

    def __init__(self, servers: list[Server], pg_data: Path, sampler: WaitSampler) -> None:
        self.servers, self.pg_data, self.sampler = servers, pg_data, sampler

    def _now(self) -> Usage:
        return Usage(
            time.perf_counter(),
            sum(s.cpu() for s in self.servers),
            postgres_cpu(self.pg_data),
            time.process_time(),
            machine_busy(),
        )

    def measure(self, label: str, work: Callable[[], T]) -> tuple[T, Usage]:
        """work()'s result and the CPU it took; the wait sampler files its samples under
        ``label`` meanwhile."""
        a = self._now()
        out = self.sampler.during(label, work)
        b = self._now()
        return out, Usage(*(y - x for x, y in zip(astuple(a), astuple(b), strict=True)))


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

    def during(self, label: str, work: Callable[[], T]) -> T:
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
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(timeout=2)
        self.conn.close()
