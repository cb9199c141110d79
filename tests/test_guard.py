"""The label-free guard: it keeps associations that agree with position where position is
obvious, and switches off those that do not."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from attrackt.data import Annotations, Answer, Associations, Detections
from attrackt.errors import InputError
from attrackt.link import LinkConfig, candidate_links, guarded, link
from attrackt.link.affinities import embedding_associations, position_associations
from attrackt.link.guard import (
    GuardConfig,
    check_associations,
    count_changes,
    easy_disagreements,
)

CONFIG = LinkConfig(k=4)


def movie(
    sequence: str = "m",
    cells: int = 30,
    frames: int = 12,
    step: float = 2.0,
    seed: int = 0,
    first_id: int = 0,
    drift: float = 0.0,
) -> tuple[Detections, np.ndarray]:
    """Cells on random walks from a jittered grid 30 px apart (far from their neighbours
    compared with their step), each with an appearance of its own; the detections and the
    true links."""
    rng = np.random.default_rng(seed)
    pos = np.zeros((0, 2))
    while len(pos) < cells:  # at least 25 px apart
        p = rng.uniform(0, 200, 2)
        if not len(pos) or np.linalg.norm(pos - p, axis=1).min() >= 25:
            pos = np.vstack([pos, p])
    look = rng.normal(size=(cells, 8))
    rows, links = [], []
    for t in range(frames):
        if t:
            pos = pos + rng.normal(0, step, pos.shape) + [0.0, drift]
        for c in range(cells):
            rows.append((t, *pos[c], *look[c]))
            if t:
                links.append(((t - 1) * cells + c, t * cells + c))
    table = np.array(rows)
    det = Detections.from_arrays(
        table[:, 0].astype(int), table[:, 1:3], ids=np.arange(len(table)) + first_id,
        sequence=sequence, vectors={"embedding": table[:, 3:]},
    )  # fmt: skip
    return det, np.array(links) + first_id


def as_associations(links: np.ndarray) -> Associations:
    return Associations.from_arrays(links[:, 0], links[:, 1], np.ones(len(links)), 1)


def farthest_links(det: Detections) -> np.ndarray:
    """Each cell linked to its farthest candidate parent: what a broken model might say."""
    pairs = candidate_links(det, CONFIG)
    rows = det.rows_of(pairs.reshape(-1)).reshape(-1, 2)
    dist = np.linalg.norm(det.positions()[rows[:, 0]] - det.positions()[rows[:, 1]], axis=1)
    order = np.lexsort((-dist, pairs[:, 1]))
    first = np.r_[True, pairs[order][1:, 1] != pairs[order][:-1, 1]]
    return pairs[order][first]


def test_true_and_position_links_pass_and_far_links_fail():
    det, links = movie(frames=20, step=1.5)
    truth = check_associations(det, as_associations(links), CONFIG).sequences["m"]
    assert truth.use and truth.easy > 400 and truth.disagreement < 0.01
    position = check_associations(det, position_associations(det, CONFIG), CONFIG)
    assert position.sequences["m"].disagreements == 0 and position.verdict == "use"
    broken = check_associations(det, as_associations(farthest_links(det)), CONFIG)
    seq = broken.sequences["m"]
    assert not seq.use and seq.disagreement == 1.0 and broken.verdict == "off"
    assert "NOT used" in broken.message() and "more than the 2% allowed" in seq.reason


def test_a_drifting_field_does_not_make_the_true_links_look_wrong():
    """The whole field moves 22 px a frame (cells are 25 px or more apart): the nearest cell
    of the previous frame is often another one, but not after the common motion is taken out."""
    det, links = movie(frames=20, step=1.0, drift=22.0)
    pos = det.positions()
    pairs = candidate_links(det, CONFIG)
    rows = det.rows_of(pairs.reshape(-1)).reshape(-1, 2)
    dist = np.linalg.norm(pos[rows[:, 0]] - pos[rows[:, 1]], axis=1)
    order = np.lexsort((dist, pairs[:, 1]))
    nearest = pairs[order][np.r_[True, pairs[order][1:, 1] != pairs[order][:-1, 1]]]
    truth = {tuple(link) for link in links.tolist()}
    assert np.mean([tuple(p) in truth for p in nearest.tolist()]) < 0.7  # raw nearest misleads
    verdict = check_associations(det, as_associations(links), CONFIG).sequences["m"]
    assert verdict.use and verdict.disagreement < 0.01


def test_the_bound_decides_with_few_disagreements():
    """A model that disagrees on a few easy cells passes when the bound allows it."""
    det, links = movie(frames=20, step=1.5)
    cells, _ = easy_disagreements(det, as_associations(links), CONFIG)
    wrong = farthest_links(det)
    swap = set(det.ids[cells[:3]].tolist())  # 3 easy cells get a wrong parent
    mixed = np.array([w for w in wrong if w[1] in swap] + [t for t in links if t[1] not in swap])
    verdict = check_associations(det, as_associations(mixed), CONFIG).sequences["m"]
    assert verdict.disagreements == 3
    assert verdict.disagreement < verdict.upper < 0.05
    strict = GuardConfig(max_disagreement=0.005)
    lenient = GuardConfig(max_disagreement=0.05)
    assert not check_associations(det, as_associations(mixed), CONFIG, strict).sequences["m"].use
    assert check_associations(det, as_associations(mixed), CONFIG, lenient).sequences["m"].use


def test_no_scores_for_easy_cells_counts_as_disagreement_and_too_few_keep_position():
    det, links = movie()
    empty = check_associations(det, Associations(), CONFIG).sequences["m"]
    assert not empty.use and empty.disagreement == 1.0
    few, few_links = movie(cells=3, frames=4)
    verdict = check_associations(few, as_associations(few_links), CONFIG).sequences["m"]
    assert not verdict.use and "too few easy cells" in verdict.reason


def test_apply_switches_off_only_the_failing_sequence():
    a, links_a = movie("a", seed=0)
    b, _ = movie("b", seed=1, first_id=10_000)
    det = Detections.concat([a, b])
    assoc = as_associations(np.concatenate([links_a, farthest_links(b)]))
    verdict = check_associations(det, assoc, CONFIG)
    assert verdict.sequences["a"].use and not verdict.sequences["b"].use
    assert verdict.verdict == "partly" and verdict.to_dict()["verdict"] == "down-weighted"
    kept = verdict.apply(assoc)
    assert set(kept.table["source"]) <= set(a.ids) and len(kept) == len(links_a)
    assert kept.meta["guard"]["weights"] == {"a": 1.0, "b": 0.0}
    # b now links exactly as on position alone
    guarded = dict(link(det, kept, config=CONFIG).tracks.by_sequence())["b"]
    position = dict(link(det, None, config=CONFIG).tracks.by_sequence())["b"]
    assert np.array_equal(guarded.edges, position.edges)


def test_a_model_that_changes_too_few_links_is_not_used():
    """The true links fix 4 of position's links on this movie: used where 4 changes are
    enough, not where 5 are needed (nor at the default), and then the linking is position's."""
    det, links = movie(frames=20, step=4.0, seed=1)
    truth = as_associations(links)
    position = link(det, None, config=CONFIG).tracks.edges
    kept, verdict = guarded(det, truth, CONFIG, GuardConfig(min_changes=4))
    seq = verdict.sequences["m"]
    assert seq.use and seq.changes == 4 and len(kept) == len(truth)
    with_model = link(det, kept, config=dataclasses.replace(CONFIG, guard=False)).tracks.edges
    assert len({*map(tuple, with_model.tolist())} - {*map(tuple, position.tolist())}) == 4
    dropped, verdict = guarded(det, truth, CONFIG, GuardConfig(min_changes=5))
    assert not verdict.sequences["m"].use and len(dropped) == 0
    assert "changes only 4 of position's links" in verdict.sequences["m"].reason
    default = link(det, truth, config=CONFIG)
    assert default.guard.verdict == "off" and default.guard.sequences["m"].changes == 4
    assert np.array_equal(default.tracks.edges, position)


