"""Answers held out of learning, to check what was learned from the others.

A person answers the cells a ranking finds ambiguous, so what is learned from answers (a
fine-tuned model, linking weights) can suit those cells and break the links of the rest. Each
learner therefore holds a share of the answered cells out (:meth:`Annotations.hold_out
<attrackt.data.Annotations.hold_out>`) and its result is used only where, linked with the other
answers pinned, it gets at least :data:`MIN_GAIN` fewer of the held-out cells wrong than what it
would replace. Weight learning checks itself (:mod:`attrackt.link.learn`); a fine-tuned model is
checked here.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from attrackt.data import Annotations, Associations, Detections
from attrackt.link.config import LinkConfig

logger = logging.getLogger(__name__)

#: fewer held-out cells than this cannot tell one result from another: the old one stays
MIN_CHECK = 4
#: what was learned must get at least this many fewer held-out cells wrong than what it would
#: replace. Chosen on the training movies (01): every check that a learned result passed there
#: it passed by one cell, and 9 of those 10 results linked the cells nobody answered worse
#: (``bench/results/interactive_01_*.json``)
MIN_GAIN = 2


def learned_is_better(wrong_before: int, wrong_after: int) -> bool:
    """Whether a learned result that gets ``wrong_after`` held-out cells wrong, where what it
    would replace gets ``wrong_before``, is better by enough to be used (:data:`MIN_GAIN`)."""
    return wrong_before - wrong_after >= MIN_GAIN


def held_out_errors(
    detections: Detections,
    associations: Associations | None,
    annotations: Annotations,
    held: set[int],
    config: LinkConfig,
) -> int:
    """Held-out answered cells (``held``, ids) whose children the linking gets wrong when every
    other answer of ``annotations`` is pinned."""
    from attrackt.link import link

    latest = annotations.latest()
    others, _ = annotations.split(held)
    tracks = link(detections, associations, others, config).tracks
    children: dict[int, set[int]] = {c: set() for c in held}
    for parent, child in tracks.edges.tolist():
        if parent in children:
            children[parent].add(child)
    return sum(children[c] != set(latest[c]) for c in held)


def check_associations(
    detections: Detections,
    base: Associations | None,
    tuned: Associations,
    annotations: Annotations,
    held: Collection[int] | None,
    config: LinkConfig,
) -> tuple[Associations | None, dict[str, Any]]:
    """The fine-tuned associations ``tuned`` where they link the ``held``-out answered cells
    better than ``base`` (the model before fine-tuning) by :data:`MIN_GAIN` cells, else
    ``base``; and the verdict (``held_out``, ``wrong_base``, ``wrong_tuned``, ``kept``:
    ``"tuned"`` or ``"base"``, ``reason``). ``held`` ``None``: fine-tuning held nothing out
    (no check asked for), the fine-tuned associations are used."""
    if held is None:
        return tuned, {"held_out": 0, "kept": "tuned", "reason": "no answers were held out"}
    held = set(int(c) for c in held) & set(annotations.latest())
    verdict: dict[str, Any] = {"held_out": len(held)}
    if len(held) < MIN_CHECK:
        verdict |= {"kept": "base", "reason": f"too few answers to check the fine-tuned model: "
                    f"{len(held)} held out, at least {MIN_CHECK} needed"}  # fmt: skip
    else:
        verdict["wrong_base"] = held_out_errors(detections, base, annotations, held, config)
        verdict["wrong_tuned"] = held_out_errors(detections, tuned, annotations, held, config)
        better = learned_is_better(verdict["wrong_base"], verdict["wrong_tuned"])
        verdict["kept"] = "tuned" if better else "base"
        verdict["reason"] = (
            f"the fine-tuned model gets {verdict['wrong_tuned']} of {len(held)} held-out "
            f"answered cells wrong, the model before it {verdict['wrong_base']} (at least "
            f"{MIN_GAIN} fewer needed)"
        )
    logger.info(
        "fine-tuning check: %s; %s", verdict["reason"],
        "using the fine-tuned model" if verdict["kept"] == "tuned" else "keeping the model before",
    )  # fmt: skip
    return (tuned if verdict["kept"] == "tuned" else base), verdict
