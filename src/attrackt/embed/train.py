"""Training the crop auto-encoder with the generic loop of :mod:`attrackt.train`."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from attrackt.budget import budget_config, resumed_steps
from attrackt.embed.model import AutoEncoder, AutoEncoderConfig, kl_divergence
from attrackt.errors import InputError
from attrackt.train import (
    TrainConfig,
    Validation,
    fit,
    resolve_device,
    seed_everything,
    to_device,
)

logger = logging.getLogger(__name__)


def _default_train() -> TrainConfig:
    return TrainConfig(steps=5000, batch_size=64, lr=3e-4, min_lr=1e-5, warmup_steps=0.02)


@dataclass
class EmbedConfig:
    """The embedding stage: crops, auto-encoder shape, its training and augmentation.

    ``beta`` weighs the KL term of a variational model. A share ``val_fraction`` of the crops
    (at most ``max_val_crops``) is held out for validation. Training batches are augmented
    with random flips along every axis and, for square Y-X crops, 90-degree rotations
    (``augment``), and with a random gain and offset of up to ``intensity_jitter``.
    ``low``/``high`` are the normalisation percentiles of each movie; ``mask_others`` blanks
    other cells in each crop. ``minutes``: train for about this long instead of
    ``train.steps`` steps (the step count is measured first; see :mod:`attrackt.budget`).
    """

    model: AutoEncoderConfig = field(default_factory=AutoEncoderConfig)
    train: TrainConfig = field(default_factory=_default_train)
    beta: float = 1e-3
    val_fraction: float = 0.05
    max_val_crops: int = 1024
    augment: bool = True
    intensity_jitter: float = 0.1
    low: float = 1.0
    high: float = 99.8
    mask_others: bool = False
    minutes: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if not 0 <= self.beta < float("inf"):
            problems.append(f"beta must be >= 0, got {self.beta}")
        if not 0 <= self.val_fraction < 1 or self.max_val_crops < 0:
            problems.append("val_fraction must lie in [0, 1) and max_val_crops be >= 0")
        if not 0 <= self.intensity_jitter < 1:
            problems.append(f"intensity_jitter must lie in [0, 1), got {self.intensity_jitter}")
        if not 0 <= self.low < self.high <= 100:
            problems.append(f"percentiles need 0 <= low < high <= 100, got {self.low}, {self.high}")
        if self.minutes is not None and not self.minutes > 0:
            problems.append(f"minutes must be positive, got {self.minutes}")
        if problems:
            raise InputError("embedding configuration", "; ".join(problems))


def augment_crops(x: torch.Tensor, flip: bool, rotate: bool, jitter: float) -> torch.Tensor:
    """Per crop: random flips of every spatial axis, 90-degree Y-X rotations, gain and offset.

    ``x`` is ``(B, *spatial)``; draws come from the global torch RNG of ``x``'s device.
    """
    b, nd = x.shape[0], x.ndim - 1
    shape = (b,) + (1,) * nd
    for axis in range(1, nd + 1) if flip else ():
        flipped = torch.rand(b, device=x.device) < 0.5
        x = torch.where(flipped.view(shape), x.flip(axis), x)
    if rotate:
        turns = torch.randint(0, 4, (b,), device=x.device)
        turned = torch.stack([torch.rot90(x, k, dims=(-2, -1)) for k in range(4)])
        x = turned[turns, torch.arange(b, device=x.device)]
    if jitter > 0:
        gain = 1 + jitter * (2 * torch.rand(shape, device=x.device) - 1)
        offset = jitter * (2 * torch.rand(shape, device=x.device) - 1)
        x = x * gain + offset
    return x


def reconstruction_loss(beta: float):
    """``loss_fn`` for :func:`attrackt.train.fit`: MSE (+ ``beta`` KL for a variational model)."""

    def loss_fn(model: AutoEncoder, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        out = model(batch)
        mse = F.mse_loss(out.reconstruction.float(), batch.float())
        if out.logvar is None:
            return {"loss": mse}
        kl = kl_divergence(out.mean.float(), out.logvar.float())
        return {"loss": mse + beta * kl, "mse": mse, "kl": kl}

    return loss_fn


def check_crops(crops: np.ndarray, config: AutoEncoderConfig) -> None:
    """Raise :class:`InputError` unless ``crops`` are finite ``(N, *config.crop_size)``."""
    if crops.ndim != config.ndim + 1 or tuple(crops.shape[1:]) != config.crop_size:
        raise InputError(
            "crops", f"expected (N, {', '.join(map(str, config.crop_size))}), got {crops.shape}"
        )
    if not np.isfinite(crops).all():
        raise InputError("crops", "contain NaN or infinite values")


def train_autoencoder(
    crops: np.ndarray, config: EmbedConfig, out_dir: str | Path, *, resume: bool = True
) -> AutoEncoder:
    """Train an auto-encoder on ``crops`` ``(N, [Z,] Y, X)``; checkpoints go to ``out_dir``.

    The crops (float16 is enough for normalised ones) are moved to the device once; batches are
    gathered and augmented there. Returns the trained model (on the training device, eval mode);
    ``out_dir/last.pt`` (and ``best.pt``) hold it for :func:`attrackt.embed.load_autoencoder`.
    """
    check_crops(crops, config.model)
    if len(crops) < 2:
        raise InputError("crops", f"need at least 2 crops to train on, got {len(crops)}")
    train_cfg = config.train
    device = resolve_device(train_cfg.device)
    n_val = min(config.max_val_crops, int(round(config.val_fraction * len(crops))))
    order = np.random.default_rng(train_cfg.seed).permutation(len(crops))
    data = torch.from_numpy(np.ascontiguousarray(crops)).to(device)
    train_rows = torch.from_numpy(order[n_val:]).to(device)
    val_rows = torch.from_numpy(order[:n_val]).to(device)
    y, x = config.model.crop_size[-2:]
    rotate = config.augment and y == x  # a 90-degree turn keeps only a square's shape
    channel = (slice(None), None)  # (B, *spatial) -> (B, 1, *spatial)

    def make_batch(indices: torch.Tensor) -> torch.Tensor:
        batch = data[train_rows[to_device(indices, device)]].float()
        return augment_crops(batch, config.augment, rotate, config.intensity_jitter)[channel]

    seed_everything(train_cfg.seed)
    model = AutoEncoder(config.model).to(device)
    val = None
    if n_val:
        val = Validation(n_val, lambda idx: data[val_rows[to_device(idx, device)]].float()[channel])
    if config.minutes is not None:
        steps = resumed_steps(out_dir, resume)
        if steps is None:
            train_cfg = budget_config(
                model,
                reconstruction_loss(config.beta),
                len(crops) - n_val,
                make_batch,
                train_cfg,
                config.minutes,
                val_size=n_val,
            )
        else:
            train_cfg = dataclasses.replace(train_cfg, steps=steps)
    result = fit(
        model,
        reconstruction_loss(config.beta),
        len(crops) - n_val,
        make_batch,
        train_cfg,
        out_dir,
        val=val,
        resume=resume,
    )
    logger.info("auto-encoder trained for %d steps (%s)", result.step, result.last_checkpoint)
    return model
