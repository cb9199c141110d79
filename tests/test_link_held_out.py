"""Answers held out of learning: the split, and the check of fine-tuned associations."""

from __future__ import annotations

import numpy as np
from test_link_learn import answers, carousel

from attrackt.data import Annotations, Answer, Associations
from attrackt.link import LinkConfig
from attrackt.link.held_out import (
    MIN_CHECK,
    MIN_GAIN,
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


def test_fine_tuned_associations_are_kept_only_where_they_link_held_out_answers_better() -> None:
    det, right, wrong, journal, held = _carousel_case()
    assert held_out_errors(det, right, journal, set(held), CONFIG) == 0
    assert held_out_errors(det, wrong, journal, set(held), CONFIG) == MIN_CHECK
    chosen, verdict = check_associations(det, wrong, right, journal, held, CONFIG)
    assert chosen is right and verdict["kept"] == "tuned"
    assert (verdict["wrong_base"], verdict["wrong_tuned"]) == (MIN_CHECK, 0)
    chosen, verdict = check_associations(det, right, wrong, journal, held, CONFIG)
    assert chosen is right and verdict["kept"] == "base"
    # too few held-out cells to tell: the model before stays, even a worse one
    chosen, verdict = check_associations(det, wrong, right, journal, held[:-1], CONFIG)
    assert chosen is wrong and verdict["kept"] == "base" and "too few" in verdict["reason"]
    # fine-tuning that held nothing out (no check asked for): its associations are used
    chosen, verdict = check_associations(det, right, wrong, journal, None, CONFIG)
    assert chosen is wrong and verdict["kept"] == "tuned"


def test_one_held_out_cell_more_right_is_not_enough_to_use_what_was_learned() -> None:
    det, right, wrong, journal, held = _carousel_case()
    # the model before fine-tuning follows distance except where it leaves the held-out
    # cells after the first: it links one of them wrong
    others = np.isin(right.table["source"], held[1:])
    score = np.where(others, right.table["score"], wrong.table["score"])
    before = Associations.from_arrays(right.table["source"], right.table["target"], score)
    assert held_out_errors(det, before, journal, set(held), CONFIG) == 1
    chosen, verdict = check_associations(det, before, right, journal, held, CONFIG)
    assert chosen is before and verdict["kept"] == "base"
    assert (verdict["wrong_base"], verdict["wrong_tuned"]) == (1, 0)
    assert f"at least {MIN_GAIN} fewer" in verdict["reason"]
    assert learned_is_better(MIN_GAIN, 0) and not learned_is_better(MIN_GAIN - 1, 0)
