"""One optimiser step of :func:`attrackt.train.fit`, apart from the loop around it.

What a caller hands the loop (:data:`LossFn`, :data:`MakeBatch`), AdamW over the trainable
parameters (:func:`adamw`), bf16 autocast (:func:`autocast`), the check of what ``loss_fn``
returns (:func:`checked_losses`), and :class:`OptimiserStep`: forward and backward on this
process's share of a global batch, gradient clipping and the update. :mod:`attrackt.train`
re-exports :data:`LossFn` and :data:`MakeBatch`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from attrackt import distributed
from attrackt.errors import InputError

if TYPE_CHECKING:
    from attrackt.train import TrainConfig

LossFn = Callable[[nn.Module, Any], Mapping[str, torch.Tensor]]
MakeBatch = Callable[[torch.Tensor], Any]


def adamw(model: nn.Module, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
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


def autocast(device: torch.device, config: TrainConfig) -> torch.autocast:
    """bf16 autocast as ``config.amp`` asks (``"auto"``: on CUDA only), else a disabled one."""
    enabled = config.amp == "bf16" or (config.amp == "auto" and device.type == "cuda")
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def checked_losses(out: Mapping[str, torch.Tensor]) -> Mapping[str, torch.Tensor]:
    """``out`` when it holds the key ``"loss"``, as ``loss_fn`` must return."""
    if "loss" not in out:
        raise KeyError(f"loss_fn must return a dict with the key 'loss'; got {sorted(out)}")
    return out


@dataclass
class StepResult:
    """What one step gives the log: the losses, the gradient norm before clipping, and this
    process's share of the global batch (its weight in the batch mean)."""

    losses: Mapping[str, torch.Tensor]
    grad_norm: torch.Tensor
    weight: float


class OptimiserStep:
    """One update of ``model`` from a global batch: of ``world`` processes, the one of rank
    ``rank`` takes its contiguous share.

    With one process the share is the whole batch. With several, the first step finds which
    parameters ``loss_fn`` uses and averages their gradients by hand, then ``(model, loss_fn)``
    is wrapped in ``DistributedDataParallel``, searching for unused parameters on every step
    only when the first step left some unused. Unequal shares (a batch smaller than the global
    batch size) are weighted by their size, so the gradient is that of the whole batch's mean.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        config: TrainConfig,
        device: torch.device,
        world: int = 1,
        rank: int = 0,
    ) -> None:
        self.optimizer, self.schedule = optimizer, schedule
        self.config, self.device = config, device  # for amp and grad_clip, which never change
        self.world, self.rank, self.parallel = world, rank, world > 1
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.loss_module = distributed.LossModule(model, loss_fn)
        self.trainer: nn.Module = self.loss_module  # DistributedDataParallel after a first step

    def __call__(self, make_batch: MakeBatch, indices: torch.Tensor) -> StepResult:
        """Forward, backward and update on this process's share of the global batch ``indices``."""
        share = indices.tensor_split(self.world)[self.rank] if self.parallel else indices
        weight = len(share) / len(indices)  # this process's part of the batch mean
        with autocast(self.device, self.config):
            out = checked_losses(self.trainer(make_batch(share)))
        self.optimizer.zero_grad(set_to_none=True)
        if len(share) * self.world == len(indices):
            out["loss"].backward()
        else:  # unequal shares (a batch smaller than batch_size): weigh them by size
            (out["loss"] * (weight * self.world)).backward()
        if self.parallel and self.trainer is self.loss_module:
            every_used = distributed.average_gradients(self.params)
            self.trainer = distributed.wrap(self.loss_module, find_unused_parameters=not every_used)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.params if p.grad is not None], self.config.grad_clip or math.inf
        )
        self.optimizer.step()
        self.schedule.step()
        return StepResult(out, grad_norm, weight)
