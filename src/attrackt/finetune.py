"""Fine-tuning an association model on a person's answers (the method's interactive step).

The loss is ``L_unsup + L_sup + L_pseudo`` (+ the transitive term):

- ``L_unsup``: the Attrackt reconstruction loss, as in pre-training;
- ``L_sup``: cross-entropy on the *answered* cells only: for an answered parent every candidate
  child in the next frame is labelled (its true children 1, the rest 0), and for each of its
  true children every candidate parent in the parent's frame is labelled. Nothing else is;
- ``L_pseudo``: the same on the solver's links of the least ambiguous cells (the 10 % with
  the lowest confidence scores that were not answered).

By default only LoRA adapters and the Attrackt heads ``m_E``/``m_D`` train; the base weights stay
bit-identical, and the adapters are saved apart from the base checkpoint. A quarter of the
answered cells (``check_fraction``) is held out of ``L_sup``: what fine-tuning gives to link
with is the mean of the base and the fine-tuned model's associations, refused where it links
those cells worse than the base model's (:func:`attrackt.link.held_out.check_associations`;
the answers a person gave are pinned all the same). Training goes through
:func:`attrackt.train.fit` (checkpoints, resume after an interruption, logs).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import Sampler

from attrackt.data import Annotations, Detections
from attrackt.errors import InputError
from attrackt.losses import attrackt_loss, supervised_loss, transitive_loss
from attrackt.model.associations import valid_pairs
from attrackt.model.lora import LoRAConfig
from attrackt.model.windows import WindowBatch, WindowSet
from attrackt.train import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneConfig:
    """How to fine-tune.

    ``lora``: the adapters (``None``: full fine-tuning, every parameter trains). Steps: the
    method's ``steps_per_cell`` x answered cells, within ``[min_steps, max_steps]``
    (``train.steps`` is replaced by this count). ``pseudo_fraction``: the share of askable
    cells whose solver links serve as pseudo-labels (0 turns ``L_pseudo`` off). The
    ``*_weight`` fields weight the terms. ``labelled_share``: the share of each batch drawn
    from windows that hold an answered cell. ``minutes``: also cap the steps at what fits in
    this time (measured on the first steps). ``check_fraction``: the share of answered cells
    held out of training, to check the fine-tuned model on (0: none; drawn with the training
    seed).
    """

    lora: LoRAConfig | None = field(default_factory=LoRAConfig)
    steps_per_cell: int = 100
    min_steps: int = 100
    max_steps: int | None = None
    pseudo_fraction: float = 0.1
    unsupervised_weight: float = 1.0
    supervised_weight: float = 1.0
    pseudo_weight: float = 1.0
    transitive_weight: float = 0.1
    labelled_share: float = 0.5
    minutes: float | None = None
    check_fraction: float = 0.25
    train: TrainConfig = field(
        default_factory=lambda: TrainConfig(lr=1e-4, warmup_steps=0.05, checkpoint_every=200)
    )

    def __post_init__(self) -> None:
        problems = []
        if self.steps_per_cell < 1 or self.min_steps < 1:
            problems.append("steps_per_cell and min_steps must be >= 1")
        if self.max_steps is not None and self.max_steps < self.min_steps:
            problems.append(f"max_steps {self.max_steps} is below min_steps {self.min_steps}")
        if not 0 <= self.pseudo_fraction < 1:
            problems.append(f"pseudo_fraction must lie in [0, 1), got {self.pseudo_fraction}")
        if self.minutes is not None and not self.minutes > 0:
            problems.append(f"minutes must be positive, got {self.minutes}")
        if not 0 <= self.check_fraction < 1:
            problems.append(f"check_fraction must lie in [0, 1), got {self.check_fraction}")
        if not 0 < self.labelled_share <= 1:
            problems.append(f"labelled_share must lie in (0, 1], got {self.labelled_share}")
        weights = (self.unsupervised_weight, self.supervised_weight, self.pseudo_weight)
        if min(*weights, self.transitive_weight) < 0:
            problems.append("loss weights must be >= 0")
        if problems:
            raise InputError("fine-tuning configuration", "; ".join(problems))

    def steps_for(self, cells: int) -> int:
        """Optimiser steps for ``cells`` answered cells."""
        steps = max(self.min_steps, self.steps_per_cell * cells)
        return steps if self.max_steps is None else min(steps, self.max_steps)


# --------------------------------------------------------------------------------------------
# partial labels
# --------------------------------------------------------------------------------------------


@dataclass
class LinkLabels:
    """Known children of some detections, indexed by the rows of a :class:`WindowSet`.

    ``asked`` (N,) bool: the detection's children are known (possibly none); ``parent`` (N,)
    int64: the row of a detection's known parent (-1 where unknown); ``parent_dt`` (N,) int64:
    the frames between them (0 where unknown).
    """

    asked: torch.Tensor
    parent: torch.Tensor
    parent_dt: torch.Tensor

    @classmethod
    def from_links(
        cls,
        detections: Detections,
        parents: np.ndarray,
        links: np.ndarray,
        device: str | torch.device = "cpu",
    ) -> LinkLabels:
        """Labels from the ids whose children are known and their ``(E, 2)`` links."""
        n = len(detections)
        parents = np.asarray(parents, np.int64)
        links = np.asarray(links, np.int64).reshape(-1, 2)
        asked = np.zeros(n, bool)
        asked[detections.rows_of(parents)] = True
        rows = detections.rows_of(links.ravel()).reshape(-1, 2)
        if not asked[rows[:, 0]].all():
            raise InputError("labels", "a link leaves a detection whose children are not known")
        parent = np.full(n, -1, np.int64)
        parent_dt = np.zeros(n, np.int64)
        parent[rows[:, 1]] = rows[:, 0]
        parent_dt[rows[:, 1]] = detections.times[rows[:, 1]] - detections.times[rows[:, 0]]

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, device=device)

        return cls(tensor(asked), tensor(parent), tensor(parent_dt))

    @classmethod
    def from_annotations(
        cls,
        detections: Detections,
        annotations: Annotations,
        device: str | torch.device = "cpu",
    ) -> LinkLabels:
        """Labels from the latest answers (checked against ``detections`` first)."""
        annotations.check(detections)
        parents = np.fromiter(annotations.latest(), np.int64, len(annotations))
        return cls.from_links(detections, parents, annotations.links(), device)

    def __len__(self) -> int:
        return int(self.asked.sum())

    def targets(self, batch: WindowBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A_gt, valid)`` (B, N, N) for a batch: which pairs are labelled, and their labels."""
        mask = batch.mask
        rows = batch.rows.clamp(min=0)
        t = batch.times
        asked = self.asked[rows] & mask
        parent = torch.where(mask, self.parent[rows], -1)
        known = parent >= 0
        target = known[:, None, :] & (parent[:, None, :] == batch.rows[:, :, None])
        row_known = asked[:, :, None] & (t[:, None, :] == t[:, :, None] + 1)
        parent_t = t - self.parent_dt[rows]
        col_known = known[:, None, :] & (t[:, :, None] == parent_t[:, None, :])
        valid = (row_known | col_known | target) & valid_pairs(t, mask)
        return (target & valid).to(torch.float32), valid


