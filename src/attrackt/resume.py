"""Resuming a training run from its last checkpoint: whether to (every process must see the file
alike), and reading back the weights, optimiser, schedule and random state with which
:func:`attrackt.train.fit` goes on as an uninterrupted run would. What changed since the run
began is reported (:attr:`Start.changed`) for the loop to warn about."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from attrackt import distributed
from attrackt.checkpoints import load_checkpoint
from attrackt.errors import InputError
from attrackt.rng import seed_everything, set_rng_state

if TYPE_CHECKING:
    from attrackt.train import TrainConfig

#: the settings whose change makes a resumed run differ from an uninterrupted one
SETTINGS = ("steps", "batch_size", "lr", "min_lr", "warmup_steps", "seed", "weight_decay")


@dataclass
class Start:
    """Where a call of :func:`attrackt.train.fit` starts: step 0, or an earlier run's last
    checkpoint; ``changed`` maps each setting (and ``processes``) that differs from the stored
    run to ``"stored -> now"``."""

    config: TrainConfig
    step: int = 0
    resumed_from: int | None = None
    trained_before: float = 0.0  # seconds of training in earlier calls (a resumed timed run)
    best_val: float | None = None
    changed: dict[str, str] = field(default_factory=dict)


def should_resume(resume: bool, last_path: Path) -> bool:
    """Whether to resume from ``last_path``, which every process must see alike."""
    resuming = resume and last_path.is_file()
    if len(set(distributed.all_gather(resuming))) > 1:
        raise InputError(
            last_path,
            "is seen by some processes only: out_dir must lie on a file system all of them share",
        )
    return resuming


def resume_from(
    last_path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    rank: int = 0,
    world: int = 1,
) -> Start:
    """Load the weights, optimiser, schedule and this process's random state of ``last_path``.

    A run under a time limit goes on with the steps it had planned and the training time it
    had used; a process the checkpoint does not know gets a fresh random stream.
    """
    checkpoint = load_checkpoint(last_path, model)
    optimizer.load_state_dict(checkpoint.state["optimizer"])
    schedule.load_state_dict(checkpoint.state["scheduler"])
    rng_states = checkpoint.state.get("rng_ranks") or [checkpoint.state["rng"]]
    saved = checkpoint.train_config
    trained_before = 0.0
    if config.time_limit is not None and saved.get("time_limit") is not None:
        config = dataclasses.replace(
            config, steps=int(saved["steps"]), warmup_steps=saved["warmup_steps"]
        )
        trained_before = float(checkpoint.state.get("elapsed", 0.0))
    if rank < len(rng_states):
        set_rng_state(rng_states[rank])
    else:
        seed_everything(config.seed + rank)
    step = checkpoint.step
    changed = changed_settings(saved, config, len(rng_states), world)
    return Start(config, step, step, trained_before, checkpoint.best_val_loss, changed)


def changed_settings(
    stored: Mapping[str, Any], config: TrainConfig, stored_world: int, world: int
) -> dict[str, str]:
    """``"stored -> now"`` for each of :data:`SETTINGS` and the process count that differ."""
    changed = {
        k: (stored.get(k), getattr(config, k))
        for k in SETTINGS
        if stored.get(k) != getattr(config, k)
    }
    if stored_world != world:
        changed["processes"] = (stored_world, world)
    return {k: f"{a} -> {b}" for k, (a, b) in changed.items()}
