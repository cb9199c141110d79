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
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DistributedSampler, Sampler
from tqdm.auto import tqdm

from attrackt import distributed
from attrackt.checkpoints import (  # noqa: F401 (also this module's public names)
    CHECKPOINT_FORMAT,
    Checkpoint,
    check_plain,
    load_checkpoint,
    model_identity,
    resolve_device,
    save_checkpoint,
)
from attrackt.distributed import is_main_process as is_main_process  # re-exported
from attrackt.errors import InputError
from attrackt.interrupt import StopSignals, TrainingInterrupted
from attrackt.io.atomic import atomic_write_text
from attrackt.io.jsonfile import strict_json

logger = logging.getLogger(__name__)

LAST = "last.pt"
BEST = "best.pt"
LOG = "log.jsonl"

LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
MakeBatch = Callable[[torch.Tensor], Any]


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    """How to optimise: the same fields for every objective.

    ``warmup_steps`` is a step count (int) or a fraction of ``steps`` (float in [0, 1)); the
    learning rate rises linearly to ``lr`` over the warm-up, then follows a cosine down to
    ``min_lr`` at the last step. ``amp="auto"`` uses bf16 autocast on CUDA and full precision
    elsewhere; ``"bf16"`` forces it, ``"off"`` disables it. ``val_every`` and
    ``checkpoint_every`` of 0 mean "only at the end". Besides every ``checkpoint_every`` steps,
    a checkpoint is written once ``checkpoint_seconds`` have passed since the last one (0: never
    by time), so that a killed run loses at most about that much. ``grad_clip`` of ``None`` or 0
    disables clipping (the gradient norm is still logged).

    ``time_limit`` (seconds of training, usually set by :func:`attrackt.budget.budget_config`)
    makes :func:`fit` re-plan ``steps`` from its own recent pace every :data:`REPLAN_SHARE` of
    the limit, so that the run ends near the limit whatever the probe guessed and however the
    pace changes (on a GPU shared by other jobs it changed several-fold within a run); the
    warm-up keeps its planned length and the cosine stretches to the new end. A resumed run
    goes on with the steps it had planned and the training time it had used.
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
class Validation:
    """A held-out set: ``make_batch`` gathers rows ``0..size-1`` (no augmentation, usually).

    It is scored with the training ``loss_fn`` in eval mode without gradients, in batches of
    ``batch_size`` (the training batch size when ``None``); the reported losses are averages
    weighted by batch size. Its random draws (dropout, sampling) do not disturb the training
    random stream.
    """

    size: int
    make_batch: MakeBatch
    batch_size: int | None = None


@dataclass
class FitResult:
    """What a call to :func:`fit` did."""

    step: int
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    best_val_loss: float | None
    resumed_from: int | None
    history: list[dict[str, float]] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lr_at(step: int, config: TrainConfig) -> float:
    """The learning rate of the update with 0-based index ``step``: linear warm-up, then cosine."""
    warmup = config.warmup
    if step < warmup:
        return config.lr * (step + 1) / warmup
    span = max(1, config.steps - 1 - warmup)
    progress = min(1.0, (step - warmup) / span)
    return config.min_lr + (config.lr - config.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


#: a run under a time limit re-plans its steps whenever this share of the limit has passed
#: since its last plan; and keeps this share of the limit in reserve
REPLAN_SHARE = 0.05
REPLAN_RESERVE = 0.03


def replanned_steps(step: int, seconds_per_step: float, elapsed: float, config: TrainConfig) -> int:
    """The total step count that makes a run at ``step`` after ``elapsed`` seconds, going on at
    ``seconds_per_step``, end within ``config.time_limit`` (with a small reserve); at least one
    step more than ``step``."""
    left = config.time_limit * (1.0 - REPLAN_RESERVE) - elapsed
    return step + max(1, int(left / max(seconds_per_step, 1e-9)))


class EpochShuffler(Sampler[int]):
    """Indices ``0..size-1`` in an order fixed by ``seed`` and the epoch (set with ``set_epoch``).

    An epoch's order does not depend on any other random state, so a resumed run sees the same
    batches, and every process of a data-parallel run draws the same global batches.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        if size < 1:
            raise InputError("training data", "there is nothing to train on (0 samples)")
        self.size = size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def _rng_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            npy["keys"].numpy().astype(np.uint32),
            npy["pos"],
            npy["has_gauss"],
            npy["cached_gaussian"],
        )
    )
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def _optimizer(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; no weight decay on biases and norm scales."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise InputError("model", "has no trainable parameters")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    return torch.optim.AdamW(groups, lr=config.lr, fused=device.type == "cuda")


def _autocast(device: torch.device, config: TrainConfig) -> torch.autocast:
    enabled = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``indices`` on ``device``; to a GPU through pinned memory, without waiting for it."""
    if device.type != "cuda":
        return indices.to(device)
    return indices.pin_memory().to(device, non_blocking=True)


def _losses(out: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    if "loss" not in out:
        raise KeyError(f"loss_fn must return a dict with the key 'loss'; got {sorted(out)}")
    return out


def _evaluate(
    model: nn.Module,
    loss_fn: LossFn,
    val: Validation,
    config: TrainConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> dict[str, float]:
    """Size-weighted mean losses over ``val``, in eval mode, without gradients.

    With several processes each scores every ``world``-th batch and the sums are combined, so
    every process returns the same numbers.
    """
    batch_size = val.batch_size or config.batch_size
    sums: dict[str, torch.Tensor] = {}
    was_training = model.training
    model.eval()
    devices = [torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), torch.no_grad():
        for start in range(0, val.size, batch_size)[rank::world]:
            idx = torch.arange(start, min(start + batch_size, val.size))
            with _autocast(device, config):
                out = _losses(loss_fn(model, val.make_batch(idx)))
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * len(idx)
    model.train(was_training)
    totals: dict[str, float] = {}
    for part in distributed.all_gather({k: float(v) for k, v in sums.items()}):
        for key, value in part.items():
            totals[key] = totals.get(key, 0.0) + value
    return {f"val_{k}": v / val.size for k, v in totals.items()}


def _read_log(path: Path, up_to_step: int) -> list[dict[str, float]]:
    """The records of an earlier run's log up to ``up_to_step`` (later ones are being redone)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if record.get("step", 0) <= up_to_step:
            records.append(record)
    return records


def _warn_changed(
    stored: Mapping[str, Any], config: TrainConfig, stored_world: int, world: int
) -> None:
    keys = ("steps", "batch_size", "lr", "min_lr", "warmup_steps", "seed", "weight_decay")
    changed = {
        k: (stored.get(k), getattr(config, k)) for k in keys if stored.get(k) != getattr(config, k)
    }
    if stored_world != world:
        changed["processes"] = (stored_world, world)
    if changed:
        logger.warning(
            "resuming with a changed configuration %s: the run will not match an uninterrupted one",
            {k: f"{a} -> {b}" for k, (a, b) in changed.items()},
        )


#: with several processes, the steps at which they agree on a stop signal and a timed checkpoint
AGREE_EVERY = 16


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
    the last one, and at the end) and, with ``val``, ``best.pt`` (lowest validation loss). With
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
    parallel = distributed.active()
    world = distributed.world_size() if parallel else 1
    rank = distributed.rank() if parallel else 0
    main = rank == 0
    if config.batch_size % world:
        raise InputError(
            "training configuration",
            f"batch_size {config.batch_size} is the global batch and must be a multiple of the "
            f"{world} processes",
        )
    model.to(device)
    kind, model_config = model_identity(model)
    extra = dict(extra_state or {})
    check_plain(model_config, "model config")
    check_plain(extra, "extra_state")
    if val is not None and val.size < 1:
        raise InputError("validation data", "is empty; pass val=None to train without it")

    sampler = EpochShuffler(data, config.seed) if isinstance(data, int) else data
    if parallel and isinstance(sampler, DistributedSampler):
        raise InputError(
            "training data",
            "fit shares every global batch among the processes itself: give it a sampler with "
            "the same order in every process, not a DistributedSampler",
        )
    if len(sampler) < world:
        raise InputError(
            "training data", f"{len(sampler)} samples are too few to share among {world} processes"
        )
    drop_last = len(sampler) >= config.batch_size  # keep every batch full when there is enough
    batches = BatchSampler(sampler, config.batch_size, drop_last=drop_last)
    per_epoch = len(batches)

    optimizer = _optimizer(model, config, device)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, config) / config.lr)

    step = 0
    resumed_from = None
    trained_before = 0.0  # seconds of training in earlier calls (a resumed timed run)
    best_val: float | None = None
    last_path, best_path, log_path = out_dir / LAST, out_dir / BEST, out_dir / LOG
    history: list[dict[str, float]] = []
    resuming = resume and last_path.is_file()
    if len(set(distributed.all_gather(resuming))) > 1:
        raise InputError(
            last_path,
            "is seen by some processes only: out_dir must lie on a file system all of them share",
        )
    if resuming:
        checkpoint = load_checkpoint(last_path, model)
        optimizer.load_state_dict(checkpoint.state["optimizer"])
        schedule.load_state_dict(checkpoint.state["scheduler"])
        rng_states = checkpoint.state.get("rng_ranks") or [checkpoint.state["rng"]]
        saved = checkpoint.train_config
        if config.time_limit is not None and saved.get("time_limit") is not None:
            # a run under a time limit goes on with its plan and the training time it used
            config = dataclasses.replace(
                config, steps=int(saved["steps"]), warmup_steps=saved["warmup_steps"]
            )
            trained_before = float(checkpoint.state.get("elapsed", 0.0))
        if main:
            _warn_changed(saved, config, len(rng_states), world)
        step = resumed_from = checkpoint.step
        best_val = checkpoint.best_val_loss
        if rank < len(rng_states):
            _set_rng_state(rng_states[rank])
        else:  # more processes than the checkpoint knows: a fresh stream for this one
            seed_everything(config.seed + rank)
        if main:
            history = _read_log(log_path, step)
        logger.info("resuming %s from step %d (%s)", kind, step, last_path)
    else:
        seed_everything(config.seed + rank)
        if main:
            best_path.unlink(missing_ok=True)  # an earlier run's best is no longer comparable
    if main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(log_path, "".join(strict_json(r) + "\n" for r in history))
    history = []  # from here on: this call's records only
    distributed.broadcast_module(model)  # every process starts from rank 0's weights

    def save(path: Path) -> None:
        """Write a checkpoint on rank 0; every process must call it (it gathers RNG states)."""
        rng = _rng_state()
        rng_ranks = distributed.all_gather(rng) if parallel else None
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
            "elapsed": trained_before + time.perf_counter() - t_start,
        }
        if rng_ranks is not None:
            state["rng_ranks"] = rng_ranks
        save_checkpoint(path, state)

    def record(entry: dict[str, float]) -> None:
        history.append(entry)
        if main:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(strict_json(entry) + "\n")

    timed = config.time_limit is not None
    if timed:  # the warm-up keeps its planned length whatever the new step count
        config = dataclasses.replace(config, warmup_steps=config.warmup)

    params = [p for p in model.parameters() if p.requires_grad]
    loss_module = distributed.LossModule(model, loss_fn)
    trainer: nn.Module = loss_module  # becomes DistributedDataParallel after a first step
    model.train()
    sums: dict[str, torch.Tensor] = {}
    window_steps = window_samples = 0
    t_start = t_window = t_plan = time.perf_counter()
    step_plan = step
    t_saved = time.monotonic()
    batch_iter: Iterator[list[int]] | None = None
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
            if batch_iter is None or step % per_epoch == 0:
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(step // per_epoch)
                batch_iter = iter(batches)
                for _ in range(step % per_epoch):  # resuming inside an epoch
                    next(batch_iter)
            indices = torch.as_tensor(next(batch_iter), dtype=torch.int64)
            share = indices.tensor_split(world)[rank] if parallel else indices
            weight = len(share) / len(indices)  # this process's part of the batch mean
            lr = optimizer.param_groups[0]["lr"]
            with _autocast(device, config):
                out = _losses(trainer(make_batch(share)))
            optimizer.zero_grad(set_to_none=True)
            if len(share) * world == len(indices):
                out["loss"].backward()
            else:  # unequal shares (a batch smaller than batch_size): weigh them by size
                (out["loss"] * (weight * world)).backward()
            if parallel and trainer is loss_module:
                # The first step finds which parameters the loss uses, averages by hand, and
                # wraps, searching for unused parameters on every step only when needed.
                every_used = distributed.average_gradients(params)
                trainer = distributed.wrap(loss_module, find_unused_parameters=not every_used)
            grad_norm = torch.nn.utils.clip_grad_norm_(
                [p for p in params if p.grad is not None], config.grad_clip or math.inf
            )
            optimizer.step()
            schedule.step()
            step += 1
            bar.update(1)
            if on_step is not None:
                on_step(step, config.steps)
            proposal = None
            now = time.perf_counter()
            if timed and now - t_plan >= REPLAN_SHARE * config.time_limit and step > step_plan:
                pace = (now - t_plan) / (step - step_plan)
                proposal = replanned_steps(step, pace, trained_before + now - t_start, config)
            timely = 0 < config.checkpoint_seconds <= time.monotonic() - t_saved
            stop, timely, plan = _agree(
                signals.received, timely, proposal, step, step == config.steps
            )
            if plan is not None:
                if plan != config.steps:
                    logger.debug("%s: re-planned to %d steps", kind, plan)
                config = dataclasses.replace(config, steps=plan)  # rank 0's plan for all
                bar.total = config.steps
                t_plan, step_plan = now, step

            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * weight
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + grad_norm.detach().float() * weight
            window_steps += 1
            window_samples += len(indices)

            at_end = step == config.steps
            if at_end or (config.log_every and step % config.log_every == 0):
                keys = list(sums)
                totals = distributed.all_reduce_sum(torch.stack([sums[k] for k in keys]))
                means = dict(zip(keys, (totals / window_steps).tolist(), strict=True))
                if not math.isfinite(means["loss"]):
                    raise FloatingPointError(
                        f"training {kind}: the loss became {means['loss']} by step {step}; "
                        f"last good checkpoint: {last_path if last_path.is_file() else 'none'}"
                    )
                now = time.perf_counter()
                record(
                    {
                        "step": step,
                        "lr": lr,
                        **means,
                        "seconds": now - t_start,
                        "samples_per_s": window_samples / max(now - t_window, 1e-9),
                    }
                )
                bar.set_postfix(loss=f"{means['loss']:.4g}")
                sums, window_steps, window_samples, t_window = {}, 0, 0, now
            if val is not None and (at_end or (config.val_every and step % config.val_every == 0)):
                scores = _evaluate(model, loss_fn, val, config, device, rank, world)
                record({"step": step, **scores})
                if config.keep_best and (best_val is None or scores["val_loss"] < best_val):
                    best_val = scores["val_loss"]
                    save(best_path)
            every = config.checkpoint_every and step % config.checkpoint_every == 0
            if at_end or stop or timely or every:
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
        resumed_from=resumed_from,
        history=history,
    )
