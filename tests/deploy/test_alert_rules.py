"""The Prometheus alert rules parse and pass their unit tests (``promtool test rules``).

promtool comes with Debian's ``prometheus`` package (``scripts/bootstrap --dev`` installs
it). Without it these tests fail rather than skip: untested alert rules must not pass CI.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not installed (Debian package prometheus; "
            "scripts/bootstrap --dev installs it)"
        )
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, cwd=RULES.parent
    )


def test_the_alert_rules_are_valid() -> None:
    result = run("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests() -> None:
    result = run("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    """promtool compares firing alerts only: a test without an ``exp_alerts: []`` case
    cannot catch an alert that fires too eagerly, and one without a firing case none that
    never fires."""
    alerts = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.MULTILINE))
    assert len(alerts) >= 5
    cases: dict[str, set[str]] = {}
    current = None
    for line in RULE_TESTS.read_text().splitlines():
        if m := re.match(r"\s*alertname: (\w+)", line):
            current = m.group(1)
        elif (m := re.match(r"\s*exp_alerts:\s*(\[\])?", line)) and current is not None:
            cases.setdefault(current, set()).add("quiet" if m.group(1) else "firing")
            current = None
    assert {a: cases.get(a, set()) for a in alerts} == {a: {"quiet", "firing"} for a in alerts}
