"""Training the association model: windows on the device, the objective, validation, ``fit``.

:func:`train_association_model` prepares every window of the detections once on the device
(:class:`~attrackt.model.WindowSet`), wraps the transformer and the Attrackt loss's heads into one
module (:class:`AssociationModel`: one checkpoint holds both, and data-parallel training wraps it
whole), holds out the last frames of each sequence for validation, and hands everything to the
generic loop :func:`attrackt.train.fit`. Batches group windows of similar size
(:class:`SizeBucketSampler`) so that little compute goes to padding.

Objectives are looked up by name in :data:`OBJECTIVES` (``unsupervised``: Attrackt loss +
transitive loss; ``supervised``: cross-entropy against the ground truth + transitive; ``mixed``:
both). :func:`register_objective` adds another (fine-tuning uses it), and a caller may also pass
its own ``loss_fn``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler

from attrackt.budget import budget_config, resumed_steps
from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.losses import objective
from attrackt.model import (
    TransformerConfig,
    WindowBatch,
    WindowConfig,
    WindowSet,
)
from attrackt.model.network import (  # noqa: F401 (this module's public names, too)
    KIND,
    AssociationModel,
    AssociationModelConfig,
    load_association_model,
    window_extra,
    windows_from_extra,
)
from attrackt.train import (
    LossFn,
    TrainConfig,
    Validation,
    fit,
    resolve_device,
    seed_everything,
)

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# objectives
# --------------------------------------------------------------------------------------------

ObjectiveFactory = Callable[["AssociationTrainConfig"], LossFn]
OBJECTIVES: dict[str, ObjectiveFactory] = {}
NEEDS_GT = {"supervised", "mixed"}


def register_objective(name: str, factory: ObjectiveFactory, needs_gt: bool = False) -> None:
    """Make ``factory(config) -> loss_fn(model, batch)`` available as ``objective=name``."""
    OBJECTIVES[name] = factory
    if needs_gt:
        NEEDS_GT.add(name)


def _standard(kind: str) -> ObjectiveFactory:
    def factory(config: AssociationTrainConfig) -> LossFn:
        def loss_fn(model: AssociationModel, batch: WindowBatch) -> dict[str, torch.Tensor]:
            return objective(
                model.transformer, model.heads, batch, kind,
                config.transitive_weight, config.motion_weight,
            )  # fmt: skip

        return loss_fn

    return factory


for _kind in ("unsupervised", "supervised", "mixed"):
    register_objective(_kind, _standard(_kind))


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------


def _default_train() -> TrainConfig:
    return TrainConfig(
        steps=2000,
        batch_size=32,
        lr=3e-4,
        min_lr=1e-5,
        warmup_steps=0.05,
        val_every=250,
        checkpoint_every=500,
        log_every=25,
    )


@dataclass
class AssociationTrainConfig:
    """Everything :func:`train_association_model` needs besides the data.

    ``model``: the transformer (its ``ndim``, ``feature_dim`` and ``embedding_dim`` are set from
    the data); ``windows``: how detections become windows; ``objective``: a name in
    :data:`OBJECTIVES`; ``transitive_weight``: the weight of the transitive loss (the method
    uses 0.1); ``motion_weight``: the weight of the motion loss (cells move little; off by
    default, see :func:`~attrackt.losses.motion_loss`); ``heads_width``: width of the Attrackt
    loss's message; ``val_frames``: the share of each sequence's frames (at its end, at least
    one window long) held out for validation, 0 for none; ``minutes``: train for about this
    long (the step count is measured first) instead of ``train.steps``.
    """

    objective: str = "unsupervised"
    model: TransformerConfig = field(default_factory=TransformerConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    train: TrainConfig = field(default_factory=_default_train)
    transitive_weight: float = 0.1
    motion_weight: float = 0.0
    heads_width: int = 64
    val_frames: float = 0.1
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise InputError(
                "training configuration",
                f"unknown objective {self.objective!r}; choose one of {sorted(OBJECTIVES)}",
            )
        if not 0 <= self.val_frames < 1:
            raise InputError("training configuration", "val_frames must lie in [0, 1)")
        if self.minutes is not None and not self.minutes > 0:
            raise InputError("training configuration", "minutes must be positive")
        for name in ("transitive_weight", "motion_weight"):
            if not getattr(self, name) >= 0:  # NaN too
                raise InputError(
                    "training configuration", f"{name} must be >= 0, got {getattr(self, name)}"
                )


# --------------------------------------------------------------------------------------------
# windows: the split and the sampler
# --------------------------------------------------------------------------------------------


def held_out_start(first: int, last: int, window: int, val_frames: float) -> int | None:
    """The first held-out frame of a sequence spanning frames ``first .. last``, or ``None``.

    The last ``max(window, ceil(val_frames * frames))`` frames are held out, unless the
    sequence is too short to spare them (fewer than twice as many frames) or ``val_frames`` is 0.
    """
    frames = last - first + 1
    held = max(window, math.ceil(val_frames * frames))
    if val_frames <= 0 or frames < 2 * held:
        return None
    return last - held + 1


def split_windows(windows: WindowSet, val_frames: float) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation window indices.

    In each sequence the frames from :func:`held_out_start` on are held out: windows that
    start there validate, windows that reach into them are not used, the rest train.
    """
    starts = windows.start.cpu().numpy()
    length = windows.config.window
    last_frame = starts + length - 1
    train = np.ones(len(windows), bool)
    val = np.zeros(len(windows), bool)
    for name in np.unique(windows.sequences):
        sel = windows.sequences == name
        cut = held_out_start(int(starts[sel].min()), int(last_frame[sel].max()), length, val_frames)
        if cut is None:
            continue
        val[sel & (starts >= cut)] = True
        train[sel & (last_frame >= cut)] = False
    return np.flatnonzero(train), np.flatnonzero(val)


