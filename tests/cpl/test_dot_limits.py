"""Issue 15: the picture has a legend and marks the target; a large CPL is drawn per model,
so its node count (what Graphviz's time grows with) stays bounded."""

from __future__ import annotations

import re

from signer.cpl.dot import LEGEND, MAX_NODES, models_dot, node_count, to_dot
from signer.cpl.paths import UpgradeGraph
from tests.support.cpl_factory import entry, graph

NODE = re.compile(r'^  "([^"]+)" \[(.*)\];$', re.M)


def nodes(text: str) -> dict[str, str]:
    """Top-level node statements (two-space indent): the legend's are indented deeper."""
    return dict(NODE.findall(text))


def big_cpl(models: int = 2_000, per_model: int = 10) -> UpgradeGraph:
    """20,000 entries: release chains of ``per_model`` entries per model."""
    entries = []
    for m in range(models):
        for i in range(per_model):
            upgrade_from = () if i == 0 else (f"M{m}-{i - 1}",)
            entries.append(entry(f"M{m}-{i}", upgrade_from, model=f"MODEL-{m}"))
    return UpgradeGraph(entries)


def test_every_picture_has_a_legend_naming_each_style() -> None:
    text = to_dot(graph({"A": [], "B": ["A"], "C": None}))  # type: ignore[dict-item]
    legend = "\n".join(LEGEND)
    assert legend in text
    for meaning in (
        "N/A: no predecessor",
        "pathway not recorded",
        "not on the CPL",
        "devices run it",
        "other model (neighbour)",
        "target entry",
        "may take the head",
    ):
        assert meaning in legend
    assert "legend: entry" not in nodes(text)  # inside the legend's cluster only


def test_the_target_is_drawn_distinctly() -> None:
    g = graph({"A": [], "B": ["A"], "C": ["B"]})
    drawn = nodes(to_dot(g, target="C"))
    assert 'color="red", penwidth=3' in drawn["C"]
    assert all("penwidth" not in drawn[n] for n in ("A", "B"))
    assert 'color="red"' not in to_dot(g).split("subgraph cluster_legend")[0]


def test_a_20000_entry_cpl_is_drawn_per_model_with_bounded_nodes() -> None:
    g = big_cpl()
    assert len(g) == 20_000
    assert node_count(g) == 20_000 > MAX_NODES
    counts = {"M7-3": 40, "M1999-9": 2}
    text, left_out = models_dot(g, device_counts=counts, target="M42-9", max_nodes=MAX_NODES)
    drawn = nodes(text)
    assert len(drawn) == MAX_NODES and left_out == 2_000 - MAX_NODES
    # the target's model and the models devices are on are never the ones left out
    assert "target M42-9" in drawn["model 121D MODEL-42"]
    assert "40 devices" in drawn["model 121D MODEL-7"]
    assert "2 devices" in drawn["model 121D MODEL-1999"]
    assert "\n".join(LEGEND) in text


def test_models_are_linked_where_an_entry_of_one_may_come_from_the_other() -> None:
    g = UpgradeGraph(
        [
            entry("A-1", (), model="A"),
            entry("A-2", ("A-1",), model="A"),
            entry("B-1", ("A-2",), model="B"),
        ]
    )
    text, left_out = models_dot(g)
    assert left_out == 0
    assert '  "model 121D A" -> "model 121D B";' in text.splitlines()
    assert "2 entries" in nodes(text)["model 121D A"]
