"""Benchmark: upgrade-path evaluation for 50,000 devices against 10,000 CPL entries.

    .venv/bin/python bench/paths.py [--runs N] [--seed S]

A report, not a test: prints one table and exits 0 even when the goal fails.

Data (generated, fixed seed): 10,000 CPL entries over many models (sizes 5-60, plus one
long-lived campaign model of 200 entries), each model a release chain with skip-a-version
edges (diamonds), hot-fix entries that reuse a firmware version string with another hash,
factory images with no predecessor ("N/A": several roots per model) that the next release
lists, a few rollback edges (cycles) and a few predecessors that are not on the CPL.
50,000 devices: 60 % on random entries of the campaign model, 35 % on random entries of other
models, 5 % on IDs that are not on the CPL.
Target: the newest entry of the campaign model.

Candidate: what a campaign does: ``PathEvaluator(graph, target)`` (one reverse BFS), then for
every device ``permitted`` and, when not permitted, ``path_from`` (the path or None).
Baseline: the naive way, ``UpgradeGraph.shortest_path`` (one forward BFS) per device, timed on
a 1,000-device sample and extrapolated to 50,000. Candidate and baseline alternate inside
every run (this machine's CPU speed drifts); the table shows medians of the runs.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from report import print_grid  # bench/ is sys.path[0]

from signer.cpl.model import BandJoinOption, CplEntry, DeviceType
from signer.cpl.parse import COLUMNS, read_csv
from signer.cpl.paths import PathEvaluator, UpgradeGraph

ENTRIES = 10_000
DEVICES = 50_000
CAMPAIGN_MODEL_SIZE = 200
SAMPLE = 1_000
GOAL_MS = 50.0


@dataclass
class Fleet:
    entries: list[CplEntry]
    devices: list[str]  # current CPL entry ID of each device
    target: str
    stats: dict[str, int] = field(default_factory=dict)


def _model(
    rnd: random.Random,
    serial: int,
    size: int,
    code: int,
    dtype: DeviceType,
    out: list[CplEntry],
    stats: dict[str, int],
) -> list[str]:
    """One model's releases, appended to ``out``; returns its entry IDs, oldest first."""
    specs: list[tuple[str, set[str], int, str]] = []  # entry ID, upgrade_from, version, tag
    main: list[int] = []  # indexes of the release chain, without hot-fixes
    version = rnd.randrange(0x01000000, 0x02000000)
    while len(specs) < size:
        version += rnd.randrange(1, 0x100)
        entry_id = f"CPL-{serial:04d}-{len(specs):03d}"
        preds: set[str] = set()
        if not main or (len(specs) < size - 1 and rnd.random() < 0.04):
            # a first release, or a factory image that starts from nothing: N/A. The next
            # release lists it beside the previous one, so the chain stays connected.
            stats["roots"] += 1
            specs.append((entry_id, preds, version, " factory"))
            if not main:
                main.append(len(specs) - 1)
            continue
        preds.add(specs[main[-1]][0])
        if len(main) >= 2 and rnd.random() < 0.3:
            preds.add(specs[main[-2]][0])  # may skip a version: a diamond
            stats["skip edges"] += 1
        preds.add(specs[-1][0])  # the previous hot-fix or factory image leads here too
        if rnd.random() < 0.01:
            preds.add(f"GONE-{serial}-{len(specs)}")  # a predecessor not on the CPL
            stats["dangling"] += 1
        main.append(len(specs))
        specs.append((entry_id, preds, version, ""))
        if len(specs) < size - 1 and len(main) >= 2 and rnd.random() < 0.15:
            # a hot-fix: the same version string with another hash, from the previous release
            specs.append(
                (f"CPL-{serial:04d}-{len(specs):03d}", {specs[main[-2]][0]}, version, " hot-fix")
            )
            stats["same-version entries"] += 1
    if len(main) >= 3 and rnd.random() < 0.2:
        i = rnd.randrange(len(main) - 1)  # release i may also come back from i+1: a cycle
        specs[main[i]][1].add(specs[main[i + 1]][0])
        stats["cycles"] += 1
    image_type = rnd.randrange(1, 0x100)
    hardware = rnd.choice((0x0100, 0x0101, 0x0200))
    band = rnd.choice(list(BandJoinOption)[:5])
    for entry_id, preds, fw, tag in specs:
        out.append(
            CplEntry(
                entry_id=entry_id,
                manufacturer_code=code,
                device_type=dtype,
                model=f"Model {serial}",
                image_type=image_type,
                hardware_version=hardware,
                firmware_version=f"{fw:08X}",
                image_hash=hashlib.sha256(f"{entry_id}{tag}".encode()).digest(),
                upgrade_from=frozenset(preds),
                zigbee_chipset_vendor="Vendor",
                zigbee_stack_version="6.7",
                band_join_option=band,
            )
        )
    return [spec[0] for spec in specs]