class SizeBucketSampler(Sampler[int]):
    """Window indices in batches of similar size, in an order fixed by the seed and the epoch.

    Each epoch: shuffle, sort groups of ``8 * batch_size`` windows by their (jittered) token
    count, cut them into batches, shuffle the batches, and put a short batch last (where
    ``fit`` drops it, or where it is the only one). Padding a batch to its largest window then
    wastes little; the order is the same in every process, as data-parallel training needs.
    """

    def __init__(self, sizes: np.ndarray, batch_size: int, seed: int = 0) -> None:
        if len(sizes) < 1:
            raise InputError("training data", "there are no windows to train on")
        self.sizes = np.asarray(sizes, np.float64)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(len(self.sizes))
        key = np.log(self.sizes[order] + 1.0) + rng.uniform(-0.1, 0.1, len(order))
        group = 8 * self.batch_size
        batches = []
        for start in range(0, len(order), group):
            chunk = order[start : start + group]
            chunk = chunk[np.argsort(key[start : start + group], kind="stable")]
            size = self.batch_size
            batches += [chunk[k : k + size] for k in range(0, len(chunk), size)]
        full = [b for b in batches if len(b) == self.batch_size]
        short = [b for b in batches if len(b) < self.batch_size]
        order_full = rng.permutation(len(full))
        ordered = [full[k] for k in order_full] + short
        return iter(np.concatenate(ordered).tolist())


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


def _check_inputs(detections: Detections, edges: np.ndarray | None, config: AssociationTrainConfig):
    if len(detections) == 0:
        raise InputError("detections", "there are no detections to train on")
    if config.objective in NEEDS_GT and edges is None:
        raise InputError(
            "training data",
            f"the {config.objective} objective needs ground-truth edges; these sequences have none",
        )
    name = config.windows.embedding
    if config.objective != "supervised" and (name is None or name not in detections.vectors):
        raise InputError(
            "training data",
            f"the {config.objective} objective needs the appearance embedding {name!r} "
            f"(the detections carry {sorted(detections.vectors)}); run `attrackt embed` first",
        )


