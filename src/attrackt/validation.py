"""The held-out set of a training run (:class:`Validation`) and its scoring with the training
objective (:func:`validation_losses`), shared out among the processes of a data-parallel run.
:mod:`attrackt.train` re-exports :class:`Validation`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from attrackt import distributed
from attrackt.optim import LossFn, MakeBatch, autocast, checked_losses

if TYPE_CHECKING:
    from attrackt.train import TrainConfig


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


def validation_losses(
    model: nn.Module,
    loss_fn: LossFn,
    val: Validation,
    config: TrainConfig,
    device: torch.device,
    rank: int = 0,
    world: int = 1,
) -> dict[str, float]:
    """Size-weighted mean losses over ``val`` (keys prefixed ``val_``), in eval mode, without
    gradients.

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
            with autocast(device, config):
                out = checked_losses(loss_fn(model, val.make_batch(idx)))
            for key, value in out.items():
                sums[key] = sums.get(key, 0.0) + value.detach().float() * len(idx)
    model.train(was_training)
    totals: dict[str, float] = {}
    for part in distributed.all_gather({k: float(v) for k, v in sums.items()}):
        for key, value in part.items():
            totals[key] = totals.get(key, 0.0) + value
    return {f"val_{k}": v / val.size for k, v in totals.items()}