def test_link_reuses_the_linking_the_guard_solved(monkeypatch):
    """Without answers, the guard's own linking with the model is the result: two solves, not
    three; with answers the result is solved anew, the answers pinned."""
    import attrackt.link as linking
    import attrackt.link.guard as guard_module

    det, links = movie(frames=20, step=4.0, seed=1)
    truth = as_associations(links)
    calls = []
    solve = linking.solve
    monkeypatch.setattr(linking, "solve", lambda *a: calls.append(1) or solve(*a))
    monkeypatch.setattr(guard_module, "GuardConfig", lambda: GuardConfig(min_changes=4))
    plain = dataclasses.replace(CONFIG, guard=False)
    result = link(det, truth, config=CONFIG)
    assert result.guard.verdict == "use" and len(calls) == 2
    assert np.array_equal(result.tracks.edges, link(det, truth, config=plain).tracks.edges)
    calls.clear()
    parent, child = farthest_links(det)[5]  # a wrong answer, so that pinning shows
    answers = Annotations(answers=[Answer(int(parent), (int(child),))])
    pinned = link(det, truth, answers, CONFIG)
    assert len(calls) == 3 and [parent, child] in pinned.tracks.edges.tolist()


def test_changes_are_counted_per_sequence_of_the_child():
    a, _ = movie("a", cells=4, frames=3)
    b, _ = movie("b", cells=4, frames=3, seed=1, first_id=100)
    det = Detections.concat([a, b])
    position = np.array([[0, 4], [1, 5], [100, 104]])
    with_model = np.array([[0, 4], [1, 6], [2, 5], [100, 105], [101, 104], [102, 106]])
    assert count_changes(det, with_model, position) == {"a": 2, "b": 3}
    assert count_changes(det, position, position) == {}
    assert count_changes(det, with_model[:1], np.zeros((0, 2), np.int64)) == {"a": 1}


