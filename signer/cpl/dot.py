"""A model's upgrade graph as Graphviz DOT, for a human deciding how to move a fleet.

Sorted, so the same data always gives the same text; every ID and text is quoted and
escaped, so no CPL content can break out of its string. Every picture carries a legend (what
the shapes, colours and edges mean) and marks the target entry when one is given; a view of
more than ``MAX_NODES`` nodes is drawn one node per model instead (``models_dot``), since
Graphviz takes minutes over thousands. See docs/cpl.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from signer.cpl.paths import UpgradeGraph

_NO_COUNTS: Mapping[str, int] = MappingProxyType({})


MAX_NODES = 400
"""Above this many nodes Graphviz takes minutes: the picture is drawn one node per model."""

TARGET_ATTRS = 'color="red", penwidth=3, fontcolor="red"'

LEGEND = (
    "  subgraph cluster_legend {",
    '    label="Legend"; fontname="Helvetica"; style="rounded"; color="gray60";',
    '    "legend: entry" [label="CPL entry\\nfw, hw"];',
    '    "legend: root" [label="N/A: no predecessor", peripheries=2];',
    '    "legend: unrecorded" [label="pathway not recorded", style="dashed"];',
    '    "legend: unknown" [label="not on the CPL", shape=ellipse, style="dashed"];',
    '    "legend: devices" [label="N devices run it", style="filled", fillcolor="lightblue"];',
    '    "legend: neighbour" [label="other model (neighbour)", color="gray50", '
    'fontcolor="gray50"];',
    f'    "legend: target" [label="target entry", {TARGET_ATTRS}];',
    '    "legend: entry" -> "legend: root" [label="a device on the tail may take the head"];',
    "  }",
)


def node_count(
    graph: UpgradeGraph,
    *,
    model: str | None = None,
    device_counts: Mapping[str, int] = _NO_COUNTS,
) -> int:
    """How many nodes ``to_dot`` would draw: decides whether it is drawn per model."""
    return len(_selection(graph, model, None, device_counts)[1])


def _selection(
    graph: UpgradeGraph,
    model: str | None,
    manufacturer_code: int | None,
    device_counts: Mapping[str, int],
) -> tuple[set[str], set[str], list[tuple[str, str]]]:
    selected = {
        e.entry_id
        for e in graph.entries()
        if (model is None or e.model == model)
        and (manufacturer_code is None or e.manufacturer_code == manufacturer_code)
    }
    edges = sorted((a, b) for a, b in graph.edges() if a in selected or b in selected)
    nodes = set(selected)
    for a, b in edges:
        nodes.add(a)
        nodes.add(b)
    if model is None and manufacturer_code is None:
        nodes.update(i for i, n in device_counts.items() if n > 0)
    return selected, nodes, edges


def models_dot(
    graph: UpgradeGraph,
    *,
    device_counts: Mapping[str, int] = _NO_COUNTS,
    target: str | None = None,
    max_nodes: int = MAX_NODES,
) -> tuple[str, int]:
    """The CPL drawn one node per model (manufacturer code and model: its entry and device
    counts), an edge where some entry of one model may be upgraded from one of the other;
    at most ``max_nodes`` models, those with the most devices (then entries) first, the
    target's model always. Returns the DOT text and how many models were left out."""
    entries: dict[tuple[int, str], int] = {}
    devices: dict[tuple[int, str], int] = {}
    of: dict[str, tuple[int, str]] = {}
    for e in graph.entries():
        key = (e.manufacturer_code, e.model)
        of[e.entry_id] = key
        entries[key] = entries.get(key, 0) + 1
        devices[key] = devices.get(key, 0) + device_counts.get(e.entry_id, 0)
    target_model = of.get(target) if target is not None else None
    ranked = sorted(entries, key=lambda k: (k != target_model, -devices[k], -entries[k], k))
    shown = set(ranked[:max_nodes])
    links = sorted(
        {
            (of[a], of[b])
            for a, b in graph.edges()
            if a in of and of[a] != of[b] and of[a] in shown and of[b] in shown
        }
    )
    out = [
        f"digraph {_quote('CPL upgrade graph by model')} {{",
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for key in sorted(shown):
        code, name = key
        lines = [f"{code:04X} {name}", f"{entries[key]} entries"]
        attrs = []
        if devices[key]:
            lines.append(f"{devices[key]} device{'s' if devices[key] != 1 else ''}")
            attrs += ['style="filled"', 'fillcolor="lightblue"']
        if key == target_model:
            lines.append(f"target {target}")
            attrs.append(TARGET_ATTRS)
        label = "\\n".join(_escape(line) for line in lines)
        shown_attrs = ", ".join(['label="' + label + '"', *attrs])
        out.append(f"  {_quote(_model_id(key))} [{shown_attrs}];")
    for a, b in links:
        out.append(f"  {_quote(_model_id(a))} -> {_quote(_model_id(b))};")
    out.extend(LEGEND)
    out.append("}")
    return "\n".join(out) + "\n", len(entries) - len(shown)


def _model_id(key: tuple[int, str]) -> str:
    return f"model {key[0]:04X} {key[1]}"


def to_dot(
    graph: UpgradeGraph,
    *,
    model: str | None = None,
    device_counts: Mapping[str, int] = _NO_COUNTS,
    manufacturer_code: int | None = None,
    target: str | None = None,
) -> str:
    """DOT text of the entries of ``model`` (all entries when None) and their neighbours.

    ``model`` matches ``CplEntry.model`` exactly; ``manufacturer_code`` narrows it when two
    manufacturers use the same model name. ``device_counts`` maps an entry ID to the number
    of devices on it; an ID that is neither an entry nor referenced by one is drawn as an
    unknown node only in the whole-CPL view (``model`` None), since its model is unknown.
    """
    selected, nodes, edges = _selection(graph, model, manufacturer_code, device_counts)
    if target is not None:
        nodes.add(target)
    name = "CPL upgrade graph" + (f" of {model}" if model is not None else "")
    out = [
        f"digraph {_quote(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node_id in sorted(nodes):
        attrs = _attributes(graph, node_id, selected, device_counts)
        if node_id == target:
            attrs += f", {TARGET_ATTRS}"
        out.append(f"  {_quote(node_id)} [{attrs}];")
    for a, b in edges:
        out.append(f"  {_quote(a)} -> {_quote(b)};")
    out.extend(LEGEND)
    out.append("}")
    return "\n".join(out) + "\n"


def _attributes(
    graph: UpgradeGraph, node_id: str, selected: set[str], device_counts: Mapping[str, int]
) -> str:
    entry = graph.get(node_id)
    lines = [node_id]
    styles = []
    attrs: list[str] = []
    if entry is None:
        lines.append("not on the CPL")
        attrs.append("shape=ellipse")
        styles.append("dashed")
    else:
        lines.append(f"fw {entry.firmware_version}")
        if entry.hardware_version is not None:
            lines.append(f"hw 0x{entry.hardware_version:04X}")
        if node_id not in selected:
            lines.append(f"{entry.device_type.value} {entry.model}")
            attrs.append('color="gray50"')
            attrs.append('fontcolor="gray50"')
        if entry.is_root:
            lines.append("N/A: no predecessor")
            attrs.append("peripheries=2")
        elif not entry.pathway_known:
            lines.append("pathway not recorded")
            styles.append("dashed")
    count = device_counts.get(node_id, 0)
    if count > 0:
        lines.append(f"{count} device{'s' if count != 1 else ''}")
        styles.append("filled")
        attrs.append('fillcolor="lightblue"')
    label = "\\n".join(_escape(line) for line in lines)
    attrs.insert(0, f'label="{label}"')
    if styles:
        attrs.append(f'style="{",".join(styles)}"')
    return ", ".join(attrs)


def _escape(text: str) -> str:
    """Inside a DOT quoted string: backslash and quote escaped, line breaks made visible."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")


def _quote(text: str) -> str:
    return f'"{_escape(text)}"'
