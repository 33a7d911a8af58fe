"""The benchmarks' report: one table, candidate beside the baseline measured in the same run.

The CPU speed of these machines drifts 20-40 % over minutes, so only same-run comparisons mean
anything: every row keeps one candidate (and baseline) figure per run, the columns show the
medians of the runs and the ratio is the median of the per-run ratios. A goal row says
``pass`` or ``FAIL``; nothing here asserts, the benchmarks exit 0 either way.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal

# min_ratio / max_ratio: the median per-run ratio against the goal; min_abs / max_abs: the
# median candidate against the goal; "": a context row, no goal.
GoalKind = Literal["", "min_ratio", "max_ratio", "min_abs", "max_abs"]

HEAD = ["what", "candidate", "baseline", "ratio", "goal", "result"]
RATIO_NOTE = "  ratio = median of the per-run ratios; candidate/baseline = medians of the runs"


def fmt(v: float) -> str:
    """Three significant figures or so, with thousands separators."""
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


@dataclass
class Row:
    """One table row: the candidate (and baseline) figure of every run, and its goal."""

    what: str
    unit: str
    candidate: list[float] = field(default_factory=list)
    baseline: list[float] = field(default_factory=list)
    goal_kind: GoalKind = ""
    goal: float = 0.0
    base_unit: str = ""  # the baseline's unit when it is not the candidate's
    note: str = ""  # replaces the verdict when set (skipped, partial)

    def add(self, candidate: float, baseline: float | None = None) -> None:
        """One run's figures."""
        self.candidate.append(candidate)
        if baseline is not None:
            self.baseline.append(baseline)

    def ratios(self) -> list[float]:
        return [c / b for c, b in zip(self.candidate, self.baseline, strict=True)]

    def verdict(self) -> str:
        if self.note:
            return self.note
        if not self.candidate or not self.goal_kind:
            return ""
        if self.goal_kind in ("min_ratio", "max_ratio"):
            value = statistics.median(self.ratios())
        else:
            value = statistics.median(self.candidate)
        ok = value >= self.goal if self.goal_kind.startswith("min") else value <= self.goal
        return "pass" if ok else "FAIL"

    def cells(self) -> list[str]:
        cand = f"{fmt(statistics.median(self.candidate))} {self.unit}" if self.candidate else "-"
        base = (
            f"{fmt(statistics.median(self.baseline))} {self.base_unit or self.unit}"
            if self.baseline
            else "-"
        )
        ratio = f"{statistics.median(self.ratios()):.2f}x" if self.baseline else "-"
        goal = {
            "min_ratio": f">= {self.goal:g}x",
            "max_ratio": f"<= {self.goal:g}x",
            "min_abs": f">= {fmt(self.goal)} {self.unit}",
            "max_abs": f"<= {fmt(self.goal)} {self.unit}",
            "": "(context)",
        }[self.goal_kind]
        return [self.what, cand, base, ratio, goal, self.verdict()]


def title(name: str, *, quick: bool, runs: int) -> str:
    """The table's heading: what, how many runs, the machine and when."""
    mode = "QUICK SMOKE RUN (not a measurement)" if quick else f"median of {runs} runs"
    return f"{name}, {mode}; {os.cpu_count()} CPUs, {dt.datetime.now():%Y-%m-%d %H:%M}"


def print_grid(
    heading: str, head: Sequence[str], body: Sequence[Sequence[str]], right: Collection[int]
) -> None:
    """A plain-text table between rules; the columns in ``right`` are right-aligned."""
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(heading)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for cells in body:
        print(
            "  ".join(
                c.rjust(w) if i in right else c.ljust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
    print(line)


def print_table(rows: Sequence[Row], heading: str) -> None:
    """The report's table: what, candidate, baseline, ratio, goal, result."""
    print_grid(heading, HEAD, [r.cells() for r in rows], right={1, 2, 3})


def per_run(rows: Sequence[Row]) -> None:
    """Every run's figures, to see the spread behind the medians."""
    print("\nper run (candidate / baseline):")
    for r in rows:
        if not r.candidate:
            continue
        if r.baseline:
            shown = ", ".join(
                f"{fmt(c)}/{fmt(b)}" for c, b in zip(r.candidate, r.baseline, strict=True)
            )
        else:
            shown = ", ".join(fmt(c) for c in r.candidate)
        print(f"  {r.what.strip()}: {shown}")
