"""Linking weights learned from answers (structured SVM): direction, convergence, bounds."""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
from test_link_link import clean_movie
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.cli.link import link_command
from attrackt.data import Annotations, Answer, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.link import LinkConfig, build_candidates, compute_costs, link
from attrackt.link.candidates import candidate_links
from attrackt.link.costs import WEIGHTS, cost_basis
from attrackt.link.learn import LearnConfig, learn_weights

#: the learning itself, without the held-out check (these tests give a handful of answers)
UNCHECKED = LearnConfig(check_fraction=0)


def carousel(frames: int = 8, cells: int = 12, turn: float = 0.6, seed: int = 0):
    """Cells on a circle turning 0.6 of their spacing a frame: each cell's nearest cell in the
    previous frame is the one ahead of it, so distance alone links every cell wrongly. The
    associations know better (0.9 on true links, 0.1 on the other candidate links of the k = 3
    graph that the tests of this file link with: their premises were measured on it). Position
    is wrong even where it looks obvious, so the label-free guard, which trusts it there, is
    off in the tests that link with these associations.

    Returns detections, associations, the true links and ``ids[(cell, t)]``.
    """
    rng = np.random.default_rng(seed)
    rows, ids = [], {}
    for t in range(frames):
        for c in range(cells):
            ids[(c, t)] = len(rows)
            a = 2 * np.pi * (c + turn * t) / cells
            rows.append((t, *(50 + 30 * np.array([np.sin(a), np.cos(a)]) + rng.normal(0, 0.2, 2))))
    arr = np.array(rows)
    det = Detections.from_arrays(arr[:, 0].astype(int), arr[:, 1:])
    truth = {(ids[(c, t - 1)], ids[(c, t)]) for (c, t) in ids if t > 0}
    pairs = candidate_links(det, LinkConfig(k=3))
    score = np.array([0.9 if tuple(p) in truth else 0.1 for p in pairs.tolist()])
    return det, Associations.from_arrays(pairs[:, 0], pairs[:, 1], score), truth, ids