def train_association_model(
    detections: Detections,
    edges: np.ndarray | None,
    config: AssociationTrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = True,
    init: str | Path | None = None,
    loss_fn: LossFn | None = None,
) -> AssociationModel:
    """Train the association model on the windows of ``detections``; checkpoints in ``out_dir``.

    ``edges``: ground-truth ``(E, 2)`` parent -> child ids (needed by the supervised objective,
    optional otherwise). ``init``: a checkpoint whose model (shape and weights) and window
    settings to start from (``config.windows`` then only gives the augmentation).
    ``loss_fn(model, batch)``: replaces the objective ``config.objective`` names. Returns the
    trained model (eval mode, on the training device); ``out_dir/last.pt`` and ``best.pt``
    (lowest validation loss, or of ``config.train.best_metric``: with labels, ``"link_error"``
    picks the fewest wrong parents on the held-out frames) hold it for
    :func:`load_association_model`.
    """
    _check_inputs(detections, edges, config)
    device = resolve_device(config.train.device)
    windows_config = config.windows
    model = None
    if init is not None:
        model, extra = load_association_model(init, device)
        windows_config = windows_from_extra(extra, augment=config.windows.augment)
    if windows_config.feature_columns is None:  # record which columns the model reads
        columns = tuple(detections.feature_columns)
        windows_config = dataclasses.replace(windows_config, feature_columns=columns)
    if windows_config.embedding not in detections.vectors:  # supervised: positions, features
        logger.info(
            "no %r vectors: the model sees no appearance embedding", config.windows.embedding
        )
        windows_config = dataclasses.replace(windows_config, embedding=None)
    config = dataclasses.replace(config, windows=windows_config)
    windows = WindowSet.build(detections, edges, config.windows, device=device)
    seed_everything(config.train.seed)
    if model is None:
        shape = dataclasses.replace(
            config.model,
            ndim=windows.ndim,
            feature_dim=windows.feature_dim,
            embedding_dim=windows.embedding_dim,
            window=config.windows.window,
        )
        model = AssociationModel(AssociationModelConfig(shape, config.heads_width))
    model.to(device)
    if config.objective != "supervised" and loss_fn is None and model.heads is None:
        raise InputError("training configuration", "the unsupervised loss needs heads_width > 0")
    loss_fn = loss_fn or OBJECTIVES[config.objective](config)

    train_idx, val_idx = split_windows(windows, config.val_frames)
    if len(train_idx) == 0:
        raise InputError("training data", "no window is left to train on after the split")
    train_rows = torch.as_tensor(train_idx)  # on the CPU: a batch's size is read there
    val_rows = torch.as_tensor(val_idx)
    train_cfg = config.train
    sampler = SizeBucketSampler(windows.counts[train_idx], train_cfg.batch_size, train_cfg.seed)

    def make_batch(indices: torch.Tensor) -> WindowBatch:
        return windows.batch(train_rows[indices], augment=True)

    val = None
    if len(val_idx):
        val = Validation(len(val_idx), lambda idx: windows.batch(val_rows[idx]))
    if config.minutes is not None:
        steps = resumed_steps(out_dir, resume)
        if steps is None:
            train_cfg = budget_config(
                model, loss_fn, sampler, make_batch, train_cfg, config.minutes,
                val_size=len(val_idx),
            )  # fmt: skip
        else:
            train_cfg = dataclasses.replace(train_cfg, steps=steps)
    logger.info(
        "training the %s association model on %d windows (%d for validation), %d steps of %d",
        config.objective,
        len(train_idx),
        len(val_idx),
        train_cfg.steps,
        train_cfg.batch_size,
    )
    extra = {
        "windows": window_extra(config.windows),
        "objective": config.objective,
        "sequences": list(detections.sequences),
        "val_frames": config.val_frames,
    }
    fit(
        model,
        loss_fn,
        sampler,
        make_batch,
        train_cfg,
        out_dir,
        val=val,
        resume=resume,
        extra_state=extra,
    )
    return model
