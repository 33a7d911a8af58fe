"""A model's upgrade graph as Graphviz DOT, for a human deciding how to move a fleet.

Sorted, so the same data always gives the same text; every ID and text is quoted and
escaped, so no CPL content can break out of its string. See docs/cpl.md (what the shapes
mean).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from signer.cpl.paths import UpgradeGraph

_NO_COUNTS: Mapping[str, int] = MappingProxyType({})


def to_dot(
    graph: UpgradeGraph,
    *,
    model: str | None = None,
    device_counts: Mapping[str, int] = _NO_COUNTS,
    manufacturer_code: int | None = None,
) -> str:
    """DOT text of the entries of ``model`` (all entries when None) and their neighbours.

    ``model`` matches ``CplEntry.model`` exactly; ``manufacturer_code`` narrows it when two
    manufacturers use the same model name. ``device_counts`` maps an entry ID to the number
    of devices on it; an ID that is neither an entry nor referenced by one is drawn as an
    unknown node only in the whole-CPL view (``model`` None), since its model is unknown.
    """
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

    name = "CPL upgrade graph" + (f" of {model}" if model is not None else "")
    out = [
        f"digraph {_quote(name)} {{",
        "  rankdir=LR;",
        '  node [shape=box, fontname="Helvetica"];',
    ]
    for node_id in sorted(nodes):
        out.append(f"  {_quote(node_id)} [{_attributes(graph, node_id, selected, device_counts)}];")
    for a, b in edges:
        out.append(f"  {_quote(a)} -> {_quote(b)};")
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
