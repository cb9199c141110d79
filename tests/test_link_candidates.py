"""Candidate graph on hand-made points: exact neighbours, hyper-edges, features."""

from __future__ import annotations

import numpy as np
import pytest

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link import LinkConfig, build_candidates


def pairs(graph) -> set[tuple[int, int]]:
    return set(map(tuple, graph.edges.tolist()))


def points(rows: list[tuple[int, float, float]], ids=None, sequence: str = "") -> Detections:
    arr = np.asarray(rows, float)
    return Detections.from_arrays(arr[:, 0].astype(int), arr[:, 1:], ids=ids, sequence=sequence)


# frame 0: ids 0-3; frame 1: ids 4, 5
SCENE = [(0, 0, 0), (0, 10, 0), (0, 0, 10), (0, 100, 100), (1, 1, 0), (1, 99, 98)]


def test_k_nearest_previous_detections_exactly() -> None:
    det = points(SCENE)
    graph = build_candidates(det, config=LinkConfig(k=3, divisions=False))
    # 4 at (1,0): nearest 0 (1), 1 (9), 2 (~10.05); 5 at (99,98): 3 (~2.2), 1 (~132.4), 2
    assert pairs(graph) == {(0, 4), (1, 4), (2, 4), (3, 5), (1, 5), (2, 5)}
    graph = build_candidates(det, config=LinkConfig(k=2, divisions=False))
    assert pairs(graph) == {(0, 4), (1, 4), (3, 5), (1, 5)}
    np.testing.assert_allclose(
        sorted(graph.edge_distance), sorted([1, 9, np.hypot(1, 2), np.hypot(89, 98)])
    )


def test_max_distance_and_voxel_size() -> None:
    det = points(SCENE)
    graph = build_candidates(det, config=LinkConfig(k=3, max_distance=9.5, divisions=False))
    assert pairs(graph) == {(0, 4), (1, 4), (3, 5)}
    # halving x brings 2 at (0, 10) to 5.1 from 4, nearer than 1 at (10, 0)
    scaled = build_candidates(det, config=LinkConfig(k=2, voxel_size=(1, 0.5), divisions=False))
    assert {p for p, c in pairs(scaled) if c == 4} == {0, 2}
    np.testing.assert_allclose(scaled.positions[2], [0, 5])
    np.testing.assert_allclose(scaled.pixel_positions()[2], [0, 10])


def test_hyper_edges_are_every_pair_of_candidate_children() -> None:
    # parent 0 at the origin; three children close to it, one far child
    det = points([(0, 0, 0), (0, 50, 50), (1, 2, 0), (1, 0, 4), (1, -2, 0), (1, 50, 52)])
    graph = build_candidates(det, config=LinkConfig(k=1))
    assert pairs(graph) == {(0, 2), (0, 3), (0, 4), (1, 5)}
    hyper = {(p, *sorted((a, b))) for p, a, b in graph.hyper.tolist()}
    assert hyper == {(0, 2, 3), (0, 2, 4), (0, 3, 4)}
    # hyper features: distance from parent to the children's midpoint
    by_key = {
        (p, *sorted((a, b))): d
        for (p, a, b), d in zip(graph.hyper.tolist(), graph.hyper_distance, strict=True)
    }
    assert by_key[(0, 2, 4)] == pytest.approx(0.0)
    assert by_key[(0, 2, 3)] == pytest.approx(np.hypot(1, 2))
    # each hyper-edge points at its own two regular edges
    e = graph.edges
    for (p, a, b), (i, j) in zip(graph.hyper.tolist(), graph.hyper_edges, strict=True):
        assert {tuple(e[i]), tuple(e[j])} == {(p, a), (p, b)}
    assert build_candidates(det, config=LinkConfig(k=1, divisions=False)).num_hyper == 0


def test_association_features() -> None:
    det = points([(0, 0, 0), (1, 1, 0), (1, -1, 0)])
    assoc = Associations.from_arrays(np.array([0]), np.array([1]), np.array([0.8]))
    graph = build_candidates(det, assoc, LinkConfig(k=1))
    score = dict(zip(map(tuple, graph.edges.tolist()), graph.edge_association, strict=True))
    assert score == {(0, 1): pytest.approx(0.8), (0, 2): 0.0}
    assert graph.hyper_association.tolist() == pytest.approx([0.4])
    assert build_candidates(det, config=LinkConfig(k=1)).edge_association is None


def test_frame_gaps_empty_frames_and_sequences() -> None:
    # frames 0, 1, 3 (2 is empty)
    det = points([(0, 0, 0), (1, 1, 0), (3, 2, 0)])
    assert pairs(build_candidates(det, config=LinkConfig())) == {(0, 1)}
    gapped = build_candidates(det, config=LinkConfig(max_gap=2))
    assert pairs(gapped) == {(0, 1), (1, 2)}
    assert sorted(gapped.edge_dt.tolist()) == [1, 2]
    wide = build_candidates(det, config=LinkConfig(max_gap=3))
    assert pairs(wide) == {(0, 1), (1, 2), (0, 2)}
    assert wide.num_hyper == 0  # children of a parent in different frames never pair up
    # two sequences never link to each other
    a = points([(0, 0, 0), (1, 0, 1)], ids=[0, 1], sequence="a")
    b = points([(0, 0, 0.5), (1, 0, 1.5)], ids=[2, 3], sequence="b")
    graph = build_candidates(Detections.concat([a, b]), config=LinkConfig(k=3))
    assert pairs(graph) == {(0, 1), (2, 3)}


def test_with_links_adds_missing_edges_and_hyper_edges() -> None:
    det = points([(0, 0, 0), (0, 50, 0), (1, 1, 0), (1, 51, 0)])
    graph = build_candidates(det, config=LinkConfig(k=1))
    assert pairs(graph) == {(0, 2), (1, 3)}
    rows = graph.rows_of
    bigger, e_idx, h_idx = graph.with_links(
        rows(np.array([0, 3])).reshape(1, 2), rows(np.array([0, 3, 2])).reshape(1, 3)
    )
    assert pairs(bigger) == {(0, 2), (1, 3), (0, 3)}
    assert tuple(bigger.edges[e_idx[0]]) == (0, 3)
    assert sorted(bigger.hyper[h_idx[0]].tolist()[1:]) == [2, 3]
    assert bigger.edge_distance[e_idx[0]] == pytest.approx(51.0)


def test_bad_voxel_size_is_refused() -> None:
    with pytest.raises(InputError, match="--voxel-size.*a 2D movie needs 2"):
        build_candidates(points(SCENE), config=LinkConfig(voxel_size=(1, 1, 1)))