def dividing_movie(frames: int = 10, seed: int = 0):
    """Nine cells on a grid 60 px apart, drifting; cell i divides at frame ``2 + i % 6`` into
    two daughters that move apart. Returns detections, the true links and each dividing
    parent's two daughters."""
    rng = np.random.default_rng(seed)
    rows, truth, divisions = [], set(), {}
    for cell in range(9):
        start = np.array([60.0 * (cell // 3) + 40, 60.0 * (cell % 3) + 40])
        split = 2 + cell % 6
        prev: list[int] = []
        for t in range(frames):
            centre = start + t * 0.7
            off = np.array([0.0, 4.0 + (t - split)])
            spots = [centre] if t < split else [centre - off, centre + off]
            now = []
            for pos in spots:
                now.append(len(rows))
                rows.append((t, *(pos + rng.normal(0, 0.2, 2))))
            if len(prev) == 1:  # one or both daughters
                truth |= {(prev[0], c) for c in now}
                if len(now) == 2:
                    divisions[prev[0]] = tuple(now)
            elif prev:
                truth |= set(zip(prev, now, strict=True))
            prev = now
    arr = np.array(rows)
    det = Detections.from_arrays(arr[:, 0].astype(int), arr[:, 1:])
    return det, truth, divisions


def answers(pairs: dict[int, tuple[int, ...]]) -> Annotations:
    journal = Annotations()
    for cell, children in pairs.items():
        journal.add(Answer(cell, tuple(children)))
    return journal


def outside_errors(tracks: Tracks, truth: set, answered: set) -> int:
    """Wrong links (FP + FN) of the cells nobody answered."""
    ours = {e for e in map(tuple, tracks.edges.tolist()) if e[0] not in answered}
    true = {e for e in truth if e[0] not in answered}
    return len(ours - true) + len(true - ours)


@pytest.mark.parametrize("model", [True, False])
def test_costs_are_the_basis_times_the_weights(model: bool) -> None:
    """With the model's associations and on position alone (whose start and end costs are
    not learned: they stay in the base)."""
    det, assoc, _, _ = carousel()
    graph = build_candidates(det, assoc if model else None, LinkConfig(k=3))
    config = LinkConfig(
        k=3,
        distance_weight=0.7,
        association_weight=-2.0,
        edge_bias=0.3,
        hyper_distance_weight=1.5,
        hyper_association_weight=-0.4,
        hyper_bias=-0.2,
        appear=0.8,
        disappear=1.3,
        position_appear=0.2,
        position_disappear=0.3,
        gap_weight=0.5,
    )
    base, units = cost_basis(graph, config)
    starts = ~base.appear_free
    assert set(units[WEIGHTS.index("appear")].appear[starts]) == {float(model)}
    assert set(units[WEIGHTS.index("position_appear")].appear[starts]) == {float(not model)}
    costs = compute_costs(graph, config)
    for kind in ("edge", "hyper", "appear", "disappear"):
        combined = getattr(base, kind) + sum(
            getattr(config, n) * getattr(u, kind) for n, u in zip(WEIGHTS, units, strict=True)
        )
        np.testing.assert_allclose(combined, getattr(costs, kind), atol=1e-12)
    with pytest.raises(InputError, match="no such cost weight"):
        cost_basis(graph, config, ("k",))


@pytest.mark.parametrize("subgraph", [True, False])
def test_answers_that_need_the_associations_teach_the_other_cells(subgraph: bool) -> None:
    det, assoc, truth, ids = carousel()
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    asked = {ids[(4, 1)]: (ids[(4, 2)],), ids[(6, 3)]: (ids[(6, 4)],), ids[(5, 5)]: (ids[(5, 6)],)}
    journal = answers(asked)
    pinned = link(det, assoc, journal, config).tracks
    result = learn_weights(
        det, journal, assoc, config, LearnConfig(subgraph=subgraph, check_fraction=0)
    )
    learned = link(det, assoc, journal, result.config).tracks
    # the association matters more than distance now
    before = config.association_weight / config.distance_weight
    after = result.weights["association_weight"] / result.weights["distance_weight"]
    assert after < before - 0.05
    assert result.wrong == {"before": 3, "after": 0}
    assert outside_errors(pinned, truth, set(asked)) > 50
    assert outside_errors(learned, truth, set(asked)) == 0


def test_answers_with_missed_divisions_make_divisions_cheaper() -> None:
    det, truth, divisions = dividing_movie()
    # no model: a daughter that starts a track costs position_appear, 1 here
    config = LinkConfig(k=3, hyper_bias=3.0, position_appear=1.0, position_disappear=1.0)
    asked = {p: divisions[p] for p in sorted(divisions)[:3]}
    journal = answers(asked)
    pinned = link(det, None, journal, config).tracks
    result = learn_weights(det, journal, None, config, UNCHECKED)
    learned = link(det, None, journal, result.config).tracks

    def premium(w) -> float:  # a division against one link plus a daughter appearing
        return w["hyper_bias"] - w["edge_bias"] - w["position_appear"]  # no model here

    assert premium(result.weights) < premium(result.initial) - 0.2
    assert result.weights["hyper_bias"] < config.hyper_bias
    found = set(learned.divisions().tolist()) - set(asked)
    assert found == set(divisions) - set(asked)
    assert set(pinned.divisions().tolist()) == set(asked)
    assert outside_errors(learned, truth, set(asked)) < outside_errors(pinned, truth, set(asked))


def test_the_objective_converges() -> None:
    det, assoc, _, ids = carousel()
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    journal = answers({ids[(c, c % 6)]: (ids[(c, c % 6 + 1)],) for c in range(0, 12, 2)})
    learn = LearnConfig(eps=1e-4, check_fraction=0)
    result = learn_weights(det, journal, assoc, config, learn)
    assert result.converged and result.iterations > 2
    best = [r["best"] for r in result.record]
    assert all(b2 <= b1 + 1e-9 for b1, b2 in pairwise(best))
    last = result.record[-1]
    assert last["gap"] <= learn.eps * max(1, abs(last["best"]))
    assert all(r["lower"] <= r["best"] + 1e-6 for r in result.record)
    latent = [r["latent_objective"] for r in result.rounds]
    assert latent[-1] < latent[0]
    assert all(b <= a + 1e-6 for a, b in pairwise(latent))
    assert result.record[-1]["weights"] == result.weights


def test_a_failing_bundle_qp_keeps_the_best_weights_so_far(monkeypatch, caplog) -> None:
    from attrackt.errors import SolverError
    from attrackt.link import learn as learn_module

    det, assoc, _, ids = carousel()
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    journal = answers({ids[(c, c % 6)]: (ids[(c, c % 6 + 1)],) for c in range(0, 12, 2)})
    solved = learn_module._bundle_qp
    calls = []

    def flaky(*args):
        calls.append(1)
        if len(calls) > 2:
            raise SolverError("bundle QP: Solve error")
        return solved(*args)

    monkeypatch.setattr(learn_module, "_bundle_qp", flaky)
    result = learn_weights(det, journal, assoc, config, LearnConfig(eps=1e-4, check_fraction=0))
    assert not result.converged and len(calls) == 3
    # the weights are the best of the iterations made, not the start's and not a crash
    assert result.weights == result.record[-1]["weights"]
    assert result.weights != result.initial
    assert "keeping the best weights" in caplog.text


def test_the_time_bound_stops_the_learning_with_what_it_learned(monkeypatch, caplog) -> None:
    from types import SimpleNamespace

    from attrackt.link import learn as learn_module

    det, assoc, _, ids = carousel()
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    journal = answers({ids[(c, c % 6)]: (ids[(c, c % 6 + 1)],) for c in range(0, 12, 2)})

    def strip(result) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in result.record]

    # the default bound is far above this problem's learning: as without a bound
    bounded = learn_weights(det, journal, assoc, config, UNCHECKED)
    free = learn_weights(
        det, journal, assoc, config, dataclasses.replace(UNCHECKED, max_seconds=None)
    )
    assert UNCHECKED.max_seconds == LearnConfig().max_seconds == 60
    assert bounded.converged and not bounded.timed_out and not bounded.to_dict()["timed_out"]
    assert bounded.weights == free.weights != bounded.initial and strip(bounded) == strip(free)
    # a bound that has passed before the first solve: nothing learned
    with caplog.at_level(logging.INFO, logger=learn_module.__name__):
        late = learn_weights(
            det, journal, assoc, config, LearnConfig(max_seconds=1e-9, check_fraction=0)
        )
    assert late.timed_out and late.to_dict()["timed_out"] and not late.converged
    assert late.weights == late.initial and late.iterations == 0
    assert caplog.text.count("the time bound stopped it after") == 1
    # a clock that runs a second a reading: the bound stops it midway, with the best weights
    ticks = iter(range(10**6))
    monkeypatch.setattr(learn_module, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    midway = learn_weights(
        det, journal, assoc, config, LearnConfig(max_seconds=12, check_fraction=0)
    )
    assert midway.timed_out and not midway.converged
    assert 0 < midway.iterations < free.iterations
    assert strip(midway) == strip(free)[: midway.iterations]
    assert midway.weights == midway.record[-1]["weights"] != midway.initial


def test_the_held_out_checks_learning_is_bounded_too() -> None:
    frames = 30
    det, assoc, _, ids = carousel(frames=frames)
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    journal = _one_cell_a_frame(det, assoc, ids, frames, set(), True)
    result = learn_weights(det, journal, assoc, config, LearnConfig(max_seconds=1e-9))
    assert result.timed_out and not result.converged and result.iterations == 0
    assert result.check["kept"] == "start" and result.weights == result.initial
    assert result.check["wrong_start"] == result.check["wrong_learned"] == 7


def test_answers_the_solution_already_gets_right_leave_the_weights() -> None:
    det, truth, ids = clean_movie()
    children: dict[int, list[int]] = {}
    for parent, child in truth:
        children.setdefault(parent, []).append(child)
    cells = [ids[key] for key in [(1, 2), (2, 4), (3, 6), (0, 4), (5, 3)]]
    journal = answers({c: tuple(children.get(c, [])) for c in cells})
    # starts and ends at 1 (not the cheaper 0.1 of position-only linking): every alternative to
    # a right answer then costs more than the margin
    config = LinkConfig(k=3, position_appear=None, position_disappear=None)
    result = learn_weights(det, journal, config=config, learn=UNCHECKED)
    moved = np.array([result.weights[n] - result.initial[n] for n in WEIGHTS])
    assert np.abs(moved).max() < 1e-6
    assert result.wrong == {"before": 0, "after": 0}


def test_appear_and_disappear_stay_non_negative() -> None:
    det, _, ids = clean_movie()
    ends = [(1, 2), (2, 4), (3, 6), (4, 4), (5, 3), (1, 6), (2, 7)]  # contradicted tracks
    config = LinkConfig(k=3, position_appear=0.2, position_disappear=0.2)  # no model here
    result = learn_weights(
        det,
        answers({ids[key]: () for key in ends}),
        None,
        config,
        LearnConfig(regularizer=1.0, check_fraction=0),
    )
    starts = ("appear", "disappear", "position_appear", "position_disappear")
    assert min(result.weights[n] for n in starts) >= 0
    assert min(result.weights["position_appear"], result.weights["position_disappear"]) == 0
    assert result.weights["distance_weight"] >= LearnConfig().min_distance_weight
    for record in result.record:
        assert min(record["weights"][n] for n in starts) >= 0
    assert result.wrong["after"] < result.wrong["before"]


def test_learning_is_deterministic() -> None:
    det, assoc, _, ids = carousel(seed=3)
    journal = answers({ids[(3, 2)]: (ids[(3, 3)],), ids[(8, 4)]: (ids[(8, 5)],)})
    config = LinkConfig(k=3, association_weight=-0.2, guard=False)
    runs = [learn_weights(det, journal, assoc, config, UNCHECKED) for _ in range(2)]

    def strip(result) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in result.record]

    assert runs[0].weights == runs[1].weights
    assert strip(runs[0]) == strip(runs[1])
    assert runs[0].config == runs[1].config


def test_learn_only_some_weights() -> None:
    det, assoc, _, ids = carousel()
    journal = answers({ids[(4, 1)]: (ids[(4, 2)],), ids[(6, 3)]: (ids[(6, 4)],)})
    config = LinkConfig(k=3, association_weight=-0.2, guard=False)
    result = learn_weights(
        det, journal, assoc, config, LearnConfig(weights=("association_weight",), check_fraction=0)
    )
    assert list(result.weights) == ["association_weight"]
    assert result.weights["association_weight"] < -0.2
    unchanged = dataclasses.replace(result.config, association_weight=-0.2)
    assert unchanged == config


def test_bad_input_is_clear() -> None:
    det, _, _ = clean_movie()
    with pytest.raises(InputError, match="no answers"):
        learn_weights(det, Annotations())
    with pytest.raises(InputError, match="weights must be distinct names"):
        LearnConfig(weights=("speed",))
    with pytest.raises(InputError, match="regularizer must be positive"):
        LearnConfig(regularizer=0)
    for seconds in (0, -1.0, float("nan")):
        with pytest.raises(InputError, match="max_seconds must be positive or None"):
            LearnConfig(max_seconds=seconds)
    with pytest.raises(InputError, match="below their bounds: \\['distance_weight'\\]"):
        learn_weights(det, answers({0: ()}), config=LinkConfig(distance_weight=0.001))


def test_link_command_learns_weights(tmp_path: Path) -> None:
    det, assoc, truth, ids = carousel()
    det.save(tmp_path / "det.parquet")
    assoc.save(tmp_path / "assoc.parquet")
    journal = Annotations(tmp_path / "answers.jsonl")
    for c, t in [(4, 1), (6, 3), (5, 5)]:
        journal.add(Answer(ids[(c, t)], (ids[(c, t + 1)],)))
    # the carousel's current links are all wrong: they cannot serve as pseudo-labels
    args = ["link", str(tmp_path / "det.parquet"), "--out", str(tmp_path / "tracks"), "--no-guard"]
    args += ["--pseudo-fraction", "0", "--check-fraction", "0", "--k", "3"]
    args += ["--associations", str(tmp_path / "assoc.parquet"), "--association-weight", "-0.2"]
    args += ["--annotations", str(tmp_path / "answers.jsonl")]
    runner = CliRunner()
    result = runner.invoke(app, [*args, "--learn-weights", str(tmp_path / "weights.json")])
    assert result.exit_code == 0, result.output
    learned = json.loads((tmp_path / "weights.json").read_text())
    assert learned["weights"]["association_weight"] < -0.2 and learned["converged"]
    edges = set(map(tuple, Tracks.load(tmp_path / "tracks").edges.tolist()))
    assert edges == truth
    result = runner.invoke(
        app, [*args[:4], "--learn-weights", str(tmp_path / "w.json")]
    )  # no answers
    assert result.exit_code == 1 and "--learn-weights: needs --annotations" in result.output
    # the time bound: its default is the configuration's, and a tiny one stops the learning
    signature = inspect.signature(link_command)
    assert signature.parameters["learn_seconds"].default == LearnConfig().max_seconds
    assert not learned["timed_out"]
    bound = ["--learn-weights", str(tmp_path / "late.json"), "--learn-seconds"]
    result = runner.invoke(app, [*args, *bound, "1e-9"])
    assert result.exit_code == 0, result.output
    late = json.loads((tmp_path / "late.json").read_text())
    assert late["timed_out"] and not late["converged"] and late["weights"] == late["initial"]
    result = runner.invoke(app, [*args, *bound, "0"])
    assert result.exit_code == 1 and "max_seconds must be positive" in result.output


def test_a_loop_round_relearns_the_weights_from_every_answer() -> None:
    import attrackt.loop as loop

    det, assoc, truth, ids = carousel()
    gt = Tracks(det, np.array(sorted(truth)))
    journal = answers({ids[(c, 2)]: (ids[(c, 3)],) for c in (1, 5, 9)})
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    _, fixed = loop._solve_and_score(det, assoc, journal, gt, loop.LoopConfig(link=config))
    tracks, learned = loop._solve_and_score(
        det, assoc, journal, gt, loop.LoopConfig(link=config, learn=UNCHECKED)
    )
    assert "learned_weights" not in fixed and fixed["AOGM"] > 50
    assert learned["learned_weights"]["association_weight"] < -0.2
    assert learned["learn_converged"] and not learned["learn_timed_out"] and learned["AOGM"] == 0
    assert set(map(tuple, tracks.edges.tolist())) == truth


def test_the_loss_is_the_brute_force_one() -> None:
    """On a graph small enough to list every selection, the learner's first objective (the
    structured hinge at the starting weights) is ``min over selections that agree with the answers
    of E - min over all selections of (E - wrongly answered cells)``."""
    from itertools import product

    from attrackt.link import build_problem
    from attrackt.link.problem import LinkProblem, Selection, objective, violations

    det = Detections.from_arrays(
        [0, 0, 0, 1, 1, 1], np.random.default_rng(1).uniform(0, 30, (6, 2))
    )
    asked = {0: (4, 5), 1: ()}
    config = LinkConfig(k=2)
    problem = build_problem(det, None, answers(asked), config)
    graph = problem.graph
    free = LinkProblem.free(graph, problem.costs)
    consistent, augmented = np.inf, np.inf
    for bits in product([False, True], repeat=graph.num_edges + graph.num_hyper):
        bits = np.array(bits)
        sel = Selection(np.ones(6, bool), bits[: graph.num_edges], bits[graph.num_edges :])
        if violations(free, sel):
            continue
        links = sel.links(graph)
        wrong = sum(set(links[links[:, 0] == p, 1].tolist()) != set(c) for p, c in asked.items())
        energy = objective(graph, problem.costs, sel)
        augmented = min(augmented, energy - wrong)
        if wrong == 0:
            consistent = min(consistent, energy)
    learn = LearnConfig(subgraph=False, max_iterations=1, check_fraction=0)
    result = learn_weights(det, answers(asked), None, config, learn)
    assert result.record[0]["objective"] == pytest.approx(consistent - augmented, abs=1e-9)
    assert consistent - augmented > 0  # the answers disagree with the starting weights
    assert graph.num_hyper > 0


def test_pseudo_labels_join_the_answers_and_never_override_them() -> None:
    from attrackt.link.learn import with_pseudo_answers

    det, assoc, truth, ids = carousel()
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    asked = {ids[(4, 1)]: (ids[(4, 2)],), ids[(6, 3)]: (ids[(6, 4)],)}
    journal = answers(asked)
    current = link(det, assoc, None, config).tracks  # what the solver does now
    parents = np.unique(current.edges[:, 0])
    merged = with_pseudo_answers(journal, parents, current.edges)
    assert merged.latest()[ids[(4, 1)]] == (ids[(4, 2)],)  # the answer stands
    claimed = {c for kids in asked.values() for c in kids}
    kept = [p for p in parents if not claimed & set(current.edges[current.edges[:, 0] == p, 1])]
    assert set(merged.latest()) == set(kept) | set(asked) and len(journal) == 2
    # pseudo-labels from links that are right teach the weights as answers would
    edges = np.array(sorted(truth))
    right = learn_weights(
        det, journal, assoc, config, UNCHECKED, pseudo=(np.unique(edges[:, 0]), edges)
    )
    assert right.sizes["answered"] > len(asked) and right.converged
    assert outside_errors(link(det, assoc, journal, right.config).tracks, truth, set(asked)) == 0


def _one_cell_a_frame(det, assoc, ids, frames: int, held: set[int], truth_like: bool):
    """An answer for one cell of each frame of the carousel (cell ``t % 12`` of frame ``t``;
    one a frame, so that no answer's pin decides a held-out cell's link): its true child,
    except that the ``held`` cells get the child the starting weights give them, unless
    ``truth_like``."""
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    start = link(det, assoc, None, config).tracks
    given = {int(p): (int(c),) for p, c in start.edges.tolist()}
    journal = Annotations()
    for t in range(frames - 1):
        cell = ids[(t % 12, t)]
        child = (ids[(t % 12, t + 1)],) if truth_like or cell not in held else given[cell]
        journal.add(Answer(cell, child))
    return journal


def test_learned_weights_are_kept_only_where_they_link_held_out_answers_better() -> None:
    frames = 30
    det, assoc, truth, ids = carousel(frames=frames)
    config = LinkConfig(k=3, association_weight=-0.2, hyper_association_weight=-0.2, guard=False)
    _, held = _one_cell_a_frame(det, assoc, ids, frames, set(), True).hold_out(0.25, 0)
    held_cells = set(held.latest())
    assert len(held_cells) == 7  # a quarter of 29
    # every answer is the truth: weights learned from three quarters link the rest right too
    journal = _one_cell_a_frame(det, assoc, ids, frames, held_cells, True)
    result = learn_weights(det, journal, assoc, config)
    assert result.check == {
        "held_out": 7, "wrong_start": 7, "wrong_learned": 0, "kept": "learned",
        "reason": result.check["reason"],
    }  # fmt: skip
    assert result.weights["association_weight"] < -0.2 and result.wrong["after"] == 0
    assert outside_errors(link(det, assoc, journal, result.config).tracks, truth, set()) == 0
    # the held-out answers say what the starting weights do: what the others teach breaks them
    journal = _one_cell_a_frame(det, assoc, ids, frames, held_cells, False)
    result = learn_weights(det, journal, assoc, config)
    assert result.check["kept"] == "start" and result.check["wrong_start"] == 0
    assert result.check["wrong_learned"] > 0
    assert result.weights == result.initial and result.config == config.with_position_costs()
    # a handful of answers cannot be checked: the starting weights stay
    few = answers({ids[(4, 1)]: (ids[(4, 2)],), ids[(6, 3)]: (ids[(6, 4)],)})
    result = learn_weights(det, few, assoc, config)
    assert result.check["kept"] == "start" and "too few" in result.check["reason"]
    assert result.weights == result.initial
