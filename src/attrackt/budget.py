"""Training for a time budget: how many steps of :func:`attrackt.train.fit` fit in M minutes.

:func:`steps_for_budget` times a few optimiser steps on a throw-away copy of the model (same
batches, same autocast, its own optimiser; the random streams of the real run are untouched)
and turns the measured time per step into a step count, so that ``fit`` can lay its warm-up and
cosine schedule over the whole budget. Validation passes are counted in; a margin covers
checkpoints and logging. :func:`budget_config` also hands ``fit`` the seconds left
(``TrainConfig.time_limit``): a probe of a few dozen steps misjudges a long GPU run, so ``fit``
re-plans its steps once from its own pace.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Sampler

from attrackt.errors import InputError
from attrackt.optim import LossFn, MakeBatch, autocast
from attrackt.sampling import as_sampler, epoch_batches
from attrackt.train import TrainConfig, resolve_device

logger = logging.getLogger(__name__)

PROBE_SHARE = 0.05  # of a time budget, at most, spent measuring the step time


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_step(
    model: nn.Module,
    loss_fn: LossFn,
    data: int | Sampler[int],
    make_batch: MakeBatch,
    config: TrainConfig,
    *,
    steps: int | None = None,
    warmup: int = 8,
    max_seconds: float | None = None,
) -> tuple[float, float]:
    """Seconds per training step (forward, backward, optimiser) and seconds the probe took.

    Runs ``warmup + steps`` steps on a copy of ``model`` with the batches ``fit`` would draw
    first; the caller's model, optimiser and random state are not touched. ``steps`` defaults
    to an epoch's worth of batches (12 to 32), so that batches of every size are timed. The
    warm-up is generous because on a GPU the first steps of each new batch shape are several
    times slower than the rest (measured on an H100: a 2-step warm-up over-estimated the step
    time 2.5-fold, and a 4.3-minute budget trained for 1.6 minutes). ``max_seconds`` bounds
    the probe: the warm-up ends after half of it, the timing after all of it (one timed step
    at least); ``fit`` corrects a rough estimate by re-planning from its own pace.
    """
    if steps is None:
        size = data if isinstance(data, int) else len(data)
        steps = min(32, max(12, size // config.batch_size))
    limit = math.inf if max_seconds is None else max_seconds
    device = resolve_device(config.device)
    start = time.perf_counter()
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        probe = copy.deepcopy(model).to(device).train()
        params = [p for p in probe.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=config.lr, fused=device.type == "cuda")
        batches = epoch_batches(as_sampler(data, config.seed), config.batch_size)
        timed, t0 = -1, start
        for k in range(warmup + steps):
            if timed < 0 and (k == warmup or time.perf_counter() - start > limit / 2):
                _sync(device)
                timed, t0 = 0, time.perf_counter()
            elif timed > 0 and time.perf_counter() - start > limit:
                break
            indices = torch.as_tensor(next(batches), dtype=torch.int64)
            with autocast(device, config):
                loss = loss_fn(probe, make_batch(indices))["loss"]
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, config.grad_clip or math.inf)
            optimiser.step()
            if timed >= 0:
                timed += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        del probe, optimiser
    return elapsed / max(timed, 1), time.perf_counter() - start


def steps_for_budget(
    seconds: float,
    step_seconds: float,
    *,
    spent: float = 0.0,
    val_size: int = 0,
    config: TrainConfig | None = None,
    margin: float = 0.1,
) -> int:
    """How many steps of ``step_seconds`` fit in ``seconds - spent``.

    With ``val_size`` and ``config``, each validation pass (every ``config.val_every`` steps)
    is counted as ``val_size / batch`` forward passes at a third of a step each; ``margin`` is
    the share held back for checkpoints, logging and the end-of-run validation.
    """
    if not seconds > 0:
        raise InputError("time budget", f"must be positive, got {seconds} s")
    left = (seconds - spent) * (1.0 - margin)
    per_step = step_seconds
    if val_size and config is not None and config.val_every:
        val_batches = math.ceil(val_size / config.batch_size)
        per_step += val_batches * step_seconds / 3 / config.val_every
    return max(1, int(left / per_step))


def resumed_steps(out_dir: str | Path, resume: bool = True) -> int | None:
    """The step count of the run to be resumed in ``out_dir`` (``None`` when there is none):
    a resumed budgeted run keeps the schedule it started with."""
    from attrackt.train import LAST, load_checkpoint

    path = Path(out_dir) / LAST
    if not (resume and path.is_file()):
        return None
    return int(load_checkpoint(path).train_config["steps"])


def budget_config(
    model: nn.Module,
    loss_fn: LossFn,
    data: int | Sampler[int],
    make_batch: MakeBatch,
    config: TrainConfig,
    minutes: float,
    *,
    val_size: int = 0,
) -> TrainConfig:
    """``config`` with the steps that make ``fit`` take about ``minutes`` (measured, in at most
    :data:`PROBE_SHARE` of the budget; see module doc) and ``time_limit``, the seconds left
    after the probe, by which ``fit`` re-plans."""
    parallel = dist.is_available() and dist.is_initialized()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not parallel:
        raise InputError(
            "time budget",
            "with several processes every one must run the same number of steps: give the "
            "steps instead of minutes (or initialise the process group first)",
        )
    step_seconds, spent = time_step(
        model, loss_fn, data, make_batch, config, max_seconds=PROBE_SHARE * 60.0 * minutes
    )
    steps = steps_for_budget(
        60.0 * minutes, step_seconds, spent=spent, val_size=val_size, config=config
    )
    if parallel:  # every process must run as many steps as rank 0 measured
        shared = [steps]
        dist.broadcast_object_list(shared, src=0)
        steps = int(shared[0])
    logger.info(
        "time budget %.2f min: %.4f s per step (probe %.1f s) -> %d steps",
        minutes,
        step_seconds,
        spent,
        steps,
    )
    left = max(60.0 * minutes - spent, 1e-3)
    return dataclasses.replace(config, steps=steps, time_limit=left)
