"""The label-free guard: it keeps associations that explain appearance better than position,
and switches off those that do not."""

from __future__ import annotations

import numpy as np
import pytest

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.guard import GuardConfig, check_associations, reduce_embedding
from attrackt.link import LinkConfig, link
from attrackt.link.affinities import embedding_associations, position_associations

CONFIG = LinkConfig(k=4)


def crowded_movie(
    sequence: str = "m",
    cells: int = 30,
    frames: int = 20,
    distinct: bool = True,
    seed: int = 0,
    first_id: int = 0,
) -> tuple[Detections, np.ndarray]:
    """Cells that move about as far per frame as they are apart (position is ambiguous); with
    ``distinct`` each keeps its own slowly changing appearance, otherwise every detection's
    appearance is fresh noise. Returns the detections and the true (parent, child) ids."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 100, (cells, 2))
    look = rng.normal(size=(cells, 8))
    rows, links = [], []
    for t in range(frames):
        if t:
            pos = pos + rng.normal(0, 9.0, pos.shape)
            look = 0.9 * look + 0.3 * rng.normal(size=look.shape)
        z = look if distinct else rng.normal(size=look.shape)
        for c in range(cells):
            rows.append((t, *pos[c], *z[c]))
            if t:
                links.append(((t - 1) * cells + c, t * cells + c))
    table = np.array(rows)
    det = Detections.from_arrays(
        table[:, 0].astype(int),
        table[:, 1:3],
        ids=np.arange(len(table)) + first_id,
        sequence=sequence,
        vectors={"embedding": table[:, 3:]},
    )
    return det, np.array(links) + first_id


def links_as_associations(links: np.ndarray) -> Associations:
    return Associations.from_arrays(links[:, 0], links[:, 1], np.ones(len(links)), 1)


def wrong_links(links: np.ndarray, det: Detections, seed: int = 1) -> np.ndarray:
    """Each child linked to a random candidate parent that is not its own."""
    rng = np.random.default_rng(seed)
    truth = dict(zip(links[:, 1].tolist(), links[:, 0].tolist(), strict=True))
    from attrackt.link import candidate_links

    out = []
    pairs = candidate_links(det, CONFIG)
    for child in np.unique(pairs[:, 1]):
        parents = pairs[pairs[:, 1] == child, 0]
        others = parents[parents != truth.get(int(child), -1)]
        if len(others):
            out.append((rng.choice(others), child))
    return np.array(out)


def test_true_links_pass_and_wrong_links_fail():
    det, links = crowded_movie()
    good = check_associations(det, links_as_associations(links), CONFIG)
    verdict = good.sequences["m"]
    assert verdict.use and verdict.gain > 0.2 and verdict.gain_low > 0
    assert good.verdict == "use"
    bad = check_associations(det, links_as_associations(wrong_links(links, det)), CONFIG)
    assert not bad.sequences["m"].use and bad.sequences["m"].gain < 0
    assert bad.verdict == "off"
    # the position reference is the same for both: only the model's side changed
    assert bad.sequences["m"].position_error == pytest.approx(verdict.position_error)


def test_look_alike_cells_keep_position_even_with_true_links():
    """Appearance that does not persist cannot tell true links from position's guesses."""
    det, links = crowded_movie(distinct=False)
    verdict = check_associations(det, links_as_associations(links), CONFIG).sequences["m"]
    assert not verdict.use
    assert abs(verdict.gain) < 0.1


def test_only_unseen_cells_are_scored_and_too_few_keep_position():
    det, links = crowded_movie(frames=20)
    unseen = det.times >= 14
    verdict = check_associations(det, links_as_associations(links), CONFIG, unseen)
    seq = verdict.sequences["m"]
    assert seq.cells == int(unseen.sum()) and seq.frames == 6
    assert seq.scored_on == "unseen frames" and seq.use
    few = check_associations(det, links_as_associations(links), CONFIG, det.times >= 19)
    assert not few.sequences["m"].use and "too few" in few.sequences["m"].reason


def test_apply_switches_off_only_the_failing_sequence():
    a, links_a = crowded_movie("a", seed=0)
    b, links_b = crowded_movie("b", seed=1, first_id=10_000)
    det = Detections.concat([a, b])
    assoc = links_as_associations(np.concatenate([links_a, wrong_links(links_b, b)]))
    verdict = check_associations(det, assoc, CONFIG)
    assert verdict.sequences["a"].use and not verdict.sequences["b"].use
    assert verdict.verdict == "partly" and verdict.to_dict()["verdict"] == "down-weighted"
    kept = verdict.apply(assoc)
    assert set(kept.table["source"]) <= set(a.ids)
    assert len(kept) == len(links_a)
    assert kept.meta["guard"]["weights"] == {"a": 1.0, "b": 0.0}
    # linking with the guarded associations: b links exactly as position alone does
    guarded = dict(link(det, kept, config=CONFIG).tracks.by_sequence())["b"]
    position = dict(link(det, None, config=CONFIG).tracks.by_sequence())["b"]
    assert np.array_equal(guarded.edges, position.edges)
    assert "NOT used" in verdict.message() and "b:" in verdict.message()


def test_the_guard_needs_the_embedding_and_sane_settings():
    det, links = crowded_movie()
    bare = Detections(det.table)
    with pytest.raises(InputError, match="run `attrackt embed` first"):
        check_associations(bare, links_as_associations(links), CONFIG)
    with pytest.raises(InputError, match="confidence"):
        GuardConfig(confidence=0.2)


def test_reduced_embedding_is_centred_and_of_unit_mean_square():
    z = np.random.default_rng(0).normal(3.0, 5.0, (200, 40))
    r = reduce_embedding(z, 8)
    assert r.shape == (200, 8)
    assert np.allclose(r.mean(0), 0, atol=1e-9) and np.isclose((r**2).mean(), 1.0)


def test_label_free_sources_score_exactly_the_candidates():
    det, links = crowded_movie(frames=4)
    pos = position_associations(det, CONFIG)
    sums = pos.table.groupby("target")["score"].sum().to_numpy()
    assert np.allclose(sums, 1.0)  # a softmax over each child's candidate parents
    assert len(pos) == len(det.frame(1)) * 4 * 3  # k = 4 candidates, 3 frames with parents
    # a sharper width puts more mass on the nearest parent
    sharp = position_associations(det, CONFIG, scale=0.1)
    assert sharp.table.groupby("target")["score"].max().mean() > (
        pos.table.groupby("target")["score"].max().mean()
    )
    dist = embedding_associations(det, CONFIG, kind="distance")
    aff = embedding_associations(det, CONFIG, kind="affinity")
    assert len(dist) == len(aff) == len(pos)
    assert np.all(np.diff(aff.table["score"].to_numpy()[np.argsort(dist.table["score"])]) <= 1e-9)
