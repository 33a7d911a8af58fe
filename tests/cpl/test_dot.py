"""DOT output: read back by a small tokenizer written from the DOT grammar, and by ``dot``
itself when Graphviz is installed (it is not a project dependency)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field

import pytest
from lxml import etree

from signer.cpl.dot import to_dot
from signer.cpl.paths import UpgradeGraph
from tests.support.cpl_factory import entry

_TOKEN = re.compile(r'\s*(?:"((?:\\.|[^"\\])*)"|(->|[{}\[\];,=])|([A-Za-z0-9_.]+))', re.S)


@dataclass
class Dot:
    name: str
    nodes: dict[str, dict[str, str]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)


def _unquote(text: str) -> str:
    # DOT: inside a quoted string only \" is an escape; we also read \\ back as one backslash
    return re.sub(r'\\(["\\])', r"\1", text)


LEGEND = re.compile(r"\n  subgraph cluster_legend \{\n.*?\n  \}", re.S)


def read_dot(text: str) -> Dot:
    """Just the subset ``to_dot`` writes: digraph "name" { stmt; ... }; the legend (one
    ``subgraph cluster_legend``, checked by ``test_every_picture_has_a_legend``) left out."""
    legends = LEGEND.findall(text)
    assert len(legends) == 1, "one legend"
    text = LEGEND.sub("", text)
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN.match(text, pos)
        assert m, f"cannot tokenize at {text[pos : pos + 30]!r}"
        quoted, punct, word = m.groups()
        tokens.append(
            ("id", _unquote(quoted))
            if quoted is not None
            else ("p", punct)
            if punct
            else ("id", word)
        )
        pos = m.end()
    assert tokens[0] == ("id", "digraph") and tokens[2] == ("p", "{") and tokens[-1] == ("p", "}")
    dot = Dot(tokens[1][1])
    stmt: list[tuple[str, str]] = []
    for tok in tokens[3:-1]:
        if tok != ("p", ";"):
            stmt.append(tok)
            continue
        if len(stmt) == 3 and stmt[1] == ("p", "->"):
            dot.edges.append((stmt[0][1], stmt[2][1]))
        elif len(stmt) >= 2 and stmt[1] == ("p", "[") and stmt[0][1] not in ("node", "edge"):
            attrs: dict[str, str] = {}
            body = [t for t in stmt[2:-1] if t != ("p", ",")]
            for i in range(0, len(body), 3):
                key, eq, value = body[i : i + 3]
                assert eq == ("p", "=")
                attrs[key[1]] = value[1]
            dot.nodes[stmt[0][1]] = attrs
        stmt = []
    assert not stmt
    return dot


def fleet() -> UpgradeGraph:
    # model M1: R1, R2 roots -> B -> C ; B also from OLD (not on the CPL); U: pathway unknown
    # model M2: X, upgraded from C (a cross-model edge)
    return UpgradeGraph(
        [
            entry("R1", []),
            entry("R2", []),
            entry("B", ["R1", "R2", "OLD"]),
            entry("C", ["B"], firmware_version="00000003"),
            entry("U", None),
            entry("X", ["C"], model="M2"),
            entry("Y", [], model="M2"),
        ]
    )


def test_structure_of_a_models_graph() -> None:
    dot = read_dot(to_dot(fleet(), model="M1", device_counts={"B": 12, "C": 1, "Y": 5}))
    assert set(dot.nodes) == {"R1", "R2", "B", "C", "U", "OLD", "X"}  # Y: other model, unlinked
    assert sorted(dot.edges) == [("B", "C"), ("C", "X"), ("OLD", "B"), ("R1", "B"), ("R2", "B")]
    n = dot.nodes
    assert n["B"]["label"].endswith("\\n12 devices") and "filled" in n["B"]["style"]
    assert n["C"]["label"].endswith("\\n1 device") and "fw 00000003" in n["C"]["label"]
    assert "style" not in n["R1"] and n["R1"]["peripheries"] == "2"
    assert n["OLD"]["shape"] == "ellipse" and n["OLD"]["style"] == "dashed"
    assert n["U"]["style"] == "dashed" and "not recorded" in n["U"]["label"]
    assert "M2" in n["X"]["label"] and n["X"]["color"] == "gray50"
    assert "peripheries" not in n["B"]


def test_output_is_stable_whatever_the_insertion_order() -> None:
    g = fleet()
    again = UpgradeGraph(reversed(list(g.entries())))
    counts = {"C": 3, "B": 4}
    assert to_dot(g, device_counts=counts) == to_dot(
        again, device_counts=dict(reversed(counts.items()))
    )


def test_ids_and_texts_cannot_escape_their_strings() -> None:
    g = UpgradeGraph([entry("A", [], model='Acme "Super" \\ Meter', firmware_version='v1"\\')])
    evil = 'x"]; "pwned" -> "A'
    text = to_dot(g, device_counts={evil: 2})
    dot = read_dot(text)
    assert set(dot.nodes) == {"A", evil}
    assert dot.edges == []
    # a line break in an ID is written as \n, so every statement stays on its own line
    broken = to_dot(g, device_counts={"two\nlines": 1})
    assert set(read_dot(broken).nodes) == {"A", "two\\nlines"}
    assert all(line.startswith(("digraph", "  ", "}")) for line in broken.splitlines())
    assert dot.name == "CPL upgrade graph"
    assert 'fw v1\\"\\\\\\n' in text  # in the file: quote and backslash escaped
    assert dot.nodes["A"]["label"].split("\\n")[:2] == ["A", 'fw v1"\\']  # read back: as given
    named = read_dot(to_dot(g, model='Acme "Super" \\ Meter'))
    assert named.name == 'CPL upgrade graph of Acme "Super" \\ Meter'
    assert set(named.nodes) == {"A"}


def test_no_devices_no_filled_nodes() -> None:
    dot = read_dot(to_dot(fleet(), model="M1", device_counts={"B": 0}))
    assert not any("filled" in a.get("style", "") for a in dot.nodes.values())


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_dot_renders_it_to_svg() -> None:
    evil = 'x"];\n"pwned" -> "A'
    for text, expected in [
        (to_dot(fleet(), model="M1", device_counts={"B": 12}), 7),
        (to_dot(fleet(), device_counts={"B": 12, evil: 1}), 9),
    ]:
        run = subprocess.run(
            ["dot", "-Tsvg"], input=text.encode(), capture_output=True, timeout=60, check=False
        )
        assert run.returncode == 0, run.stderr.decode()
        assert b"Warning" not in run.stderr and b"Error" not in run.stderr, run.stderr
        svg = etree.fromstring(run.stdout)
        ns = {"s": "http://www.w3.org/2000/svg"}
        drawn = svg.xpath("//s:g[@class='node']/s:title/text()", namespaces=ns)
        titles = [t for t in drawn if not t.startswith("legend: ")]
        assert len(titles) == expected and len(drawn) - len(titles) == 7  # the legend's
        assert "B" in titles and "OLD" in titles
        edges = svg.xpath("//s:g[@class='edge']", namespaces=ns)
        assert len(edges) == 5 + 1  # the legend's one edge
