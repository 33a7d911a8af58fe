"""Run the atheris targets of ``fuzz/targets.py`` one after another and print a table.

    .venv/bin/python fuzz/run.py --runs 1000000            # every target, 1M inputs each
    .venv/bin/python fuzz/run.py --runs 20000 --target eui --target cpl_json

Each target runs in its own process (libFuzzer exits when done) on one core, its seed
corpus built from ../shared/vectors into the work directory (a cache, never the repository).
A finding (an exception other than a ``SignerError``, or an overlong error message) is saved
to ``<work>/findings/<target>/`` and fuzzing goes on, so one run counts them all.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import targets  # noqa: E402

_STAT = re.compile(r"stat::(\w+):\s+(\d+)")


def _child(name: str, findings: Path, libfuzzer_args: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["signer"]):
        import signer.cpl.inventory
        import signer.cpl.parse
        import signer.duis.activation
        import signer.duis.request
        import signer.duis.response
        import signer.gbcs.delivery
        import signer.gbcs.ota
        import signer.gbcs.precommand
        import signer.gbcs.signature
        import signer.gbcs.trust_anchor
        import signer.smki.certificate  # noqa: F401
    target = targets.TARGETS[name]
    findings.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()

    def one_input(data: bytes) -> None:
        try:
            target.run(data)
        except targets.Finding as finding:
            key = hashlib.sha256(str(finding).split(":")[0].encode() + data).hexdigest()[:16]
            if key not in seen:
                seen.add(key)
                (findings / f"{key}.bin").write_bytes(data)
                (findings / f"{key}.txt").write_text(f"{finding}\n", encoding="utf-8")

    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def _seed(name: str, corpus: Path) -> int:
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = targets.TARGETS[name].seeds(targets.VECTORS)
    for seed in seeds:
        (corpus / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)
    return max(len(s) for s in seeds)


def _run(name: str, runs: int, max_time: int | None, work: Path) -> dict[str, object]:
    corpus, findings = work / "corpus" / name, work / "findings" / name
    longest = _seed(name, corpus)
    args = [
        f"-runs={runs}",
        f"-max_len={max(256, 2 * longest)}",
        "-timeout=20",
        "-rss_limit_mb=2048",
        "-print_final_stats=1",
        str(corpus),
    ]
    if max_time:
        args.insert(0, f"-max_total_time={max_time}")
    started, wall = time.monotonic(), time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", name, "--findings", str(findings), "--", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - started
    (work / f"{name}.log").write_text(proc.stderr, encoding="utf-8")
    stats = {k: int(v) for k, v in _STAT.findall(proc.stderr)}
    executed = stats.get("number_of_executed_units", 0)
    # this run's findings only: those of earlier runs stay in the directory for reference
    saved = findings.glob("*.txt") if findings.is_dir() else []
    found = sorted(p for p in saved if p.stat().st_mtime >= wall)
    return {
        "target": name,
        "parser": targets.TARGETS[name].parser,
        "inputs": executed,
        "exec_per_s": stats.get("average_exec_per_sec", 0),
        "seconds": round(elapsed),
        "findings": len(found),
        "exit": proc.returncode,
        "examples": [p.read_text(encoding="utf-8").strip() for p in found[:3]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1_000_000, help="inputs per target")
    ap.add_argument("--max-time", type=int, default=None, help="seconds per target at most")
    ap.add_argument("--target", action="append", choices=sorted(targets.TARGETS))
    ap.add_argument("--work-dir", type=Path, default=None, help="corpora, findings and logs")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--findings", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    opts = ap.parse_args()
    if opts.child:
        _child(opts.child, opts.findings, opts.rest)
        return 0
    if not targets.VECTORS.is_dir():
        print(f"test vectors not found at {targets.VECTORS}", file=sys.stderr)
        return 2
    work = opts.work_dir or Path(tempfile.gettempdir()) / f"signer-fuzz-{os.getuid()}"
    work.mkdir(parents=True, exist_ok=True)
    print(f"work directory: {work}", flush=True)
    results = []
    print("| parser | target | inputs run | exec/s | seconds | findings |")
    print("|---|---|---:|---:|---:|---:|", flush=True)
    for name in opts.target or list(targets.TARGETS):
        r = _run(name, opts.runs, opts.max_time, work)
        results.append(r)
        print(
            f"| {r['parser']} | `{name}` | {r['inputs']:,} | {r['exec_per_s']:,} | "
            f"{r['seconds']} | {r['findings']} |",
            flush=True,
        )
        for example in r["examples"]:  # type: ignore[attr-defined]
            print(f"    finding: {example}  (inputs in {work / 'findings' / name})", flush=True)
    if opts.json:
        opts.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 1 if any(r["findings"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
