"""Upgrade pathways on generated graphs.

Expected paths are written out by hand from the drawn graph, or come from a brute-force
enumeration of every simple path (``all_shortest``), never from the code under test.
"""

from __future__ import annotations

import itertools
import random

import pytest

from signer.cpl.model import same_model
from signer.cpl.paths import PathEvaluator, UpgradeGraph
from signer.errors import InvalidInput, NotFound
from tests.support.cpl_factory import digest, entry, graph


def both(g: UpgradeGraph, source: str, target: str) -> list[str] | None:
    """The forward search and the batch evaluator must agree; return their answer."""
    forward = g.shortest_path(source, target)
    assert PathEvaluator(g, target).path_from(source) == forward
    return forward


# --- chains -------------------------------------------------------------------------------


def chain() -> UpgradeGraph:
    # A -> B -> C -> D, A is an N/A root
    return graph({"A": [], "B": ["A"], "C": ["B"], "D": ["C"]})


def test_chain_path_runs_through_every_version_in_order() -> None:
    g = chain()
    assert both(g, "A", "D") == ["A", "B", "C", "D"]
    assert both(g, "B", "D") == ["B", "C", "D"]
    assert both(g, "C", "D") == ["C", "D"]


def test_chain_direct_permission_is_only_the_recorded_predecessor() -> None:
    g = chain()
    assert g.is_permitted("C", "D")
    assert not g.is_permitted("B", "D")  # skipping a version is not permitted
    assert not g.is_permitted("D", "C")  # edges have a direction
    ev = PathEvaluator(g, "D")
    assert ev.permitted("C") and not ev.permitted("A") and not ev.permitted("D")
    assert [ev.distance(x) for x in "ABCD"] == [3, 2, 1, 0]


def test_already_on_target_is_a_one_element_path_and_downgrades_have_none() -> None:
    g = chain()
    assert both(g, "D", "D") == ["D"]
    assert both(g, "D", "A") is None
    assert both(g, "C", "B") is None


def test_long_chain() -> None:
    ids = [f"E{i:04d}" for i in range(1500)]
    g = UpgradeGraph(entry(b, [a]) for a, b in itertools.pairwise(ids))
    g.add(entry(ids[0], []))
    assert both(g, ids[0], ids[-1]) == ids
    assert PathEvaluator(g, ids[-1]).distance(ids[0]) == 1499


# --- diamonds -----------------------------------------------------------------------------


def test_diamond_smaller_id_sequence_wins_whatever_the_insertion_order() -> None:
    edges = {"S": [], "B": ["S"], "C": ["S"], "T": ["B", "C"]}
    for order in itertools.permutations(edges):
        g = UpgradeGraph(entry(k, edges[k]) for k in order)
        assert both(g, "S", "T") == ["S", "B", "T"]


def test_diamond_tie_is_decided_by_the_first_differing_step_not_the_last() -> None:
    # S -> M -> Z -> T and S -> N -> A -> T: M < N decides, although A < Z.
    g = graph({"S": [], "M": ["S"], "N": ["S"], "Z": ["M"], "A": ["N"], "T": ["Z", "A"]})
    assert both(g, "S", "T") == ["S", "M", "Z", "T"]
    assert both(g, "N", "T") == ["N", "A", "T"]


def test_diamond_shorter_path_beats_smaller_ids() -> None:
    g = graph({"S": [], "A1": ["S"], "A2": ["A1"], "Z": ["S"], "T": ["A2", "Z"]})
    assert both(g, "S", "T") == ["S", "Z", "T"]


# --- cycles -------------------------------------------------------------------------------


def test_cycle_terminates_and_routes_around() -> None:
    # A -> B -> C -> A (a cycle entered from root R), and C -> D
    g = graph({"R": [], "A": ["R", "C"], "B": ["A"], "C": ["B"], "D": ["C"]})
    assert both(g, "R", "D") == ["R", "A", "B", "C", "D"]
    assert both(g, "B", "D") == ["B", "C", "D"]
    assert both(g, "C", "B") == ["C", "A", "B"]
    assert both(g, "D", "A") is None


def test_two_entry_cycle() -> None:
    g = graph({"A": ["B"], "B": ["A"]})
    assert both(g, "A", "B") == ["A", "B"]
    assert both(g, "B", "A") == ["B", "A"]
    assert g.roots() == []


def test_an_entry_cannot_be_its_own_predecessor() -> None:
    with pytest.raises(InvalidInput) as exc:
        entry("A", ["A"])
    assert exc.value.field == "upgrade_from"


# --- unreachable targets ------------------------------------------------------------------


def test_other_component_and_unknown_device_entry_have_no_path() -> None:
    g = graph({"A": [], "B": ["A"], "X": [], "Y": ["X"]})
    assert both(g, "X", "B") is None
    assert both(g, "never-heard-of", "B") is None
    ev = PathEvaluator(g, "B")
    assert ev.distance("Y") is None
    assert not ev.permitted("never-heard-of")
    assert ev.reachable() == {"A", "B"}