def test_guard_settings_are_checked():
    with pytest.raises(InputError, match="confidence"):
        GuardConfig(confidence=0.2)
    with pytest.raises(InputError, match="easy_ratio"):
        GuardConfig(easy_ratio=1.5)
    with pytest.raises(InputError, match="min_changes"):
        GuardConfig(min_changes=-1)


def test_label_free_sources_score_exactly_the_candidates():
    det, _ = movie(frames=4)
    pos = position_associations(det, CONFIG)
    sums = pos.table.groupby("target")["score"].sum().to_numpy()
    assert np.allclose(sums, 1.0)  # a softmax over each child's candidate parents
    assert len(pos) == len(det.frame(1)) * 4 * 3  # k = 4 candidates, 3 frames with parents
    sharp = position_associations(det, CONFIG, scale=0.1)
    assert sharp.table.groupby("target")["score"].max().mean() > (
        pos.table.groupby("target")["score"].max().mean()
    )
    dist = embedding_associations(det, CONFIG, kind="distance")
    aff = embedding_associations(det, CONFIG, kind="affinity")
    assert len(dist) == len(aff) == len(pos)
    order = np.argsort(dist.table["score"].to_numpy())
    assert np.all(np.diff(aff.table["score"].to_numpy()[order]) <= 1e-9)
    with pytest.raises(InputError, match="run `attrackt embed` first"):
        embedding_associations(Detections(det.table), CONFIG)


def test_link_applies_the_guard_unless_told_not_to():
    det, _ = movie()
    broken = as_associations(farthest_links(det))
    guarded = link(det, broken, config=CONFIG)
    position = link(det, None, config=CONFIG)
    assert guarded.guard is not None and guarded.guard.verdict == "off"
    assert np.array_equal(guarded.tracks.edges, position.tracks.edges)
    raw = link(det, broken, config=LinkConfig(k=4, guard=False, association_weight=-1.0,
                                              hyper_association_weight=-1.0))  # fmt: skip
    assert raw.guard is None and not np.array_equal(raw.tracks.edges, position.tracks.edges)
