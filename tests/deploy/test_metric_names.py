"""Every metric the dashboard and the alert rules query is one the service exposes, and
every dashboard query parses: renaming a metric breaks the build, not a 3 a.m. page."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.hsm import Hsm
from tests.support.server import start_server, write_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "signer-dashboard.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
#: the service's own families; process_*, python_* and up are Prometheus' or the client's
NAME = re.compile(r"\b(?:grpc_server|signer)_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "info": ("_info",),
    "gauge": ("",),
    "unknown": ("",),
}


@pytest.fixture(scope="module")
def exposed(hsm: Hsm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """Sample names a real server's /metrics offers, series with no sample yet included
    (the exposition carries HELP and TYPE for them)."""
    tmp = tmp_path_factory.mktemp("metric-names")
    config = write_config(tmp / "signer.toml", hsm, f"sqlite:///{tmp / 'signer.db'}")
    server = start_server(config, tmp / "server.log")
    try:
        assert server.metrics is not None
        with urllib.request.urlopen(f"http://{server.metrics}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        assert server.stop() == 0
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + s for s in SUFFIXES[family.type])
        names.update(s.name for s in family.samples)
    yield names


def dashboard_queries() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            queries.append(var["definition"])
    return queries


def referenced(text: str) -> set[str]:
    return set(NAME.findall(re.sub(r'"[^"]*"', '""', text)))


def test_the_dashboard_and_alerts_query_only_exposed_metrics(exposed: set[str]) -> None:
    queries = dashboard_queries()
    assert len(queries) > 10
    in_dashboard = set().union(*(referenced(q) for q in queries))
    in_rules = referenced(RULES.read_text())
    assert {
        "grpc_server_handled_total",
        "signer_hsm_up",
        "signer_refusals_total",
        "signer_key_not_after_timestamp_seconds",
    } <= in_rules
    assert not (in_dashboard | in_rules) - exposed


def test_the_metrics_the_issue_names_are_exposed(exposed: set[str]) -> None:
    assert {
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds_bucket",
        "signer_signatures_total",
        "signer_hsm_operation_seconds_bucket",
        "signer_hsm_errors_total",
        "signer_verifications_total",
        "signer_refusals_total",
        "signer_key_not_after_timestamp_seconds",
        "signer_hsm_up",
        "signer_build_info",
    } <= exposed


def test_the_readme_metrics_table_lists_every_exposed_metric(exposed: set[str]) -> None:
    """A metric added without its row in the README's table fails here."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| metric | type | labels | meaning |") :]
    table = table[: table.index("\n\n")]
    listed = set(re.findall(r"`([a-z0-9_]+)`", table))
    ours = {re.sub(r"_(bucket|count|sum)$", "", n) for n in exposed if NAME.fullmatch(n)}
    assert not ours - listed


def test_every_dashboard_query_parses(tmp_path: Path) -> None:
    """Each query, its Grafana variables filled in, as a recording rule promtool parses."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed (Debian package prometheus)")
    lines = ["groups:", "  - name: dashboard", "    rules:"]
    for i, q in enumerate(dashboard_queries()):
        if q.startswith("label_values("):  # Grafana's own function: check its selector
            q = q[len("label_values(") : q.rindex(",")]
        q = q.replace("$__rate_interval", "5m").replace("$job", ".*").replace("$instance", ".*")
        lines += [f"      - record: dashboard:query{i}", f"        expr: {json.dumps(q)}"]
    rules = tmp_path / "dashboard_rules.yml"
    rules.write_text("\n".join(lines) + "\n")
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_is_importable_json() -> None:
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"] and board["schemaVersion"] >= 36
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        assert {"h", "w", "x", "y"} <= p["gridPos"].keys()
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}" and t["refId"]