# --------------------------------------------------------------------------------------------
# sampling and the objective
# --------------------------------------------------------------------------------------------


def labelled_windows(windows: WindowSet, labels: LinkLabels) -> np.ndarray:
    """Indices of the windows holding an answered cell together with the frame after it."""
    rows = windows.index
    real = rows >= 0
    safe = rows.clamp(min=0)
    last = windows.start[:, None] + windows.config.window - 1
    hit = real & labels.asked[safe] & (windows.times[safe] < last)
    return torch.nonzero(hit.any(1)).flatten().cpu().numpy()


class MixedSampler(Sampler[int]):
    """Window indices: ``share`` of them from ``labelled``, the rest from all ``total``
    windows, in an order fixed by the seed and the epoch (``set_epoch``), so a resumed run
    draws the same batches."""

    def __init__(self, labelled: np.ndarray, total: int, share: float, seed: int = 0) -> None:
        if total < 1:
            raise InputError("training data", "there are no windows to train on")
        self.labelled = np.asarray(labelled, np.int64)
        self.total = total
        self.share = share if len(self.labelled) else 0.0
        self.seed = seed
        self.epoch = 0
        self.size = max(len(self.labelled), 1) if self.share == 1 else total

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        rng = np.random.default_rng((self.seed, self.epoch))
        from_labelled = rng.random(self.size) < self.share
        picks = rng.integers(0, self.total, self.size)
        if len(self.labelled):
            picks[from_labelled] = rng.choice(self.labelled, int(from_labelled.sum()))
        return iter(picks.tolist())


