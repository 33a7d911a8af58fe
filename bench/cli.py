"""Benchmark: what one `signer` command costs before it does anything (CLI start-up).

    .venv/bin/python bench/cli.py [--runs N] [--quick]

A report, not a test: prints one table and exits 0 even when a goal fails.

A key rotation is about 30 commands and back-office scripts call the CLI in loops, so the
start of every command counts. Each figure is the CPU time (user + system) of one child
process, from ``getrusage(RUSAGE_CHILDREN)`` before and after it is reaped; CPU time rather
than wall time because others share these cores. Every run spawns each command ``REPS``
times, the commands interleaved and their order rotated from run to run, and keeps the
median of the spawns; the table shows medians of the runs and the median per-run ratio.

Baselines, spawned in the same runs by the same interpreter: ``python -c pass`` (the
interpreter and site alone) for ``--version`` and ``--help``, and
``python -c "import grpc, click, cryptography"`` (what a gRPC client command cannot do
without) for a client command's start. A context row shows ``python -c "import click"``, the
floor of any click CLI here, and ``--version`` / ``--help`` against it.
"""

from __future__ import annotations

import resource
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness import ROOT, arguments, child_env, log, runs_of  # bench/ is sys.path[0]
from report import RATIO_NOTE, GoalKind, Row, per_run, print_table, title

REPS = 5
GOAL_MS = 100.0  # --version, --help: 0.1 s of CPU
GOAL_CLIENT_RATIO = 1.5  # a client command's start against grpc + click + cryptography
NO_SERVER = "127.0.0.1:1"  # nothing listens there: the call fails at once (UNAVAILABLE)


def signer_command() -> list[str]:
    """The console script a user runs (``.venv/bin/signer``), else ``python -m``."""
    script = Path(sys.executable).parent / "signer"
    if script.is_file():
        return [sys.executable, str(script)]
    return [sys.executable, "-m", "signer.cli.main"]


@dataclass(frozen=True)
class Command:
    name: str
    argv: list[str]
    exit_code: int = 0


def commands() -> dict[str, Command]:
    py, signer = [sys.executable], signer_command()
    listed = [
        Command("pass", [*py, "-c", "pass"]),
        Command("click", [*py, "-c", "import click"]),
        Command("client libs", [*py, "-c", "import grpc, click, cryptography"]),
        Command("--version", [*signer, "--version"]),
        Command("--help", [*signer, "--help"]),
        Command("verify --help", [*signer, "verify", "--help"]),
        Command("resign --help", [*signer, "resign", "--help"]),
        Command("keys list --help", [*signer, "keys", "list", "--help"]),
        Command("audit verify --help", [*signer, "audit", "verify", "--help"]),
        Command(
            "health, no server",
            [*signer, "health", "--server", NO_SERVER, "--timeout", "2"],
            exit_code=1,
        ),
    ]
    return {c.name: c for c in listed}


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn_env() -> dict[str, str]:
    """This environment without SIGNER_* overrides and without PYTHONDONTWRITEBYTECODE.

    A user's installation has its byte-code caches (pip writes them, an editable install on
    first use); without them every spawn would compile the sources again and the figures
    would measure the compiler. The warm-up spawns write them.
    """
    env = child_env({})
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def cpu_of(command: Command) -> float:
    """CPU seconds (user + system) of one run of ``command``, which must exit as expected."""
    before = children_cpu()
    done = subprocess.run(
        command.argv, capture_output=True, text=True, cwd=ROOT, env=spawn_env(), check=False
    )
    spent = children_cpu() - before
    if done.returncode != command.exit_code:
        raise RuntimeError(
            f"{' '.join(command.argv)} exited {done.returncode}, not {command.exit_code}:\n"
            f"{done.stderr[-2000:]}"
        )
    return spent


def measure(cmds: dict[str, Command], runs: int) -> dict[str, list[float]]:
    """Per command, one figure per run: the median CPU of its REPS spawns in that run."""
    names = list(cmds)
    for name in names:  # warm-up: byte-code caches written, files in the page cache
        cpu_of(cmds[name])
    figures: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        log(f"run {run + 1}/{runs}")
        order = names[run % len(names) :] + names[: run % len(names)]
        spent: dict[str, list[float]] = {name: [] for name in names}
        for _ in range(REPS):
            for name in order:
                spent[name].append(cpu_of(cmds[name]))
        for name in names:
            figures[name].append(statistics.median(spent[name]))
    return figures


def rows(figures: dict[str, list[float]]) -> list[Row]:
    def row(what: str, name: str, base: str | None, kind: GoalKind = "", goal: float = 0.0) -> Row:
        r = Row(what, "ms", goal_kind=kind, goal=goal)  # ms: 0.1 s needs more than 2 digits
        for i, cpu in enumerate(figures[name]):
            r.add(1000 * cpu, 1000 * figures[base][i] if base else None)
        return r

    return [
        row("1  signer --version (vs python -c pass)", "--version", "pass", "max_abs", GOAL_MS),
        row("1  signer --help (vs python -c pass)", "--help", "pass", "max_abs", GOAL_MS),
        row(
            "2  signer verify --help (vs import grpc, click, cryptography)",
            "verify --help",
            "client libs",
            "max_ratio",
            GOAL_CLIENT_RATIO,
        ),
        row(
            "2  signer resign --help (vs import grpc, click, cryptography)",
            "resign --help",
            "client libs",
            "max_ratio",
            GOAL_CLIENT_RATIO,
        ),
        row("   python -c pass", "pass", None),
        row("   python -c 'import click' (vs pass): any click CLI's floor", "click", "pass"),
        row("   python -c 'import grpc, click, cryptography' (vs pass)", "client libs", "pass"),
        row("   signer --version (vs import click)", "--version", "click"),
        row("   signer --help (vs import click)", "--help", "click"),
        row("   signer keys list --help (vs pass)", "keys list --help", "pass"),
        row("   signer audit verify --help (vs pass)", "audit verify --help", "pass"),
        row(
            "   signer health, no server listening (vs client libs)",
            "health, no server",
            "client libs",
        ),
    ]


def print_notes(cmds: dict[str, Command]) -> None:
    print(RATIO_NOTE)
    print(
        f"  CPU = user + system of the child (getrusage RUSAGE_CHILDREN), median of {REPS} "
        "spawns per run; rows 1: goal on the absolute CPU, rows 2: on the ratio"
    )
    print(f"  signer = {' '.join(signer_command())}; python = {sys.executable}")
    print(f"  health: `{' '.join(cmds['health, no server'].argv[-5:])}` (exit 1, UNAVAILABLE)")


def main(argv: Sequence[str] | None = None) -> int:
    ap = arguments(
        __doc__ or "",
        quick="smoke run: 1 run; not a measurement",
        keep="accepted for symmetry with the other benchmarks: nothing is kept (no temp dir)",
    )
    args = ap.parse_args(argv)
    runs = runs_of(args)
    cmds = commands()
    figures = measure(cmds, runs)
    table = rows(figures)
    print_table(table, title("signer CLI start-up", quick=args.quick, runs=runs))
    print_notes(cmds)
    per_run(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
