"""Upgrade pathways: which CPL entry a device may move to next, and the shortest way to a target.

An MP231 "upgrade from" is an edge predecessor -> entry; the path conventions (ends
included, ties broken by ID order, unknown IDs kept as nodes) are fixed here so every caller
agrees. See docs/cpl.md.
"""

from __future__ import annotations

from bisect import insort
from collections import deque
from collections.abc import Iterable, Iterator

from signer.cpl.model import CplEntry, model_key
from signer.errors import InvalidInput, NotFound


class UpgradeGraph:
    """The upgrade pathways of a set of CPL entries; grows with ``add``, never shrinks."""

    def __init__(self, entries: Iterable[CplEntry] = ()) -> None:
        self._entries: dict[str, CplEntry] = {}
        self._successors: dict[str, list[str]] = {}  # predecessor -> sorted entry IDs
        for entry in entries:
            self.add(entry)

    def add(self, entry: CplEntry) -> None:
        """Add an entry; adding an equal entry again is a no-op, a different one is refused."""
        known = self._entries.get(entry.entry_id)
        if known is not None:
            if known == entry:
                return
            raise InvalidInput(
                f"entry {entry.entry_id} is already in the graph with other content",
                field="entry_id",
            )
        self._entries[entry.entry_id] = entry
        for pred in entry.upgrade_from:
            insort(self._successors.setdefault(pred, []), entry.entry_id)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, entry_id: str) -> CplEntry | None:
        return self._entries.get(entry_id)

    def entry(self, entry_id: str) -> CplEntry:
        """The entry, or ``NotFound``: a target must be on the CPL."""
        found = self._entries.get(entry_id)
        if found is None:
            raise NotFound(f"CPL entry {entry_id} is not on the CPL")
        return found

    def entries(self) -> Iterator[CplEntry]:
        """All entries, in entry-ID order."""
        for entry_id in sorted(self._entries):
            yield self._entries[entry_id]

    def successors(self, node_id: str) -> tuple[str, ...]:
        """The entries a device on ``node_id`` may be upgraded to directly, in ID order."""
        return tuple(self._successors.get(node_id, ()))

    def predecessors(self, entry_id: str) -> frozenset[str]:
        """The entries (or unknown IDs) a device may come from to take ``entry_id``."""
        entry = self._entries.get(entry_id)
        return entry.upgrade_from if entry is not None else frozenset()

    def edges(self) -> Iterator[tuple[str, str]]:
        """Every (predecessor, entry) pair, sorted."""
        for pred in sorted(self._successors):
            for succ in self._successors[pred]:
                yield pred, succ

    def dangling(self) -> list[str]:
        """IDs some entry may be upgraded from that have no entry of their own, sorted."""
        return sorted(p for p in self._successors if p not in self._entries)

    def roots(self) -> list[str]:
        """The MP231 "N/A" entries (known to have no predecessor), sorted."""
        return sorted(e.entry_id for e in self._entries.values() if e.is_root)

    def cross_model_edges(self) -> list[tuple[str, str]]:
        """Edges between entries of different models: legal to follow, odd enough to show."""
        out = []
        for pred, succ in self.edges():
            a = self._entries.get(pred)
            if a is not None and model_key(a) != model_key(self._entries[succ]):
                out.append((pred, succ))
        return out

    def is_permitted(self, from_id: str, to_id: str) -> bool:
        """True when ``to_id``'s entry lists ``from_id``: one direct, permitted upgrade."""
        return from_id in self.predecessors(to_id)

    def shortest_path(self, from_id: str, to_id: str) -> list[str] | None:
        """The shortest path from a device's entry to ``to_id`` (see the module conventions).

        ``None`` when there is none, also when ``from_id`` is unknown to the graph. Raises
        ``NotFound`` when ``to_id`` is not an entry. Breadth-first search from ``from_id``
        visiting successors in ID order, which yields the smallest of the shortest paths.
        """
        self.entry(to_id)
        if from_id == to_id:
            return [to_id]
        parent: dict[str, str] = {from_id: from_id}
        queue = deque([from_id])
        while queue:
            node = queue.popleft()
            for succ in self._successors.get(node, ()):
                if succ in parent:
                    continue
                parent[succ] = node
                if succ == to_id:
                    path = [succ]
                    while path[-1] != from_id:
                        path.append(parent[path[-1]])
                    path.reverse()
                    return path
                queue.append(succ)
        return None


class PathEvaluator:
    """Paths of many devices to one target, from ONE reverse breadth-first search.

    The search runs once from the target over ``upgrade_from`` and keeps, for every entry that
    can reach the target, its distance and the next entry on the smallest shortest path. After
    that ``permitted`` and ``distance`` are dictionary lookups, and ``path_from`` walks the
    next-entry links the first time an entry is asked for and is a lookup afterwards. It
    reflects the graph as it was when built.
    """

    def __init__(self, graph: UpgradeGraph, target_id: str) -> None:
        self.target: CplEntry = graph.entry(target_id)
        self.target_id = target_id
        distance: dict[str, int] = {target_id: 0}
        next_hop: dict[str, str] = {}
        queue = deque([target_id])
        while queue:
            node = queue.popleft()
            d = distance[node] + 1
            for pred in graph.predecessors(node):
                seen = distance.get(pred)
                if seen is None:
                    distance[pred] = d
                    next_hop[pred] = node
                    queue.append(pred)
                elif seen == d and node < next_hop[pred]:
                    next_hop[pred] = node  # same length, smaller ID first: the tie-break
        self._distance = distance
        self._next = next_hop
        self._paths: dict[str, tuple[str, ...]] = {target_id: (target_id,)}

    def permitted(self, entry_id: str) -> bool:
        """True when a device on ``entry_id`` may take the target directly."""
        return entry_id in self.target.upgrade_from

    def distance(self, entry_id: str) -> int | None:
        """Upgrades needed to reach the target: 0 on it, None when there is no path."""
        return self._distance.get(entry_id)

    def path_from(self, entry_id: str) -> list[str] | None:
        """Same answer as ``graph.shortest_path(entry_id, target)``, without a search."""
        path = self._paths.get(entry_id)
        if path is None:
            if entry_id not in self._distance:
                return None
            walk = [entry_id]
            nxt = self._next
            while walk[-1] != self.target_id:
                walk.append(nxt[walk[-1]])
            path = self._paths[entry_id] = tuple(walk)
        return list(path)

    def reachable(self) -> frozenset[str]:
        """Every entry (or unknown ID) from which the target can be reached, target included."""
        return frozenset(self._distance)