class FinetuneObjective:
    """``loss_fn(model, batch)`` for :func:`attrackt.train.fit` over an
    :class:`~attrackt.model.network.AssociationModel` (``model.associations(batch)``,
    ``model.heads``).
    """

    def __init__(
        self, supervised: LinkLabels, pseudo: LinkLabels | None, config: FinetuneConfig
    ) -> None:
        self.supervised = supervised
        self.pseudo = pseudo
        self.config = config

    def __call__(self, model: nn.Module, batch: WindowBatch) -> dict[str, torch.Tensor]:
        c = self.config
        A = model.associations(batch)
        parts: dict[str, torch.Tensor] = {}
        loss = A.sum() * 0.0
        if c.unsupervised_weight > 0:
            if model.heads is None or batch.z.shape[-1] == 0:
                raise InputError("fine-tuning", "the unsupervised term needs heads and embeddings")
            parts["attrackt"] = attrackt_loss(
                A, batch.z, batch.times, batch.mask, model.heads, n_frames=batch.window
            )
            loss = loss + c.unsupervised_weight * parts["attrackt"]
        terms = [("supervised", self.supervised, c.supervised_weight)]
        if self.pseudo is not None:
            terms.append(("pseudo", self.pseudo, c.pseudo_weight))
        for name, labels, weight in terms:
            if weight > 0:
                a_gt, valid = labels.targets(batch)
                parts[name] = supervised_loss(A, a_gt, valid)
                loss = loss + weight * parts[name]
        if c.transitive_weight > 0:
            parts["transitive"] = transitive_loss(A, batch.times, batch.mask)
            loss = loss + c.transitive_weight * parts["transitive"]
        parts["loss"] = loss
        return parts


def prepare_model(model: nn.Module, config: FinetuneConfig) -> LoRAConfig | None:
    """Make ``model`` ready to fine-tune: LoRA adapters (the heads stay trainable) or, without
    ``config.lora``, every parameter trainable. Returns the LoRA configuration applied."""
    from attrackt.model.lora import apply_lora

    if config.lora is None:
        for param in model.parameters():
            param.requires_grad_(True)
        return None
    lora = config.lora
    if not lora.trainable and getattr(model, "heads", None) is not None:
        lora = dataclasses.replace(lora, trainable=("heads.*",))
    apply_lora(model, lora)
    return lora


@dataclass
class FinetuneResult:
    """What :func:`finetune` did; ``model`` is the fine-tuned model (adapted, not merged)."""

    model: nn.Module
    steps: int
    resumed_from: int | None
    adapters: Path | None
    checkpoint: Path | None
    answered: int
    pseudo: int
    seconds: float
    history: list[dict[str, float]]
    held_out: list[int] | None = None  # answered cells held out of training (None: no check)


