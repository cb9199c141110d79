"""Answers held out of learning: the split, and the check of fine-tuned associations."""

from __future__ import annotations

import numpy as np
import pytest
from test_link_learn import answers, carousel

from attrackt.data import Annotations, Answer, Associations
from attrackt.link import LinkConfig
from attrackt.link.held_out import (
    MIN_CHECK,
    MIN_GAIN,
    TUNED_SHARE,
    blend,
    check_associations,
    held_out_errors,
    learned_is_better,
)

CONFIG = LinkConfig(k=3, association_weight=-1.0, hyper_association_weight=-1.0, guard=False)


def test_hold_out_splits_the_latest_answers_reproducibly() -> None:
    journal = Annotations()
    for cell in range(20):
        journal.add(Answer(cell, (100 + cell,)))
    journal.add(Answer(3, (200,)))  # a later answer replaces the first
    journal.add(Answer(7, (), retracted=True))  # and a retracted one leaves
    kept, held = journal.hold_out(0.25, seed=1)
    latest = journal.latest()
    assert len(held) == round(0.25 * 19) and len(kept) == 19 - len(held)
    assert set(kept.latest()) | set(held.latest()) == set(latest)
    assert not set(kept.latest()) & set(held.latest())
    assert {**kept.latest(), **held.latest()} == latest  # the latest answers, not the first
    again, _ = journal.hold_out(0.25, seed=1)
    other, _ = journal.hold_out(0.25, seed=2)
    assert again.latest() == kept.latest() and other.latest() != kept.latest()
    assert journal.hold_out(0.0)[1].latest() == {} and len(journal.hold_out(0.0)[0]) == 19


def _carousel_case():
    """The carousel's right associations, associations that follow distance instead (the
    nearest candidate, the wrong one here), answers, and ``MIN_CHECK`` of them held out."""
    det, right, _, ids = carousel()
    pairs = np.stack([right.table["source"], right.table["target"]], 1)
    pos = det.positions()
    rows = det.rows_of(pairs.reshape(-1)).reshape(-1, 2)
    dist = np.linalg.norm(pos[rows[:, 0]] - pos[rows[:, 1]], axis=1)
    wrong = Associations.from_arrays(pairs[:, 0], pairs[:, 1], np.exp(-dist / dist.mean()))
    journal = answers({ids[(c, t)]: (ids[(c, t + 1)],) for c in range(0, 12, 3) for t in (1, 4)})
    return det, right, wrong, journal, sorted(journal.latest())[:MIN_CHECK]


def _reverse_on(right: Associations, cells: list[int]) -> Associations:
    """``right`` with the scores of the links leaving ``cells`` turned round: 0 on their true
    links, 0.9 on the others (a fine-tuning that learned those cells wrong)."""
    table = right.table
    turned = np.isin(table["source"], cells)
    score = np.where(turned, np.where(table["score"] > 0.5, 0.0, 0.9), table["score"])
    return Associations.from_arrays(table["source"], table["target"], score)


def test_fine_tuning_gives_the_mean_of_the_associations_before_and_after() -> None:
    det, right, wrong, journal, held = _carousel_case()
    mixed = blend(wrong, right)
    pairs = (right.table["source"].to_numpy(), right.table["target"].to_numpy())
    expected = (1 - TUNED_SHARE) * wrong.lookup(*pairs) + TUNED_SHARE * right.lookup(*pairs)
    assert mixed.lookup(*pairs) == pytest.approx(expected)
    assert blend(None, right) is right  # nothing before: the fine-tuned model's own
    assert held_out_errors(det, wrong, journal, set(held), CONFIG) == MIN_CHECK
    chosen, verdict = check_associations(det, wrong, right, journal, held, CONFIG)
    assert chosen.lookup(*pairs) == pytest.approx(expected) and verdict["kept"] == "tuned"
    assert (verdict["wrong_base"], verdict["wrong_tuned"]) == (MIN_CHECK, 0)


def test_fine_tuned_associations_that_link_held_out_answers_worse_are_refused() -> None:
    det, right, _, journal, held = _carousel_case()
    harmful = _reverse_on(right, right.table["source"].unique().tolist())  # learned all wrong
    assert held_out_errors(det, blend(right, harmful), journal, set(held), CONFIG) == MIN_CHECK
    chosen, verdict = check_associations(det, right, harmful, journal, held, CONFIG)
    assert chosen is right and verdict["kept"] == "base"
    assert (verdict["wrong_base"], verdict["wrong_tuned"]) == (0, MIN_CHECK)
    assert f"refused at {MIN_GAIN} more" in verdict["reason"]
    # too few held-out cells to tell: the model before stays
    chosen, verdict = check_associations(det, right, harmful, journal, held[:-1], CONFIG)
    assert chosen is right and verdict["kept"] == "base" and "too few" in verdict["reason"]
    # none held out (no check asked for): the mean, unchecked
    chosen, verdict = check_associations(det, right, harmful, journal, None, CONFIG)
    assert verdict["kept"] == "tuned"
    assert held_out_errors(det, chosen, journal, set(held), CONFIG) == MIN_CHECK


def test_one_held_out_cell_more_wrong_does_not_refuse_fine_tuning() -> None:
    det, right, _, journal, held = _carousel_case()
    # learned all wrong but the links leaving three held-out cells: one of them is then wrong
    slightly = _reverse_on(right, [c for c in right.table["source"] if c not in held[1:]])
    assert held_out_errors(det, blend(right, slightly), journal, set(held), CONFIG) == 1
    chosen, verdict = check_associations(det, right, slightly, journal, held, CONFIG)
    assert chosen is not right and verdict["kept"] == "tuned"
    assert (verdict["wrong_base"], verdict["wrong_tuned"]) == (0, 1)


def test_learned_weights_must_be_better_by_the_minimum_gain() -> None:
    assert learned_is_better(MIN_GAIN, 0) and not learned_is_better(MIN_GAIN - 1, 0)
