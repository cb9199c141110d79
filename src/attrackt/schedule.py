"""The plan of a training run over its steps: the learning rate at each step (linear warm-up,
then cosine decay; :func:`lr_at`) and, under a time limit, the step count re-planned from the
run's own pace (:func:`replanned_steps`, :class:`Replanner`). :mod:`attrackt.train` re-exports
:func:`lr_at` and :func:`replanned_steps`."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attrackt.train import TrainConfig

#: a run under a time limit re-plans its steps whenever this share of the limit has passed
#: since its last plan; and keeps this share of the limit in reserve
REPLAN_SHARE = 0.05
REPLAN_RESERVE = 0.03


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of the update with 0-based index ``step``: linear warm-up, then cosine."""
    warmup = config.warmup
    if step < warmup:
        return config.lr * (step + 1) / warmup
    span = max(1, config.steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def replanned_steps(step: int, seconds_per_step: float, elapsed: float, config: TrainConfig) -> int:
    """The total step count that makes a run at ``step`` after ``elapsed`` seconds, going on at
    ``seconds_per_step``, end within ``config.time_limit`` (with a small reserve); at least one
    step more than ``step``."""
    left = config.time_limit * (1.0 - REPLAN_RESERVE) - elapsed
    return step + max(1, int(left / max(seconds_per_step, 1e-9)))


class Replanner:
    """When to re-plan a run under a time limit, and to what: the pace is measured since the
    last plan, which is at least :data:`REPLAN_SHARE` of the limit old. The clock is the
    caller's (seconds, as :func:`time.perf_counter` gives them)."""

    def __init__(self, step: int, now: float) -> None:
        self.planned(step, now)

    def planned(self, step: int, now: float) -> None:
        """A plan was made at ``step`` and time ``now``: measure the pace from here."""
        self.step, self.time = step, now

    def propose(self, step: int, now: float, elapsed: float, config: TrainConfig) -> int | None:
        """A new step count when one is due (``elapsed``: seconds of training so far), else None;
        always None without ``config.time_limit``."""
        if config.time_limit is None or step <= self.step:
            return None
        if now - self.time < REPLAN_SHARE * config.time_limit:
            return None
        pace = (now - self.time) / (step - self.step)
        return replanned_steps(step, pace, elapsed, config)
