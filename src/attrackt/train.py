"""One training loop for every objective: the crop auto-encoder and the association model.

The loop knows nothing about the objective. A caller gives it

- a model (an ``nn.Module``; optionally with a ``kind`` string and a ``config`` dataclass, which
  every checkpoint records),
- ``make_batch(indices) -> batch``: gathers a batch from tensors that already live on the device,
  given a 1-D ``int64`` index tensor on the CPU (augmentation belongs here, drawing from the
  global torch RNG so that a resumed run draws the same numbers); :func:`to_device` moves the
  indices without waiting for the device (a host-to-device copy from pageable memory, or any
  device-to-host copy, waits for every queued kernel: on a GPU shared with other jobs a step
  that waits ran several times slower),
- ``loss_fn(model, batch) -> {"loss": tensor, ...}``: any further scalars are logged,

and :func:`fit` does the rest: seeded index sampling, AdamW with warm-up and cosine decay,
gradient clipping, bf16 autocast on CUDA, a progress bar, a JSON-lines log, validation, atomic
checkpoints (by steps and at least every ``checkpoint_seconds``), a clean stop on SIGINT/SIGTERM
(:mod:`attrackt.interrupt`), and resume that reproduces an uninterrupted run.

Launched with several processes (``torchrun --nproc-per-node N``), :func:`fit` trains data-parallel
with ``DistributedDataParallel`` and no change to the objective (see :func:`fit`); everything that
writes (log, checkpoints, progress bar) runs on rank 0 only.

The loop's parts live beside it, each in its own module: :mod:`attrackt.optim` (AdamW, autocast,
one optimiser step), :mod:`attrackt.schedule` (learning rate, re-planning under a time limit),
:mod:`attrackt.sampling` (which samples each step draws), :mod:`attrackt.rng` (random states),
:mod:`attrackt.validation` (the held-out set), :mod:`attrackt.trainlog` (``log.jsonl``),
:mod:`attrackt.resume` (going on from ``last.pt``) and :mod:`attrackt.checkpoints`; this module
re-exports the names callers use.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Sampler
from tqdm.auto import tqdm

from attrackt import distributed
from attrackt.checkpoints import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    check_plain,
    load_checkpoint,
    model_identity,
    resolve_device,
    save_checkpoint,
)
from attrackt.distributed import is_main_process
from attrackt.errors import InputError
from attrackt.interrupt import StopSignals, TrainingInterrupted
from attrackt.io.atomic import atomic_write_text
from attrackt.io.jsonfile import strict_json
from attrackt.optim import LossFn, MakeBatch, OptimiserStep, adamw
from attrackt.resume import Start, resume_from, should_resume
from attrackt.rng import rng_state, seed_everything
from attrackt.sampling import EpochShuffler, epoch_batches, to_device, training_sampler
from attrackt.schedule import REPLAN_RESERVE, REPLAN_SHARE, Replanner, lr_at, replanned_steps
from attrackt.trainlog import LOG, LossWindow, append_record, read_log
from attrackt.validation import Validation, validation_losses

__all__ = [  # the loop's own names, and those of its parts that callers import from here
    "AGREE_EVERY", "BEST", "CHECKPOINT_FORMAT", "Checkpoint", "EpochShuffler", "FitResult",
    "LAST", "LOG", "LossFn", "MakeBatch", "REPLAN_RESERVE", "REPLAN_SHARE", "TrainConfig",
    "Validation", "check_plain", "fit", "is_main_process", "load_checkpoint", "lr_at",
    "model_identity", "replanned_steps", "resolve_device", "save_checkpoint", "seed_everything",
    "to_device",
]  # fmt: skip

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"

#: with several processes, the steps at which they agree on a stop signal and a timed checkpoint
AGREE_EVERY = 16


@dataclass
class TrainConfig:
    """How to optimise: the same fields for every objective.

    ``warmup_steps`` is a step count (int) or a fraction of ``steps`` (float in [0, 1)); the
    learning rate rises linearly to ``lr`` over the warm-up, then follows a cosine down to
    ``min_lr`` at the last step. ``amp="auto"`` uses bf16 autocast on CUDA and full precision
    elsewhere; ``"bf16"`` forces it, ``"off"`` disables it. ``val_every`` and
    ``checkpoint_every`` of 0 mean "only at the end". ``best_metric``: the logged value whose
    lowest validation score picks ``best.pt`` (``None``: ``"loss"``). Besides every
    ``checkpoint_every`` steps, a checkpoint is written once ``checkpoint_seconds`` have passed
    since the last one (0: never by time), so that a killed run loses at most about that much.
    ``grad_clip`` of ``None`` or 0 disables clipping (the gradient norm is still logged).

    ``time_limit`` (seconds of training, usually set by :func:`attrackt.budget.budget_config`)
    makes :func:`fit` re-plan ``steps`` from its own recent pace every
    :data:`~attrackt.schedule.REPLAN_SHARE` of the limit, so that the run ends near the limit
    whatever the probe guessed and however the pace changes (on a GPU shared by other jobs it
    changed several-fold within a run); the warm-up keeps its planned length and the cosine
    stretches to the new end. A resumed run goes on with the steps it had planned and the
    training time it had used.
    """

    steps: int = 1000
    batch_size: int = 8
    lr: float = 1e-4
    min_lr: float = 0.0
    weight_decay: float = 0.01
    warmup_steps: int | float = 0.05
    grad_clip: float | None = 1.0
    amp: Literal["auto", "bf16", "off"] = "auto"
    seed: int = 0
    log_every: int = 50
    val_every: int = 500
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    keep_best: bool = True
    best_metric: str | None = None
    device: str = "auto"
    progress: bool = True
    time_limit: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.steps < 1:
            problems.append(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            problems.append(f"min_lr must lie in [0, lr], got {self.min_lr}")
        if isinstance(self.warmup_steps, float) and not 0 <= self.warmup_steps < 1:
            problems.append(
                f"a fractional warmup_steps must lie in [0, 1), got {self.warmup_steps}"
            )
        if isinstance(self.warmup_steps, int) and self.warmup_steps < 0:
            problems.append(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.amp not in ("auto", "bf16", "off"):
            problems.append(f"amp must be 'auto', 'bf16' or 'off', got {self.amp!r}")
        for name in ("log_every", "val_every", "checkpoint_every", "checkpoint_seconds"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.time_limit is not None and not self.time_limit > 0:
            problems.append(f"time_limit must be > 0 seconds, got {self.time_limit}")
        if problems:
            raise InputError("training configuration", "; ".join(problems))

    @property
    def warmup(self) -> int:
        """The warm-up length in steps."""
        if isinstance(self.warmup_steps, float):
            return int(round(self.warmup_steps * self.steps))
        return min(int(self.warmup_steps), self.steps)


@dataclass
class FitResult:
    """What a call to :func:`fit` did (``best_val_loss``: the best validation score of
    ``best_metric``, the loss by default)."""

    step: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_val_loss: float | None
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)


def _processes(batch_size: int) -> tuple[int, int]:
    """``(world, rank)``: how many processes train together and which one this is; the global
    batch must split evenly among them."""
    parallel = distributed.active()
    world = distributed.world_size() if parallel else 1
    rank = distributed.rank() if parallel else 0
    if batch_size % world:
        raise InputError(
            "training configuration",
            f"batch_size {batch_size} is the global batch and must be a multiple of the "
            f"{world} processes",
        )
    return world, rank


def _agree(
    signum: int | None, due: bool, plan: int | None, step: int, at_end: bool
) -> tuple[int | None, bool, int | None]:
    """The stop signal (any process's), whether a timed checkpoint is due and the re-planned
    step count (rank 0's clock for both).

    With one process these are its own. With several, every process calls this at every step;
    they compare notes at the last step and every :data:`AGREE_EVERY`-th, and at other steps
    nothing is due on any process.
    """
    if not distributed.active():
        return signum, due, plan
    if not at_end and step % AGREE_EVERY:
        return None, False, None
    views = distributed.all_gather((signum, due, plan))
    return next((s for s, _, _ in views if s is not None), None), views[0][1], views[0][2]


def _due(step: int, every: int) -> bool:
    """Whether something done every ``every`` steps (0: never) is due at ``step``."""
    return bool(every) and step % every == 0


def _best_score(scores: dict[str, float], metric: str | None) -> float:
    """The validation score that picks ``best.pt``: ``val_<metric>`` (``val_loss`` for None)."""
    key = f"val_{metric or 'loss'}"
    if key not in scores:
        raise InputError(
            "training configuration",
            f"best_metric {metric!r}: validation logs no {key!r}; it logs {sorted(scores)}",
        )
    return scores[key]


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    data: int | Sampler[int],
    make_batch: MakeBatch,
    config: TrainConfig,
    out_dir: str | Path,
    *,
    val: Validation | None = None,
    resume: bool = True,
    extra_state: dict[str, Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train ``model`` for ``config.steps`` optimiser steps; return what happened.

    ``data`` is the number of training samples (shuffled each epoch with ``config.seed``) or any
    index sampler with a length (and, for exact resume, a ``set_epoch`` that fixes its order).
    Each step draws ``config.batch_size`` indices, moves them to the model's device and calls
    ``make_batch(indices)`` then ``loss_fn(model, batch)``. ``model`` is moved to
    ``resolve_device(config.device)``, where ``make_batch`` must find its tensors.

    ``out_dir`` receives ``log.jsonl`` (one JSON record per log or validation event),
    ``last.pt`` (every ``checkpoint_every`` steps, once ``checkpoint_seconds`` have passed since
    the last one, and at the end) and, with ``val``, ``best.pt`` (the lowest validation score of
    ``config.best_metric``, the loss by default). With
    ``resume`` and an existing ``last.pt``, training continues from it with the same schedule,
    batches and random streams, giving the weights an uninterrupted run would give.
    ``extra_state`` (tensors, numbers, strings, lists, dicts) is stored in every checkpoint, for
    whatever inference needs beside the weights. ``on_step`` is called after each optimiser
    step with ``(step, steps)``; an exception it raises (a caller's cancel) stops training
    there, leaving the checkpoints of earlier steps.

    **Signals.** Called in the main thread, :func:`fit` answers SIGINT (Ctrl-C) and SIGTERM by
    finishing the current step, writing ``last.pt`` and raising
    :class:`~attrackt.interrupt.TrainingInterrupted` (a ``KeyboardInterrupt`` whose
    ``exit_code`` is 130 or 143); a second signal stops at once. The handlers in place before
    come back when :func:`fit` returns. In another thread signals are left alone.

    **Several processes.** Launched by ``torchrun --nproc-per-node N`` (or inside a process group
    of several processes that the caller initialised), every process calls :func:`fit` alike and
    they train data-parallel: each on its own device (``cuda:LOCAL_RANK``, or the CPU with
    gloo), with ``(model, loss_fn)`` wrapped in ``DistributedDataParallel`` so that any method
    ``loss_fn`` calls has its gradients synchronised. ``config.batch_size`` stays the *global*
    batch: every process draws the same global batches (the sampler must give the same order
    everywhere, as the default one does) and takes its contiguous share, ``batch_size / N``
    (an error unless ``N`` divides it); shares are weighted by their size, so for a loss that is
    a mean over samples the averaged gradient is that of the whole batch and the run matches a
    single-process run with the same seed up to rounding. The exception is randomness inside
    ``make_batch`` and ``loss_fn`` (augmentation, dropout, sampling): process ``r`` draws from
    its own streams seeded with ``config.seed + r``, so such runs agree only within noise.
    Logged losses are averages over all processes; validation batches are shared out and the
    results combined. The processes agree every :data:`AGREE_EVERY` steps on a checkpoint due
    by rank 0's clock and on a stop signal any of them received. Only rank 0 writes (log,
    checkpoints, progress bar). Checkpoints hold the
    bare model's weights (no wrapper prefix, loadable in a single process) and every process's
    random state: a run resumes exactly under the same number of processes, and with a warning
    under another number. The parameters that ``loss_fn`` uses should not change from step to
    step: if the first step leaves some unused, unused parameters are searched for on every step
    (slower); if it uses all, a later step that leaves one unused fails.

    The model is left in eval mode.
    """
    out_dir = Path(out_dir)
    device = distributed.setup(resolve_device(config.device))
    world, rank = _processes(config.batch_size)
    main = rank == 0
    model.to(device)
    kind, model_config = model_identity(model)
    extra = dict(extra_state or {})
    check_plain(model_config, "model config")
    check_plain(extra, "extra_state")
    if val is not None and val.size < 1:
        raise InputError("validation data", "is empty; pass val=None to train without it")
    sampler = training_sampler(data, config.seed, world)
    optimizer = adamw(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, config) / config.lr)

    last_path, best_path, log_path = out_dir / LAST, out_dir / BEST, out_dir / LOG
    start, history = Start(config), []
    if should_resume(resume, last_path):
        start = resume_from(last_path, model, optimizer, schedule, config, rank, world)
        if main and start.changed:
            logger.warning(
                "resuming with a changed configuration %s: the run will not match an "
                "uninterrupted one",
                start.changed,
            )
        if main:
            history = read_log(log_path, start.step)
        logger.info("resuming %s from step %d (%s)", kind, start.step, last_path)
    else:
        seed_everything(config.seed + rank)
        if main:
            best_path.unlink(missing_ok=True)  # an earlier run's best is no longer comparable
    config, step, best_val = start.config, start.step, start.best_val
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(strict_json(r) + "\n" for r in history))
    history = []  # from here on: this call's records only
    distributed.broadcast_module(model)  # every process starts from rank 0's weights

    def save(path: Path) -> None:
        """Write a checkpoint on rank 0; every process must call it (it gathers RNG states)."""
        rng = rng_state()
        rng_ranks = distributed.all_gather(rng) if world > 1 else None
        if not main:
            return
        state = {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "model_config": model_config,
            "model": getattr(model, "module", model).state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict(),
            "step": step,
            "rng": rng,
            "train_config": dataclasses.asdict(config),
            "extra": extra,
            "best_val_loss": best_val,
            "elapsed": start.trained_before + time.perf_counter() - t_start,
        }
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        save_checkpoint(path, state)

    def record(entry: dict[str, float]) -> None:
        history.append(entry)
        if main:
            append_record(log_path, entry)

    if config.time_limit is not None:  # the warm-up keeps its planned length whatever the steps
        config = dataclasses.replace(config, warmup_steps=config.warmup)
    update = OptimiserStep(model, loss_fn, optimizer, schedule, config, device, world, rank)
    batches = epoch_batches(sampler, config.batch_size, start=step)
    model.train()
    t_start = time.perf_counter()
    window, replanner = LossWindow(t_start), Replanner(step, t_start)
    t_saved = time.monotonic()
    bar = tqdm(
        total=config.steps,
        initial=step,
        desc=f"train {kind}",
        unit="step",
        disable=not (main and config.progress),
    )
    signals = StopSignals().install()
    try:
        while step < config.steps:
            indices = torch.as_tensor(next(batches), dtype=torch.int64)
            lr = optimizer.param_groups[0]["lr"]
            done = update(make_batch, indices)
            step += 1
            bar.update(1)
            if on_step is not None:
                on_step(step, config.steps)
            now = time.perf_counter()
            proposal = replanner.propose(step, now, start.trained_before + now - t_start, config)
            timely = 0 < config.checkpoint_seconds <= time.monotonic() - t_saved
            stop, timely, plan = _agree(
                signals.received, timely, proposal, step, step == config.steps
            )
            if plan is not None:
                if plan != config.steps:
                    logger.debug("%s: re-planned to %d steps", kind, plan)
                config = dataclasses.replace(config, steps=plan)  # rank 0's plan for all
                bar.total = config.steps
                replanner.planned(step, now)
            window.add(done.losses, done.grad_norm, done.weight, len(indices))

            at_end = step == config.steps
            if at_end or _due(step, config.log_every):
                means = window.means()
                if not math.isfinite(means["loss"]):
                    raise FloatingPointError(
                        f"training {kind}: the loss became {means['loss']} by step {step}; "
                        f"last good checkpoint: {last_path if last_path.is_file() else 'none'}"
                    )
                now = time.perf_counter()
                seconds, rate = now - t_start, window.samples_per_second(now)
                record({"step": step, "lr": lr, **means, "seconds": seconds, "samples_per_s": rate})
                bar.set_postfix(loss=f"{means['loss']:.4g}")
                window = LossWindow(now)
            if val is not None and (at_end or _due(step, config.val_every)):
                scores = validation_losses(model, loss_fn, val, config, device, rank, world)
                record({"step": step, **scores})
                score = _best_score(scores, config.best_metric)
                if config.keep_best and (best_val is None or score < best_val):
                    best_val = score
                    save(best_path)
            if at_end or stop or timely or _due(step, config.checkpoint_every):
                save(last_path)
                t_saved = time.monotonic()
            if stop:
                distributed.barrier()
                raise TrainingInterrupted(stop, f"training {kind}", step, config.steps, last_path)
    finally:
        signals.restore()
        bar.close()
    distributed.barrier()  # the files are complete before any process goes on
    model.eval()
    return FitResult(
        step=step,
        last_checkpoint=last_path if last_path.is_file() else None,
        best_checkpoint=best_path if best_path.is_file() else None,
        best_val_loss=best_val,
        resumed_from=start.resumed_from,
        history=history,
    )
