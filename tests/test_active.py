"""Ambiguity scores, rankings, the simulated proof-reader and the annotation journal."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest

from attrackt.active import (
    RankConfig,
    ambiguity_scores,
    load_ranking,
    proofread,
    rank_cells,
    save_ranking,
    select,
    wrong_links,
)
from attrackt.data import Annotations, Answer, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.link import LinkConfig, link


def hand_made():
    """Frame 0: cells 0, 1, 2; frame 1: cells 10..13; frame 2: cell 20 (so frame 1 is askable).

    GT: 0->10, 1->11, 2->12, 10->20. The solver: 0->10, 2->12, 10->20 (it misses 1->11).
    The model: 0->10 (0.95), 1->11 (0.10), 2->12 (0.98) and 2->13 (0.97): it believes 2 divides.
    """
    t = [0, 0, 0, 1, 1, 1, 1, 2]
    ids = [0, 1, 2, 10, 11, 12, 13, 20]
    pos = np.array([[10, 10], [50, 50], [90, 90], [11, 11], [51, 51], [91, 91], [95, 95], [12, 12]])
    det = Detections.from_arrays(t, pos, ids=ids)
    gt = Tracks(det, [[0, 10], [1, 11], [2, 12], [10, 20]])
    solver = Tracks(det, [[0, 10], [2, 12], [10, 20]])
    assoc = Associations.from_arrays(
        np.array([0, 1, 2, 2, 10]),
        np.array([10, 11, 12, 13, 20]),
        np.array([0.95, 0.10, 0.98, 0.97, 0.99]),
    )
    return det, gt, solver, assoc


def test_confidence_puts_the_cell_the_solver_and_model_disagree_on_first():
    det, gt, solver, assoc = hand_made()
    scores = ambiguity_scores(det, solver, assoc, "confidence")
    by_id = dict(zip(det.ids.tolist(), scores.tolist(), strict=True))
    assert by_id[2] == pytest.approx(0.95)  # mass 1.95 against one chosen child
    assert by_id[1] == pytest.approx(0.10)  # mass 0.1 against none chosen
    assert by_id[0] == pytest.approx(0.05)
    table = rank_cells(det, solver, assoc, RankConfig("confidence"))
    assert table["id"].tolist()[0] == 2
    assert 20 not in table["id"].tolist()  # the last frame cannot be asked about
    top = table.iloc[0]
    assert top["solver_children"] == [12]
    assert top["model_children"] == [12, 13]
    assert top["model_scores"] == pytest.approx([0.98, 0.97])
    assert (top["t"], top["y"], top["x"]) == (0, 90, 90)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))


def hub_associations() -> Associations:
    """Cell 0 of :func:`hand_made` sends 0.6 to each far cell 11, 12, 13 beside 0.95 to 10."""
    return Associations.from_arrays(
        np.array([0, 0, 0, 0, 1, 2, 2, 10]),
        np.array([10, 11, 12, 13, 11, 12, 13, 20]),
        np.array([0.95, 0.6, 0.6, 0.6, 0.9, 0.98, 0.97, 0.99]),
    )


def test_candidate_links_bound_the_mass_so_a_diffuse_hub_does_not_outrank_an_error():
    """Cell 0 sends small scores to far cells 11..13 (no candidate link joins them with k=1),
    summing to 1.8 beside its solver child 10; cell 2's model believes it divides, the solver
    gives it one child. Counting all mass puts the hub first; counting candidate links, cell 2."""
    det, gt, solver, _ = hand_made()
    assoc = hub_associations()
    everything = rank_cells(det, solver, assoc, RankConfig("confidence"))
    assert everything["id"].iloc[0] == 0 and everything["score"].iloc[0] == pytest.approx(1.75)
    k1 = LinkConfig(k=1, guard=False)  # three cells: too few for the guard to judge the model
    bounded = rank_cells(det, solver, assoc, RankConfig("confidence"), candidates=k1)
    scores = dict(zip(bounded["id"].tolist(), bounded["score"].tolist(), strict=True))
    assert bounded["id"].tolist()[:2] == [2, 1]  # the division the solver missed, then 1 -> 11
    assert scores[2] == pytest.approx(0.95) and scores[1] == pytest.approx(0.9)
    assert scores[0] == pytest.approx(0.05)  # only 0 -> 10 is a candidate link of cell 0
    # with every earlier cell a candidate (k=3), all the mass counts again
    k3 = LinkConfig(k=3, guard=False)
    wide = rank_cells(det, solver, assoc, RankConfig("confidence"), candidates=k3)
    assert wide["id"].tolist() == everything["id"].tolist()


def divisions():
    """Four mothers at t=0 (ids 0-3), each with two daughters at t=1 (ids 10+2i, 11+2i), and a
    cell at t=2 so that t=1 is askable. The solver divides every mother; the ground truth
    divides 0-2 and gives mother 3 one child (17 starts a new track): a false division. Like a
    model trained without labels, the model sends little mass across the true divisions (about
    0.1 to each daughter) and one strong link from mother 3 (0.9 to 16, 0.05 to 17); it is sure
    of 10 -> 20 (0.97)."""
    t = [0] * 4 + [1] * 8 + [2]
    mothers = np.array([[10, 10], [10, 60], [60, 10], [60, 60]])
    pos = np.concatenate([mothers, np.repeat(mothers, 2, axis=0) + [[0, -2], [0, 2]] * 4, [[0, 0]]])
    ids = [0, 1, 2, 3, *range(10, 18), 20]
    det = Detections.from_arrays(t, pos, ids=ids)
    links = [[m, 10 + 2 * m] for m in range(4)] + [[m, 11 + 2 * m] for m in range(4)]
    solver = Tracks(det, [*links, [10, 20]])
    gt = Tracks(det, [link for link in links if link != [3, 17]] + [[10, 20]])
    source = np.array([0, 0, 1, 1, 2, 2, 3, 3, 10])
    target = np.array([10, 11, 12, 13, 14, 15, 16, 17, 20])
    score = np.array([0.1, 0.08, 0.12, 0.1, 0.09, 0.07, 0.9, 0.05, 0.97])
    return det, gt, solver, Associations.from_arrays(source, target, score)


def test_a_false_division_outranks_the_true_ones_the_model_sends_little_mass_across():
    """Against 2, every true division (mass ~0.2) would score 1.8 and the false one (mass
    0.95) 1.05; the model's median mass at the solver's divisions (0.2) sets every division's
    base (2 - 0.2), and how unlike that typical division a cell is comes on top: the false one
    stands out, both by its mass and by the gap between its two children."""
    det, gt, solver, assoc = divisions()
    scores = dict(zip(det.ids.tolist(), ambiguity_scores(det, solver, assoc).tolist(), strict=True))
    true_divisions = [scores[m] for m in (0, 1, 2)]
    assert scores[3] == pytest.approx(1.8 + 0.85)  # the gap 0.9 - 0.05 beats |0.95 - 0.2|
    assert max(true_divisions) < 1.85 < scores[3]
    assert min(true_divisions) > 1.8  # still before every cell with one child
    assert rank_cells(det, solver, assoc)["id"].iloc[0] == 3
    assert wrong_links(det, solver, gt)[det.rows_of(np.array([3]))[0]] == 1


def test_divisions_are_scored_against_2_where_the_guard_did_not_trust_the_model():
    """With the guard on and too few easy cells to judge the model, the linker did not read the
    associations: the ranking keeps the model's mass but not its calibration, and scores the
    divisions against 2 (the method's score: the true divisions, mass ~0.2, come first)."""
    det, _, solver, assoc = divisions()
    trusted = ambiguity_scores(det, solver, assoc, candidates=LinkConfig(guard=False))
    untrusted = ambiguity_scores(det, solver, assoc, candidates=LinkConfig(guard=True))
    mothers = det.rows_of(np.array([0, 1, 2, 3]))
    mass = np.array([0.18, 0.22, 0.16, 0.95])
    np.testing.assert_allclose(untrusted[mothers], 2 - mass, atol=1e-6)
    assert np.argmax(trusted) == mothers[3] and np.argmin(untrusted[mothers]) == 3


def test_the_oracle_sees_a_swap_that_counting_links_would_miss():
    det = Detections.from_arrays([0, 0, 1, 1], np.array([[0, 0], [0, 9], [0, 1], [0, 8]]))
    gt = Tracks(det, np.array([[0, 2], [1, 3]]))
    swapped = Tracks(det, np.array([[0, 3], [1, 2]]))  # each cell keeps one child: a swap
    scores = ambiguity_scores(det, swapped, strategy="oracle", gt=gt)
    assert scores.tolist() == [2.0, 2.0, 0.0, 0.0]  # a wrong child and a missed one, each
    assert ambiguity_scores(det, gt, strategy="oracle", gt=gt).tolist() == [0.0] * 4


def test_oracle_ranks_the_true_error_first_and_needs_ground_truth():
    det, gt, solver, assoc = hand_made()
    table = rank_cells(det, solver, assoc, RankConfig("oracle"), gt=gt)
    assert table["id"].iloc[0] == 1  # the one link the solver missed
    assert table["score"].iloc[0] == 1 and (table["score"].iloc[1:] == 0).all()
    with pytest.raises(InputError, match="ground-truth"):
        rank_cells(det, solver, assoc, RankConfig("oracle"))
    with pytest.raises(InputError, match="associations"):
        rank_cells(det, solver, None, RankConfig("confidence"))


def test_random_ranking_is_seeded():
    rng = np.random.default_rng(0)
    det = Detections.from_arrays(np.repeat(np.arange(4), 50), rng.uniform(0, 100, (200, 2)))
    solver = Tracks(det)
    ranks = [rank_cells(det, solver, config=RankConfig("random", seed=s))["id"] for s in (1, 1, 2)]
    assert ranks[0].tolist() == ranks[1].tolist()
    assert ranks[0].tolist() != ranks[2].tolist()
    assert sorted(ranks[0]) == list(range(150))  # every askable cell, once


def test_ranking_skips_answered_cells_and_budget_is_clamped(caplog):
    det, gt, solver, assoc = hand_made()
    answered = Annotations(answers=[Answer(2, (12,))])
    table = rank_cells(det, solver, assoc, annotations=answered)
    assert 2 not in table["id"].tolist() and len(table) == 6
    assert select(table, 2).tolist() == table["id"].tolist()[:2]
    with caplog.at_level(logging.WARNING):
        chosen = select(table, 100)
    assert len(chosen) == 6 and "more than the 6 cells" in caplog.text


def test_ranking_round_trips_through_csv_and_json(tmp_path):
    det, gt, solver, assoc = hand_made()
    table = rank_cells(det, solver, assoc)
    for name in ("rank.csv", "rank.json"):
        save_ranking(table, tmp_path / name)
        back = load_ranking(tmp_path / name)
        for col in ("id", "t", "solver_children", "model_children"):
            assert back[col].tolist() == table[col].tolist()
        np.testing.assert_allclose(back["score"], table["score"])
    assert json.loads((tmp_path / "rank.json").read_text())[0]["id"] == 2


def test_proofreader_answers_with_the_ground_truth_children(tmp_path):
    det, gt, solver, assoc = hand_made()
    journal = proofread([2, 1, 13], gt, Annotations(tmp_path / "answers.jsonl"))
    assert journal.latest() == {2: (12,), 1: (11,), 13: ()}
    assert Annotations.load(tmp_path / "answers.jsonl").latest() == journal.latest()
    divides = Tracks(det, [[0, 10], [0, 11]])
    assert proofread([0], divides).latest() == {0: (10, 11)}
    with pytest.raises(InputError, match=r"\[99\]"):
        proofread([99], gt)


def test_proofreader_answers_only_within_the_linkers_reach():
    det, gt, _, _ = hand_made()
    gap = Tracks(det, [[0, 20], [1, 11]])  # 0 -> 20 skips frame 1
    assert proofread([0, 1], gap).latest() == {0: (20,), 1: (11,)}
    assert proofread([0, 1], gap, max_gap=1).latest() == {0: (), 1: (11,)}
    assert proofread([0, 1], gap, max_gap=2).latest() == {0: (20,), 1: (11,)}
    # what it answers, linking takes; the gap answer it refuses
    config = LinkConfig(k=3, guard=False)
    tracks = link(det, None, proofread([0, 1], gap, max_gap=1), config).tracks
    assert [1, 11] in tracks.edges.tolist()
    with pytest.raises(InputError, match="beyond the linker's reach"):
        link(det, None, proofread([0, 1], gap), config)


# ---- the journal -------------------------------------------------------------------------


def test_journal_survives_a_crash_and_goes_on(tmp_path):
    path = tmp_path / "a.jsonl"
    journal = Annotations(path)
    journal.add(Answer(1, (2,), time=1.0))
    with open(path, "a") as fh:
        fh.write(json.dumps({"id": 3, "children": [4]})[:9])  # a crash mid-write
    journal = Annotations.load(path)
    journal.add(Answer(5, (), time=2.0))  # the cut line is dropped, not glued to
    replay = Annotations.load(path)
    assert replay.latest() == {1: (2,), 5: ()}
    assert path.read_text().count("\n") == 2


def test_edit_supersedes_and_keeps_the_history_and_export_writes_both(tmp_path):
    path = tmp_path / "a.jsonl"
    journal = Annotations(path)
    journal.add(Answer(5, (6, 7), time=1.0, author="ann"))
    journal.add(Answer(8, (), time=2.0, author="ann"))
    with pytest.raises(InputError, match="no answer to edit"):
        journal.edit(9, [10])
    journal.edit(5, [6], author="bob")
    replay = Annotations.load(path)
    assert replay.latest() == {5: (6,), 8: ()}
    assert [a.children for a in replay.answers_of(5)] == [(6, 7), (6,)]
    replay.export(tmp_path / "latest.csv")
    latest = pd.read_csv(tmp_path / "latest.csv", keep_default_na=False)
    assert latest["id"].tolist() == [8, 5]
    assert latest["children"].astype(str).tolist() == ["", "6"]
    assert latest["author"].tolist() == ["ann", "bob"]
    replay.export(tmp_path / "all.json", history=True)
    records = json.loads((tmp_path / "all.json").read_text())
    assert [(r["id"], r["children"], r["latest"]) for r in records] == [
        (5, [6, 7], False),
        (8, [], True),
        (5, [6], True),
    ]
    with pytest.raises(InputError, match="csv or .json"):
        replay.export(tmp_path / "x.txt")


def test_answers_for_unknown_cells_name_the_journal_and_the_ids(tmp_path):
    det, *_ = hand_made()
    journal = Annotations(tmp_path / "a.jsonl")
    journal.add(Answer(0, (10,)))
    journal.add(Answer(77, (11,)))
    journal.add(Answer(1, (88,)))
    with pytest.raises(InputError, match=r"a\.jsonl.*do not exist: \[77, 88\]"):
        journal.validate(det)
    with pytest.raises(InputError, match="children"):
        journal.add(Answer(3, (4, 4)))
    with pytest.raises(InputError, match="at most 2"):
        journal.add(Answer(3, (4, 5, 6)))


def test_contradictory_answers_are_reported_and_resolved_by_answering_again(tmp_path):
    det, *_ = hand_made()
    journal = Annotations(tmp_path / "a.jsonl")
    journal.add(Answer(0, (10,)))
    journal.add(Answer(1, (10,)))  # 10 claimed twice
    journal.add(Answer(2, (1,)))  # a child in the same frame
    journal.add(Answer(11, (20, 12)))  # two children in different frames (and 12 is earlier)
    conflicts = journal.validate(det)
    kinds = {(c.kind, c.parents, c.child) for c in conflicts}
    assert ("shared-child", (0, 1), 10) in kinds
    assert ("not-later", (2,), 1) in kinds
    assert ("not-later", (11,), 12) in kinds
    assert ("split-frames", (11,), 12) in kinds
    assert len(conflicts) == 4
    with pytest.raises(InputError, match="4 contradictory"):
        journal.check(det)
    journal.edit(1, [11])
    journal.edit(2, [12])
    journal.edit(11, [])
    assert Annotations.load(tmp_path / "a.jsonl").validate(det) == []
    far = Annotations(answers=[Answer(0, (20,))])
    assert far.validate(det) == []
    assert [c.kind for c in far.validate(det, max_gap=1)] == ["not-later"]


# ---- the command line --------------------------------------------------------------------


def test_cli_ranks_records_checks_and_exports(tmp_path):
    from typer.testing import CliRunner

    from attrackt.cli import app

    det, gt, solver, assoc = hand_made()
    det.save(tmp_path / "det.parquet")
    solver.save(tmp_path / "solver")
    gt.save(tmp_path / "gt")
    assoc.save(tmp_path / "assoc.parquet")
    journal = tmp_path / "answers.jsonl"
    run = CliRunner().invoke
    common = [str(tmp_path / "det.parquet"), str(tmp_path / "solver")]
    result = run(
        app, ["rank", *common, "--out", str(tmp_path / "r.csv"), "--associations",
              str(tmp_path / "assoc.parquet"), "--top", "2", "--no-guard"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_ranking(tmp_path / "r.csv")["id"].tolist() == [2, 1]
    # a solver that divides 2 (12, 13): the model's own mass at the solver's divisions (1.95,
    # its only one) is the reference (2 - 1.95 + the gap 0.98 - 0.97), unless the solver linked
    # with the guard (the default), which cannot judge a model on three cells: then the
    # division is scored against 2 (|1.95 - 2|)
    Tracks(det, [[0, 10], [2, 12], [2, 13], [10, 20]]).save(tmp_path / "divides")
    for flag, expected in (("--no-guard", 0.06), ("--guard", 0.05)):
        result = run(
            app, ["rank", str(tmp_path / "det.parquet"), str(tmp_path / "divides"), "--out",
                  str(tmp_path / "g.csv"), "--associations", str(tmp_path / "assoc.parquet"), flag],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        ranked = load_ranking(tmp_path / "g.csv")
        assert ranked.set_index("id")["score"][2] == pytest.approx(expected)
    hub_associations().save(tmp_path / "hub.parquet")
    for k, first in (("1", 2), ("0", 0)):  # candidate links of k=1, or all the mass
        result = run(
            app, ["rank", *common, "--out", str(tmp_path / "h.csv"), "--associations",
                  str(tmp_path / "hub.parquet"), "--k", k, "--no-guard"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert load_ranking(tmp_path / "h.csv")["id"].iloc[0] == first
    result = run(
        app, ["rank", *common, "--out", str(tmp_path / "o.json"), "--strategy", "oracle",
              "--gt", str(tmp_path / "gt")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_ranking(tmp_path / "o.json")["id"].iloc[0] == 1
    result = run(app, ["rank", *common, "--out", str(tmp_path / "x.csv"), "--strategy", "oracle"])
    assert result.exit_code == 1 and "ground-truth" in result.output

    args = ["answers", str(journal), "--answer", "1:11", "--answer", "2:12,13", "--answer", "0:"]
    assert run(app, args).exit_code == 0
    assert Annotations.load(journal).latest() == {1: (11,), 2: (12, 13), 0: ()}
    result = run(app, ["answers", str(journal), "--answer", "0:11", "--check", common[0]])
    assert result.exit_code == 1
    assert "detection 11 is answered as a child of each of [1, 0]" in result.output
    result = run(app, ["answers", str(journal), "--answer", "0:10", "--check", common[0],
                       "--export", str(tmp_path / "out.json"), "--history"])  # fmt: skip
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "out.json").read_text())
    assert [r["children"] for r in records if r["id"] == 0] == [[], [11], [10]]
    result = run(app, ["answers", str(journal), "--answer", "5:a"])
    assert result.exit_code == 1 and "ID:CHILD" in result.output
    result = run(app, ["answers", str(journal), "--answer", "99:1", "--check", common[0]])
    assert result.exit_code == 1 and "do not exist: [99]" in result.output