def generate(seed: int) -> Fleet:
    rnd = random.Random(seed)
    stats = dict.fromkeys(
        ("roots", "skip edges", "dangling", "same-version entries", "cycles", "models"), 0
    )
    entries: list[CplEntry] = []
    codes = [rnd.randrange(0x1000, 0xFFFF) for _ in range(25)]
    types = list(DeviceType)
    campaign = _model(rnd, 0, CAMPAIGN_MODEL_SIZE, codes[0], DeviceType.ESME, entries, stats)
    other: list[str] = []
    serial = 1
    while len(entries) < ENTRIES:
        size = min(rnd.choice((5, 8, 12, 20, 30, 45, 60)), ENTRIES - len(entries))
        other += _model(rnd, serial, size, rnd.choice(codes), rnd.choice(types), entries, stats)
        serial += 1
    stats["models"] = serial
    devices = []
    for i in range(DEVICES):
        r = rnd.random()
        if r < 0.60:
            devices.append(rnd.choice(campaign))
        elif r < 0.95:
            devices.append(rnd.choice(other))
        else:
            devices.append(f"UNKNOWN-{i % 97}")
    return Fleet(entries, devices, campaign[-1], stats)


def evaluate_all(graph: UpgradeGraph, target: str, devices: list[str]) -> tuple[int, int, int]:
    """The candidate: one evaluator, then per device a permission check or a path."""
    ev = PathEvaluator(graph, target)
    permitted = routed = no_path = 0
    for d in devices:
        if ev.permitted(d):
            permitted += 1
        elif ev.path_from(d) is None:
            no_path += 1
        else:
            routed += 1
    return permitted, routed, no_path


def naive(graph: UpgradeGraph, target: str, devices: list[str]) -> tuple[int, int, int]:
    permitted = routed = no_path = 0
    for d in devices:
        path = graph.shortest_path(d, target)
        if path is None:
            no_path += 1
        elif len(path) == 2:
            permitted += 1
        else:
            routed += 1
    return permitted, routed, no_path


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn()
    return (time.perf_counter() - t) * 1000, result


def csv_lines(entries: list[CplEntry]) -> list[str]:
    out = [",".join(COLUMNS) + "\n"]
    for e in entries:
        out.append(
            ",".join(
                [
                    e.entry_id,
                    f"{e.manufacturer_code:04X}",
                    e.device_type.value,
                    e.model,
                    f"{e.image_type:04X}" if e.image_type is not None else "",
                    f"{e.hardware_version:04X}" if e.hardware_version is not None else "",
                    e.firmware_version,
                    e.image_hash.hex(),
                    ";".join(sorted(e.upgrade_from)) or "N/A",
                    e.zigbee_chipset_vendor,
                    e.zigbee_stack_version,
                    e.band_join_option.value if e.band_join_option else "",
                ]
            )
            + "\n"
        )
    return out


@dataclass
class Timings:
    """Milliseconds per run of each measurement (the baseline extrapolated to DEVICES)."""

    candidate: list[float] = field(default_factory=list)
    build: list[float] = field(default_factory=list)
    lookups: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    build_graph: list[float] = field(default_factory=list)
    parse: list[float] = field(default_factory=list)


