"""Costs: normalisation per sequence and link kind, weights, free appear/disappear."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link import LinkConfig, build_candidates, compute_costs
from attrackt.link.candidates import candidate_links


def movie(seed: int = 0, frames: int = 4, n: int = 10, sequence: str = "") -> Detections:
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(frames), n)
    return Detections.from_arrays(
        t,
        rng.uniform(0, 100, (len(t), 2)),
        ids=np.arange(len(t)) + seed * 1000,
        sequence=sequence,
    )


def test_default_costs_are_normalised_distances_per_kind() -> None:
    graph = build_candidates(movie())
    costs = compute_costs(graph, LinkConfig())
    for values in (costs.edge, costs.hyper):
        assert values.mean() == pytest.approx(0, abs=1e-12)
        assert values.std() == pytest.approx(1)
    # monotone in the raw distance
    order = np.argsort(graph.edge_distance)
    assert np.all(np.diff(costs.edge[order]) >= -1e-12)


def test_normalisation_is_per_sequence() -> None:
    a = movie(0, sequence="a")
    b = movie(1, sequence="b")
    b = b.with_columns(x=b.table["x"] * 10)  # a sequence with ten times larger moves
    graph = build_candidates(Detections.concat([a, b]))
    costs = compute_costs(graph, LinkConfig())
    seq = graph.sequence[graph.edge_rows[:, 0]]
    for code in (0, 1):
        assert costs.edge[seq == code].mean() == pytest.approx(0, abs=1e-12)
        assert costs.edge[seq == code].std() == pytest.approx(1)


def test_raw_costs_weights_and_bias() -> None:
    graph = build_candidates(movie())
    config = LinkConfig(
        normalise=False, distance_weight=2, edge_bias=-20, hyper_distance_weight=1, hyper_bias=-10
    )
    costs = compute_costs(graph, config)
    np.testing.assert_allclose(costs.edge, 2 * graph.edge_distance - 20)
    np.testing.assert_allclose(costs.hyper, graph.hyper_distance - 10)


def test_association_lowers_cost() -> None:
    det = Detections.from_arrays([0, 1, 1], [[0, 0], [1, 0], [0, 1]])
    assoc = Associations.from_arrays(np.array([0]), np.array([1]), np.array([0.9]))
    graph = build_candidates(det, assoc, LinkConfig(k=1))
    config = LinkConfig(
        normalise=False, distance_weight=0, hyper_distance_weight=0,
        association_weight=-1.0, hyper_association_weight=-1.0,
    )  # fmt: skip
    costs = compute_costs(graph, config)
    by_edge = dict(zip(map(tuple, graph.edges.tolist()), costs.edge, strict=True))
    assert by_edge == {(0, 1): pytest.approx(-0.9), (0, 2): 0.0}
    assert costs.hyper.tolist() == pytest.approx([-0.45])


def test_gap_weight() -> None:
    det = Detections.from_arrays([0, 2], [[0, 0], [0, 1]])
    graph = build_candidates(det, config=LinkConfig(max_gap=2))
    costs = compute_costs(graph, LinkConfig(normalise=False, gap_weight=5))
    assert costs.edge.tolist() == pytest.approx([1 + 5])


def test_appear_and_disappear_free_at_sequence_ends_and_after_empty_frames() -> None:
    # frames 0, 1, 3, 4 (2 empty) in sequence a; frames 5, 6 in sequence b
    t = np.array([0, 1, 3, 4, 5, 6])
    seq = ["a"] * 4 + ["b"] * 2
    det = Detections.concat(
        [
            Detections.from_arrays(t[i : i + 1], [[0.0, 0.0]], ids=[i], sequence=s)
            for i, s in enumerate(seq)
        ]
    )
    graph = build_candidates(det)
    config = LinkConfig(appear=3, disappear=4, position_appear=None, position_disappear=None)
    costs = compute_costs(graph, config)
    order = graph.rows_of(np.arange(6))
    assert costs.appear_free[order].tolist() == [True, False, True, False, True, False]
    assert costs.disappear_free[order].tolist() == [False, True, False, True, False, True]
    assert costs.appear[order].tolist() == [0, 3, 0, 3, 0, 3]
    assert costs.disappear[order].tolist() == [4, 0, 4, 0, 4, 0]


def test_sequences_on_position_alone_pay_their_own_start_and_end_costs() -> None:
    a, b = movie(0, sequence="a"), movie(1, sequence="b")
    det = Detections.concat([a, b])
    config = LinkConfig(appear=3, disappear=4, position_appear=0.5, position_disappear=0.25)
    inner = lambda graph, seq: graph.rows_of(seq.ids[(seq.times > 0) & (seq.times < 3)])  # noqa: E731
    # no associations: every sequence links on position
    graph = build_candidates(det)
    costs = compute_costs(graph, config)
    assert set(costs.appear[inner(graph, a)]) == {0.5}
    assert set(costs.disappear[inner(graph, b)]) == {0.25}
    # associations for sequence a only (as after the guard turned b's off)
    links = candidate_links(a, LinkConfig(k=2))
    assoc = Associations.from_arrays(links[:, 0], links[:, 1], np.full(len(links), 0.5))
    graph = build_candidates(det, assoc)
    costs = compute_costs(graph, config)
    assert set(costs.appear[inner(graph, a)]) == {3.0}
    assert set(costs.disappear[inner(graph, a)]) == {4.0}
    assert set(costs.appear[inner(graph, b)]) == {0.5}
    assert set(costs.disappear[inner(graph, b)]) == {0.25}
    # None: the same costs as with the model
    same = LinkConfig(appear=3, disappear=4, position_appear=None, position_disappear=None)
    assert set(compute_costs(graph, same).appear[inner(graph, b)]) == {3.0}
    with pytest.raises(InputError, match="position_appear"):
        LinkConfig(position_appear=-0.1)
    with pytest.raises(InputError, match="position_disappear"):
        LinkConfig(position_disappear=float("nan"))


def test_border_margin_frees_appear_and_disappear_near_the_border() -> None:
    t = np.repeat([0, 1, 2], 2)
    pos = np.array([[50, 50], [2, 50]] * 3, float)  # the second cell hugs the top border
    det = Detections.from_arrays(t, pos, meta={"image_shape": {"": [100, 100]}})
    graph = build_candidates(det)
    costs = compute_costs(graph, LinkConfig(border_margin=5), det.meta)
    middle = graph.rows_of(np.array([2, 3]))
    assert costs.appear_free[middle].tolist() == [False, True]
    assert costs.disappear_free[middle].tolist() == [False, True]
    flat = Detections.from_arrays(t, pos, meta={"image_shape": [100, 100]})
    assert compute_costs(graph, LinkConfig(border_margin=5), flat.meta).appear_free[middle][1]
    with pytest.raises(InputError, match="image_shape"):
        compute_costs(graph, LinkConfig(border_margin=5), {})


def test_border_cells_free_starts_within_typical_cell_diameters_of_the_border() -> None:
    t = np.repeat([0, 1, 2], 3)
    # the cells sit 50, 12 and 4 px from the top border; all have the area of a disc of diameter 10
    pos = np.array([[50, 50], [12, 50], [4, 30]] * 3, float)
    area = np.full(len(t), np.pi * 25)
    det = Detections.from_arrays(t, pos, area=area, meta={"image_shape": {"": [100, 100]}})
    graph = build_candidates(det)
    np.testing.assert_allclose(graph.diameter, 10)
    middle = graph.rows_of(np.array([3, 4, 5]))

    def free(config: LinkConfig, meta=det.meta, g=graph) -> list[bool]:
        costs = compute_costs(g, config, meta)
        assert (costs.appear_free[middle] == costs.disappear_free[middle]).all()
        return costs.appear_free[middle].tolist()

    assert free(LinkConfig()) == [False, False, True]  # the default: one diameter (10 px)
    assert free(LinkConfig(border_cells=1.5)) == [False, True, True]
    assert free(LinkConfig(border_cells=0)) == free(LinkConfig(border_cells=None)) == [False] * 3
    assert free(LinkConfig(border_cells=1.5, border_margin=3)) == [False] * 3  # margin wins
    # the margin follows the cells' size: twice as wide cells reach 12 px from the border
    big = Detections.from_arrays(t, pos, area=area * 4, meta=det.meta)
    assert free(LinkConfig(), g=build_candidates(big)) == [False, True, True]
    # without an area or an image shape the border is left out
    bare = build_candidates(Detections.from_arrays(t, pos, meta=det.meta))
    assert bare.diameter is None
    assert free(LinkConfig(), g=bare) == [False] * 3
    assert free(LinkConfig(), meta={}) == [False] * 3
    with pytest.raises(InputError, match="border_cells"):
        LinkConfig(border_cells=-1)


def test_border_cells_measure_a_ball_in_3d() -> None:
    det = Detections.from_arrays(
        np.array([0, 1]),
        np.array([[5.0, 20, 20], [5.0, 20, 20]]),
        area=np.full(2, np.pi / 6 * 8**3),
    )
    np.testing.assert_allclose(build_candidates(det).diameter, 8)


def divided(fragment_area: float) -> Detections:
    """A cell at t=0 and, at t=1, its continuation (same size) beside a second cell whose
    area is ``fragment_area`` (the parent's is 400)."""
    return Detections.from_arrays(
        [0, 1, 1], [[50, 50], [50, 52], [50, 62]], area=np.array([400.0, 400.0, fragment_area])
    )


def test_unequal_daughters_cost_more_and_equal_ones_nothing() -> None:
    dets = divided(16.0)
    scores = Associations.from_arrays(np.array([0, 0]), np.array([1, 2]), np.array([0.9, 0.5]))
    off = LinkConfig(daughter_size_weight=0.0, position_daughter_size_weight=0.0)
    sizes = replace(off, daughter_size_weight=2.0, position_daughter_size_weight=0.5)
    # one hyper-edge: the parent into (400 px, 16 px): diameters differ 5-fold
    for assoc, weight in ((scores, 2.0), (None, 0.5)):  # with a model; on position alone
        graph = build_candidates(dets, assoc)
        base, priced = compute_costs(graph, off), compute_costs(graph, sizes)
        np.testing.assert_allclose(priced.hyper - base.hyper, weight * np.log(5.0))
        np.testing.assert_allclose(priced.edge, base.edge)
    equal = build_candidates(divided(400.0))
    np.testing.assert_allclose(compute_costs(equal, sizes).hyper, compute_costs(equal, off).hyper)


def test_daughter_sizes_are_skipped_without_area() -> None:
    dets = Detections.from_arrays([0, 1, 1], [[50, 50], [50, 52], [50, 62]])
    graph = build_candidates(dets)
    assert graph.num_hyper == 1
    np.testing.assert_allclose(
        compute_costs(graph, LinkConfig(position_daughter_size_weight=5.0)).hyper,
        compute_costs(graph, LinkConfig(position_daughter_size_weight=0.0)).hyper,
    )


def test_a_negative_daughter_size_weight_is_refused() -> None:
    with pytest.raises(InputError, match="daughter_size_weight"):
        LinkConfig(daughter_size_weight=-1.0)
    with pytest.raises(InputError, match="position_daughter_size_weight"):
        LinkConfig(position_daughter_size_weight=-1.0)


def test_a_negative_daughter_price_is_refused_whatever_the_start_costs() -> None:
    with pytest.raises(InputError, match="unequal daughters cannot earn a reward"):
        LinkConfig(position_appear=None, position_daughter_size_weight=-1.0)
