"""Answers held out of learning, to check what was learned from the others.

A person answers the cells a ranking finds ambiguous, so what is learned from answers (a
fine-tuned model, linking weights) can suit those cells and break the links of the rest. Each
learner therefore holds a share of the answered cells out (:meth:`Annotations.hold_out
<attrackt.data.Annotations.hold_out>`) and checks its result on them, linked with the other
answers pinned. Weight learning checks itself (:mod:`attrackt.link.learn`): learned weights are
used only where they get at least :data:`MIN_GAIN` fewer held-out cells wrong.

A fine-tuned model is checked here, the other way round. The held-out cells are the ones the
ranking put first, and with the other answers pinned they are rarely linked wrong (on the
benchmark's movies, 0 to 8 of 25 or 62, before and after fine-tuning), so no check of the
form "better on the held-out cells" can see what fine-tuning adds: on the training movies (01)
such checks kept the model before in all but a few cases, and the fine-tuned models they let
in linked the rest worse. What did help there is a milder update: linking with the mean of
the associations before and after fine-tuning (:data:`TUNED_SHARE`) had fewer errors outside
the answered cells than pinning alone, on average over both training movies, in both runs of
the benchmark (``bench/results/interactive_01_*.json``), where the fine-tuned model alone did
not. So what fine-tuning gives is that mean, unless it gets at least :data:`MIN_GAIN` *more*
held-out cells wrong than the model before: the check guards against harm.
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
#: learned weights must get at least this many fewer held-out cells wrong than what they would
#: replace, and a fine-tuned model's associations are refused where they get this many more.
#: Chosen on the training movies (01): every check that a learned result passed there it
#: passed by one cell, and 9 of those 10 results linked the cells nobody answered worse
#: (``bench/results/interactive_01_*.json``)
MIN_GAIN = 2
#: the fine-tuned model's share of the associations used after fine-tuning (the rest: the
#: model's before); chosen on the training movies (see the module docstring)
TUNED_SHARE = 0.5


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


def blend(base: Associations | None, tuned: Associations) -> Associations:
    """The associations fine-tuning gives: each pair's score ``TUNED_SHARE`` of the way from
    ``base`` (the model before; a pair it lacks counts 0) to ``tuned``; ``tuned`` without a
    model before."""
    if base is None:
        return tuned
    return Associations.mean([base, tuned], (1 - TUNED_SHARE, TUNED_SHARE))


def check_associations(
    detections: Detections,
    base: Associations | None,
    tuned: Associations,
    annotations: Annotations,
    held: Collection[int] | None,
    config: LinkConfig,
) -> tuple[Associations | None, dict[str, Any]]:
    """The associations to link with after fine-tuning: the :func:`blend` of ``base`` (the
    model before) and ``tuned``, unless, linked with the other answers pinned, it gets at least
    :data:`MIN_GAIN` more of the ``held``-out answered cells wrong than ``base`` (then
    ``base``); and the verdict (``held_out``, ``wrong_base``, ``wrong_tuned``: of the blend,
    ``kept``: ``"tuned"`` or ``"base"``, ``reason``). ``held`` ``None``: no check was asked
    for, the blend is used; fewer than :data:`MIN_CHECK` held-out cells cannot tell, ``base``
    stays."""
    mixed = blend(base, tuned)
    if held is None:
        return mixed, {"held_out": 0, "kept": "tuned", "reason": "no answers were held out"}
    held = set(int(c) for c in held) & set(annotations.latest())
    verdict: dict[str, Any] = {"held_out": len(held)}
    if len(held) < MIN_CHECK:
        verdict |= {"kept": "base", "reason": f"too few answers to check the fine-tuned model: "
                    f"{len(held)} held out, at least {MIN_CHECK} needed"}  # fmt: skip
    else:
        verdict["wrong_base"] = held_out_errors(detections, base, annotations, held, config)
        verdict["wrong_tuned"] = held_out_errors(detections, mixed, annotations, held, config)
        harmful = verdict["wrong_tuned"] - verdict["wrong_base"] >= MIN_GAIN
        verdict["kept"] = "base" if harmful else "tuned"
        verdict["reason"] = (
            f"the fine-tuned associations get {verdict['wrong_tuned']} of {len(held)} held-out "
            f"answered cells wrong, the model before {verdict['wrong_base']} (refused at "
            f"{MIN_GAIN} more)"
        )
    logger.info(
        "fine-tuning check: %s; %s", verdict["reason"],
        "using the fine-tuned associations" if verdict["kept"] == "tuned"
        else "keeping the model before",
    )  # fmt: skip
    return (mixed if verdict["kept"] == "tuned" else base), verdict