def measure(fleet: Fleet, graph: UpgradeGraph, sample: list[str], runs: int) -> Timings:
    t = Timings()
    lines = csv_lines(fleet.entries)
    for _ in range(runs):
        t.candidate.append(timed(lambda: evaluate_all(graph, fleet.target, fleet.devices))[0])
        ms, built = timed(lambda: PathEvaluator(graph, fleet.target))
        t.build.append(ms)
        assert isinstance(built, PathEvaluator)

        def lookup(ev: PathEvaluator = built) -> None:
            for d in fleet.devices:
                if not ev.permitted(d):
                    ev.path_from(d)

        t.lookups.append(timed(lookup)[0])
        ms, _r = timed(lambda: naive(graph, fleet.target, sample))
        t.baseline.append(ms * DEVICES / SAMPLE)
        t.build_graph.append(timed(lambda: UpgradeGraph(fleet.entries))[0])
        t.parse.append(timed(lambda: sum(1 for _ in read_csv(lines)))[0])
    return t


def table(t: Timings, entries: int) -> list[tuple[str, str, str, str]]:
    """The report's rows: what, median, goal, result."""
    med = statistics.median
    cand = med(t.candidate)
    return [
        (
            f"PathEvaluator: 1 reverse BFS + {DEVICES:,} devices",
            f"{cand:,.1f} ms",
            f"<= {GOAL_MS:g} ms",
            "pass" if cand <= GOAL_MS else "FAIL",
        ),
        ("  of which: the reverse BFS from the target", f"{med(t.build):,.2f} ms", "(context)", ""),
        (
            f"  of which: {DEVICES:,} lookups (fresh path cache)",
            f"{med(t.lookups):,.1f} ms",
            "(context)",
            "",
        ),
        (
            f"BASELINE naive BFS per device (shortest_path), {SAMPLE:,}-device sample "
            f"x{DEVICES // SAMPLE} = EXTRAPOLATED",
            f"{med(t.baseline):,.0f} ms",
            "(baseline)",
            "",
        ),
        ("  speed-up: baseline / candidate", f"{med(t.baseline) / cand:,.0f}x", "(context)", ""),
        (
            f"UpgradeGraph build from {entries:,} entries",
            f"{med(t.build_graph):,.1f} ms",
            "(context)",
            "",
        ),
        (f"read_csv of those {entries:,} entries", f"{med(t.parse):,.0f} ms", "(context)", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs (at least 5; default 7)")
    parser.add_argument("--seed", type=int, default=231)
    args = parser.parse_args()
    runs = max(5, args.runs)

    fleet = generate(args.seed)
    graph = UpgradeGraph(fleet.entries)
    sample = random.Random(args.seed + 1).sample(fleet.devices, SAMPLE)
    # the two ways must agree before their speed means anything
    ev = PathEvaluator(graph, fleet.target)
    for d in sample:
        assert ev.path_from(d) == graph.shortest_path(d, fleet.target), d
    permitted, routed, no_path = evaluate_all(graph, fleet.target, fleet.devices)
    t = measure(fleet, graph, sample, runs)

    heading = f"upgrade paths: {len(fleet.entries):,} CPL entries, {DEVICES:,} devices"
    head = ("what", f"median of {runs}", "goal", "result")
    print_grid(heading, head, table(t, len(fleet.entries)), right={1})
    longest = max(len(p) for d in set(fleet.devices) if (p := ev.path_from(d)))
    print(
        f"devices: {permitted:,} permitted directly, {routed:,} need a longer path, "
        f"{no_path:,} have no path; target {fleet.target} (longest path {longest} entries)"
    )
    print(
        "CPL: "
        + ", ".join(f"{v:,} {k}" for k, v in fleet.stats.items())
        + f", {len(graph.dangling())} IDs not on the CPL referenced"
    )
    print(
        "per run (ms): candidate "
        + ", ".join(f"{c:.1f}" for c in t.candidate)
        + "; baseline (extrapolated) "
        + ", ".join(f"{b:.0f}" for b in t.baseline)
    )


if __name__ == "__main__":
    main()