def finetune(
    model: nn.Module,
    windows: WindowSet,
    supervised: LinkLabels,
    pseudo: LinkLabels | None,
    config: FinetuneConfig,
    out_dir: str | Path,
    resume: bool = True,
    extra: dict[str, Any] | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune ``model`` (an association model with its base weights loaded) on the labels.

    Writes ``out_dir/last.pt`` (fit's checkpoint, for resuming), ``out_dir/log.jsonl`` and,
    with LoRA, ``out_dir/adapters.pt`` (the adapters and heads only). ``extra`` is recorded in
    the checkpoints. The model comes back adapted (not merged) and in eval mode. ``on_step``:
    see :func:`attrackt.train.fit`.
    """
    from attrackt.budget import budget_config, resumed_steps
    from attrackt.model.lora import save_adapters
    from attrackt.train import fit

    start = time.perf_counter()
    out_dir = Path(out_dir)
    lora = prepare_model(model, config)
    pseudo = pseudo if config.pseudo_fraction > 0 else None
    labelled = labelled_windows(windows, supervised)
    if len(supervised) and not len(labelled):
        logger.warning("no window holds an answered cell with its next frame")
    sampler = MixedSampler(labelled, len(windows), config.labelled_share, config.train.seed)
    objective = FinetuneObjective(supervised, pseudo, config)

    def make_batch(indices: torch.Tensor) -> WindowBatch:
        return windows.batch(indices, augment=True)

    steps = resumed_steps(out_dir, resume)
    train = dataclasses.replace(config.train, steps=steps or config.steps_for(len(supervised)))
    if steps is None and config.minutes is not None:
        model.to(windows.device)
        affordable = budget_config(model, objective, sampler, make_batch, train, config.minutes)
        if affordable.steps < train.steps:  # the budget, not the labels, sets the length
            train = affordable
    steps = train.steps
    logger.info(
        "fine-tuning on %d answered cells (%d windows) and %d pseudo-labelled cells, %d steps",
        len(supervised),
        len(labelled),
        0 if pseudo is None else len(pseudo),
        steps,
    )
    state = {**(extra or {}), "lora": None if lora is None else lora.to_dict()}
    result = fit(
        model,
        objective,
        sampler,
        make_batch,
        train,
        out_dir,
        resume=resume,
        extra_state=state,
        on_step=on_step,
    )
    adapters = None
    if lora is not None:
        adapters = out_dir / "adapters.pt"
        extra = {"answered": len(supervised), "steps": result.step}
        save_adapters(adapters, model, lora, extra=extra)
    return FinetuneResult(
        model=model,
        steps=result.step,
        resumed_from=result.resumed_from,
        adapters=adapters,
        checkpoint=result.last_checkpoint,
        answered=len(supervised),
        pseudo=0 if pseudo is None else len(pseudo),
        seconds=time.perf_counter() - start,
        history=result.history,
    )


def save_merged(model: nn.Module, path: str | Path, extra: dict[str, Any]) -> None:
    """Write ``model`` with its adapters merged as a plain association-model checkpoint (what
    ``attrackt predict`` and :func:`~attrackt.model.network.load_association_model` read). The
    model itself is left as it is."""
    from attrackt.checkpoints import CHECKPOINT_FORMAT, model_identity, save_checkpoint
    from attrackt.model.lora import merge_lora

    merged = merge_lora(copy.deepcopy(model)).cpu()
    kind, model_config = model_identity(merged)
    save_checkpoint(
        path,
        {
            "format": CHECKPOINT_FORMAT,
            "kind": kind,
            "model_config": model_config,
            "model": merged.state_dict(),
            "step": 0,
            "train_config": {},
            "extra": extra,
            "best_val_loss": None,
        },
    )


def finetune_checkpoint(
    checkpoint: str | Path,
    detections: Detections,
    annotations: Annotations,
    config: FinetuneConfig,
    out_dir: str | Path,
    *,
    pseudo: tuple[np.ndarray, np.ndarray] | None = None,
    scratch: bool = False,
    resume: bool = True,
    on_step: Callable[[int, int], None] | None = None,
) -> FinetuneResult:
    """Fine-tune the association model of ``checkpoint`` on ``annotations`` of ``detections``.

    ``pseudo``: ``(parents, links)`` of the pseudo-labelled cells (see :func:`pseudo_labels`).
    ``config.check_fraction`` of the answered cells are left out of training (the result's
    ``held_out``; ``None`` without a check), to check the model with. ``scratch``: start from
    random weights of the same shape instead (a baseline; with it, every parameter trains).
    Writes what :func:`finetune` writes plus ``out_dir/model.pt``, the merged model as a plain
    checkpoint for prediction. ``on_step``: see :func:`attrackt.train.fit`.
    """
    from attrackt.checkpoints import resolve_device
    from attrackt.model.network import AssociationModel, load_association_model, windows_from_extra
    from attrackt.train import seed_everything

    device = resolve_device(config.train.device)
    model, extra = load_association_model(checkpoint, device)
    if scratch:
        seed_everything(config.train.seed)
        model = AssociationModel(model.config).to(device)
        config = dataclasses.replace(config, lora=None)
    window_config = windows_from_extra(extra)
    if config.unsupervised_weight == 0 and not model.config.transformer.use_embedding:
        window_config = dataclasses.replace(window_config, embedding=None)  # z is not needed
    windows = WindowSet.build(detections, None, window_config, device=device)
    annotations.check(detections)
    kept, held = annotations.hold_out(config.check_fraction, config.train.seed)
    supervised = LinkLabels.from_annotations(detections, kept, device)
    pseudo_labels_ = None
    if pseudo is not None and config.pseudo_fraction > 0:
        pseudo_labels_ = LinkLabels.from_links(detections, *pseudo, device=device)
    info = {
        "base": str(checkpoint),
        "scratch": scratch,
        "answered": len(supervised),
        "held_out": sorted(held.latest()) if config.check_fraction > 0 else None,
        "pseudo": 0 if pseudo_labels_ is None else len(pseudo_labels_),
    }
    result = finetune(
        model,
        windows,
        supervised,
        pseudo_labels_,
        config,
        out_dir,
        resume=resume,
        extra={**extra, "finetune": info},
        on_step=on_step,
    )
    save_merged(result.model, Path(out_dir) / "model.pt", {**extra, "finetune": info})
    result.held_out = info["held_out"]
    return result
