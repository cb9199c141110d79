"""End to end: ``link`` recovers a clean movie, honours answers, refuses bad input clearly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from attrackt.data import Annotations, Answer, Detections
from attrackt.errors import InputError
from attrackt.link import LinkConfig, link


def clean_movie(seed: int = 0) -> tuple[Detections, set[tuple[int, int]], dict]:
    """Six cells 40 px apart drifting ~1 px a frame for 10 frames; cell 0 divides at frame 5.

    Returns detections, the true links, and ``ids[(cell, t)]``.
    """
    rng = np.random.default_rng(seed)
    start = np.array([[40.0 * (i // 3) + 30, 40.0 * (i % 3) + 30] for i in range(6)])
    rows, ids, truth = [], {}, set()
    for t in range(10):
        for cell in range(6):
            pos = start[cell] + t * np.array([0.7, 0.7]) + rng.normal(0, 0.2, 2)
            if cell == 0 and t >= 5:  # daughters "0" and "6", split along x
                for daughter, sign in ((0, -1), (6, 1)):
                    ids[(daughter, t)] = len(rows)
                    rows.append((t, *(pos + [0, sign * 4.0 + sign * 0.5 * (t - 5)])))
                continue
            ids[(cell, t)] = len(rows)
            rows.append((t, *pos))
    for (cell, t), i in ids.items():
        if t == 0:
            continue
        parent = 0 if cell == 6 and t == 5 else cell
        truth.add((ids[(parent, t - 1)], i))
    arr = np.array(rows)
    det = Detections.from_arrays(arr[:, 0].astype(int), arr[:, 1:])
    return det, truth, ids


def links(result) -> set[tuple[int, int]]:
    return set(map(tuple, result.tracks.edges.tolist()))


@pytest.mark.parametrize("solver", ["fast", "motile", "greedy"])
def test_clean_movie_is_recovered_exactly(solver: str) -> None:
    det, truth, _ = clean_movie()
    result = link(det, config=LinkConfig(solver=solver))
    assert links(result) == truth
    assert len(result.tracks.divisions()) == 1
    assert result.solver == solver
    assert result.graph_size["nodes"] == len(det)
    if solver != "greedy":
        assert result.status == "optimal" and result.gap == 0


def test_raw_position_costs_recover_it_too() -> None:
    det, truth, _ = clean_movie(1)
    config = LinkConfig(
        normalise=False,
        edge_bias=-20,
        hyper_bias=-10,
        k=3,
        position_appear=30,
        position_disappear=30,
    )
    assert links(link(det, config=config)) == truth


def test_answers_pin_and_forbid_links() -> None:
    det, truth, ids = clean_movie()
    a3, b3, b4, far3 = ids[(1, 3)], ids[(2, 3)], ids[(2, 4)], ids[(0, 3)]
    notes = Annotations()
    notes.add(Answer(a3, (b4,), time=1.0))  # a wrong link, forced in
    notes.add(Answer(ids[(3, 6)], (), time=2.0))  # a true link, forced out
    notes.add(Answer(ids[(4, 2)], (far3,), time=3.0))  # 57 px away: not a candidate
    notes.add(Answer(ids[(5, 7)], (ids[(5, 8)], ids[(4, 8)]), time=4.0))  # a false division
    got = links(link(det, annotations=notes))
    assert (a3, b4) in got and (a3, ids[(1, 4)]) not in got
    assert (b3, b4) not in got  # b4 has its one parent
    assert not any(p == ids[(3, 6)] for p, _ in got)
    assert (ids[(4, 2)], far3) in got
    assert {(ids[(5, 7)], ids[(5, 8)]), (ids[(5, 7)], ids[(4, 8)])} <= got
    # everything not touched by an answer is still right
    answered = {a3, ids[(3, 6)], ids[(4, 2)], ids[(5, 7)]}
    children = {b4, far3, ids[(5, 8)], ids[(4, 8)]}
    untouched = {(p, c) for p, c in truth if p not in answered and c not in children}
    assert untouched <= got
    # the latest answer wins
    notes.add(Answer(a3, (ids[(1, 4)],), time=5.0))
    assert (a3, ids[(1, 4)]) in links(link(det, annotations=notes))


def test_the_same_answers_give_the_same_objective_with_motile() -> None:
    det, _, ids = clean_movie(2)
    notes = Annotations(
        answers=[Answer(ids[(1, 3)], (ids[(2, 4)],), 1.0), Answer(ids[(3, 6)], (), 2.0)]
    )
    fast = link(det, annotations=notes)
    reference = link(det, annotations=notes, config=LinkConfig(solver="motile"))
    assert fast.objective == pytest.approx(reference.objective, rel=1e-6)
    assert links(fast) == links(reference)


def test_unpinned_nodes_may_be_left_out() -> None:
    det, truth, _ = clean_movie()
    lone = Detections.from_arrays([4], [[500.0, 500.0]], ids=[999])
    det = Detections.concat([det, lone])
    assert 999 in link(det).tracks.detections.ids  # pinned: every node stays
    result = link(det, config=LinkConfig(pin_nodes=False))
    assert 999 not in result.tracks.detections.ids
    assert links(result) == truth


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([Answer(12345, (), 1.0)], "do not exist"),
        ([Answer(10, (2,), 1.0)], "not later in the same sequence"),
        ([Answer(6, (18,), 1.0)], r"6 -> \[18\].*2 frames after 6, beyond the linker's reach"),
        ([Answer(6, (13,), 1.0), Answer(7, (13,), 2.0)], "child of both 6 and 7"),
        ([Answer(6, (13, 13), 1.0)], "is given children"),
        ([Answer(6, (13, 20), 1.0)], "different frames"),
    ],
)
def test_bad_answers_are_refused_clearly(answers, message: str) -> None:
    det, _, _ = clean_movie()
    with pytest.raises(InputError, match=message):
        link(det, annotations=Annotations(answers=answers))


def test_an_answer_two_frames_ahead_is_pinned_when_the_linker_reaches_that_far() -> None:
    det, _, ids = clean_movie()
    answers = Annotations(answers=[Answer(ids[(0, 1)], (ids[(0, 3)],), 1.0)])
    result = link(det, annotations=answers, config=LinkConfig(max_gap=2))
    assert (ids[(0, 1)], ids[(0, 3)]) in links(result)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k must be at least 1"),
        ({"max_gap": 0}, "max_gap must be at least 1"),
        ({"max_distance": -1.0}, "max_distance must be positive"),
        ({"solver": "cplex"}, "solver must be one of"),
        ({"mip_gap": 1.5}, "mip_gap"),
        ({"time_limit": 0}, "time_limit"),
        ({"threads": 0}, "threads"),
        ({"on_time_limit": "ignore"}, "on_time_limit"),
        ({"appear": -1.0}, r"appear must be >= 0 .*motile.*appear=-1\.0"),
        ({"disappear": -0.1, "appear": -2.0}, "appear and disappear must be >= 0"),
        ({"edge_bias": float("nan")}, "costs must be finite numbers: edge_bias"),
        ({"hyper_distance_weight": float("inf")}, "finite.*hyper_distance_weight"),
        ({"border_margin": float("nan")}, "border_margin"),
        ({"voxel_size": (1.0, float("inf"))}, "voxel_size"),
    ],
)
def test_bad_config_is_refused_clearly(kwargs: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        LinkConfig(**kwargs)


def test_bad_detections_are_refused_clearly() -> None:
    empty = Detections.from_arrays(np.zeros(0, int), np.zeros((0, 2)))
    with pytest.raises(InputError, match="no detections"):
        link(empty)
    with pytest.raises(InputError, match="NaN"):
        Detections.from_arrays([0, 1], [[0.0, np.nan], [1.0, 1.0]])
    det, _, _ = clean_movie()
    with pytest.raises(InputError, match="image_shape"):
        link(det, config=LinkConfig(border_margin=3))


def test_frames_without_detections_split_tracks_or_are_bridged() -> None:
    det, _, _ = clean_movie()
    holed = det.take(det.times != 4)
    plain = link(holed)
    assert not any(
        holed.times[holed.rows_of([p])[0]] == 3 for p, _ in links(plain)
    )  # nothing crosses the empty frame
    bridged = link(holed, config=LinkConfig(max_gap=2))
    spans = {
        int(holed.times[holed.rows_of([c])[0]] - holed.times[holed.rows_of([p])[0]])
        for p, c in links(bridged)
    }
    assert spans == {1, 2}


@pytest.mark.parametrize("solver", ["fast", "motile", "greedy"])
def test_a_single_frame_has_nothing_to_link(solver: str) -> None:
    det = Detections.from_arrays([0, 0], [[0.0, 0.0], [5.0, 5.0]])
    result = link(det, config=LinkConfig(solver=solver))
    assert len(result.tracks.edges) == 0 and len(result.tracks.detections) == 2
    assert result.objective == 0  # appearing in the first and ending in the last frame is free


def test_a_cell_coming_into_view_at_the_border_starts_a_track() -> None:
    """A cell that enters beside a resident one is a new track, not the resident's daughter:
    starts and ends are free within one cell diameter of the border (the default)."""
    rows = []  # (t, y, x): a resident 25 px from the left border, a newcomer 5 px from frame 3
    for t in range(6):
        rows.append((t, 50.0 + 0.5 * t, 25.0))
        rows += [(t, 20.0 + 15 * i + 0.5 * t, 45.0 + 15 * j) for i in range(4) for j in range(3)]
        if t >= 3:
            rows.append((t, 50.0 + 0.5 * t, 5.0))
    t, y, x = np.array(rows).T
    det = Detections.from_arrays(
        t.astype(int), np.stack([y, x], 1), area=np.full(len(t), np.pi * 36),  # 12 px wide
        meta={"image_shape": [100, 100]},
    )  # fmt: skip
    newcomer = det.ids[(det.times == 3) & (det.positions()[:, 1] == 5)]
    resident = det.ids[(det.times == 2) & (det.positions()[:, 1] == 25)]

    def parent(config: LinkConfig) -> int | None:
        return link(det, config=config).tracks.parents.get(int(newcomer[0]))

    costly = {"position_appear": 5.0, "position_disappear": 5.0}
    assert parent(LinkConfig(**costly)) is None
    assert parent(LinkConfig(border_cells=0, **costly)) == int(resident[0])


@pytest.mark.parametrize("solver", ["fast", "motile"])
def test_a_small_cell_beside_a_parent_is_not_taken_for_its_daughter(solver: str) -> None:
    """A model that links a small cell coming into view to the cell beside it makes a false
    division; pricing unequal daughters lets the small cell start its own track."""
    from attrackt.data import Associations

    det = Detections.from_arrays(
        [0, 1, 1], [[50, 50], [50, 52], [50, 62]], area=np.array([400.0, 400.0, 16.0])
    )
    parent, continuation, small = det.ids.tolist()
    assoc = Associations.from_arrays(
        np.array([parent, parent]), np.array([continuation, small]), np.array([0.9, 0.9])
    )
    config = LinkConfig(normalise=False, distance_weight=0.1, hyper_distance_weight=0.1,
                        daughter_size_weight=1.0, solver=solver, guard=False)  # fmt: skip
    divided = links(link(det, assoc, config=replace(config, daughter_size_weight=0.0)))
    assert divided == {(parent, continuation), (parent, small)}
    assert links(link(det, assoc, config=config)) == {(parent, continuation)}