def test_target_must_be_an_entry() -> None:
    g = graph({"A": [], "B": ["A", "OLD"]})
    for target in ("nope", "OLD"):  # unknown, and referenced but not on the CPL
        with pytest.raises(NotFound):
            g.shortest_path("A", target)
        with pytest.raises(NotFound):
            PathEvaluator(g, target)


def test_entry_whose_pathway_is_not_recorded_cannot_be_reached() -> None:
    g = UpgradeGraph([entry("A", []), entry("U", None), entry("V", ["U"])])
    assert g.roots() == ["A"]  # U is not an N/A root: its predecessors are unknown
    assert both(g, "A", "U") is None
    assert both(g, "U", "V") == ["U", "V"]


# --- several N/A roots and unknown predecessors ---------------------------------------------


def test_several_roots() -> None:
    g = graph({"R1": [], "R2": [], "R3": [], "X": ["R1", "R2"], "T": ["X"]})
    assert g.roots() == ["R1", "R2", "R3"]
    assert both(g, "R1", "T") == ["R1", "X", "T"]
    assert both(g, "R2", "T") == ["R2", "X", "T"]
    assert both(g, "R3", "T") is None


def test_predecessor_not_on_the_cpl_is_kept_and_reported() -> None:
    g = graph({"B": ["OLD-1"], "C": ["B"], "D": ["OLD-2", "C"]})
    assert g.dangling() == ["OLD-1", "OLD-2"]
    assert "OLD-1" not in g
    assert both(g, "OLD-1", "D") == ["OLD-1", "B", "C", "D"]
    assert both(g, "OLD-2", "D") == ["OLD-2", "D"]
    g.add(entry("OLD-1", []))  # the missing entry arrives later
    assert g.dangling() == ["OLD-2"]
    assert g.roots() == ["OLD-1"]


# --- the entry ID identifies firmware -----------------------------------------------------


def test_equal_version_strings_with_different_hashes_are_different_entries() -> None:
    # MP231: the same firmware version appears on the CPL under different hashes.
    v = "01000000"
    g = UpgradeGraph(
        [
            entry("E0", []),
            entry("E1", [], firmware_version=v, image_hash=digest("build one")),
            entry("E2", ["E0"], firmware_version=v, image_hash=digest("build two")),
            entry("T", ["E1"], firmware_version="02000000"),
        ]
    )
    assert len(g) == 4
    assert g.entry("E1").image_hash != g.entry("E2").image_hash
    assert both(g, "E0", "E2") == ["E0", "E2"]
    assert both(g, "E0", "E1") is None  # same version string, not the same firmware
    assert both(g, "E2", "T") is None
    assert both(g, "E1", "T") == ["E1", "T"]


def test_adding_an_entry_twice() -> None:
    g = chain()
    g.add(entry("B", ["A"]))  # identical: no-op
    assert len(g) == 4
    with pytest.raises(InvalidInput):
        g.add(entry("B", ["A"], image_hash=digest("other")))


def test_cross_model_edges_and_same_model() -> None:
    g = UpgradeGraph([entry("A", []), entry("B", ["A"]), entry("X", ["B"], model="M2")])
    assert g.cross_model_edges() == [("B", "X")]
    assert same_model(g.entry("A"), g.entry("B"))
    assert not same_model(g.entry("B"), g.entry("X"))
    assert not same_model(g.entry("A"), entry("A2", [], manufacturer_code=0x1234))


def test_evaluator_path_is_a_fresh_list() -> None:
    ev = PathEvaluator(chain(), "D")
    first = ev.path_from("A")
    assert first is not None
    first.append("junk")
    assert ev.path_from("A") == ["A", "B", "C", "D"]


# --- random graphs against brute force ----------------------------------------------------


def all_shortest(edges: dict[str, list[str]], source: str, target: str) -> list[str] | None:
    """Enumerate every simple path source -> target, keep the shortest, then the smallest."""
    succ: dict[str, list[str]] = {}
    for node, preds in edges.items():
        for p in preds:
            succ.setdefault(p, []).append(node)
    if source == target:
        return [target]
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in succ.get(path[-1], []):
            if nxt == target:
                found.append([*path, nxt])
            elif nxt not in path:
                walk([*path, nxt])

    walk([source])
    return min(found, key=lambda p: (len(p), p)) if found else None


@pytest.mark.parametrize("seed", range(40))
def test_random_graphs_match_brute_force(seed: int) -> None:
    rnd = random.Random(seed)
    names = [f"n{i}" for i in range(rnd.randint(2, 9))]
    edges = {n: [p for p in names if p != n and rnd.random() < 0.3] for n in names}
    entries = [entry(n, preds) for n, preds in edges.items()]
    rnd.shuffle(entries)
    g = UpgradeGraph(entries)
    for target in names:
        ev = PathEvaluator(g, target)
        for source in names:
            expected = all_shortest(edges, source, target)
            assert g.shortest_path(source, target) == expected, (source, target, edges)
            assert ev.path_from(source) == expected, (source, target, edges)
            assert ev.distance(source) == (None if expected is None else len(expected) - 1)
            assert ev.permitted(source) == (source in edges[target])
