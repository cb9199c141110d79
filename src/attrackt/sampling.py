"""Which samples each training step draws, and how their indices reach the device.

:class:`EpochShuffler` is the default sampler (an order fixed by the seed and the epoch);
:func:`as_sampler` and :func:`training_sampler` turn a sample count into one (the latter checks
that the processes of a data-parallel run can share it); :func:`epoch_batches` is the endless
stream of global batches from any step on; :func:`to_device` moves indices without waiting for
the device. :mod:`attrackt.train` re-exports :class:`EpochShuffler` and :func:`to_device`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import torch
from torch.utils.data import BatchSampler, DistributedSampler, Sampler

from attrackt.errors import InputError


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
        """Fix the order of the next iteration to that of epoch ``epoch``."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator()
        generator.manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())

    def __len__(self) -> int:
        return self.size


def as_sampler(data: int | Sampler[int], seed: int) -> Sampler[int]:
    """``data`` itself when it is a sampler; for a sample count, an :class:`EpochShuffler`."""
    return EpochShuffler(data, seed) if isinstance(data, int) else data


def training_sampler(data: int | Sampler[int], seed: int, world: int = 1) -> Sampler[int]:
    """:func:`as_sampler`, checked for ``world`` processes that share every global batch."""
    sampler = as_sampler(data, seed)
    if world > 1 and isinstance(sampler, DistributedSampler):
        raise InputError(
            "training data",
            "fit shares every global batch among the processes itself: give it a sampler with "
            "the same order in every process, not a DistributedSampler",
        )
    if len(sampler) < world:
        raise InputError(
            "training data", f"{len(sampler)} samples are too few to share among {world} processes"
        )
    return sampler


def epoch_batches(sampler: Sampler[int], batch_size: int, start: int = 0) -> Iterator[list[int]]:
    """Global batches of ``sampler``'s indices, epoch after epoch, from batch ``start`` on.

    Every batch holds ``batch_size`` indices when the sampler has that many (the short rest of
    an epoch is dropped); a smaller sampler gives one short batch an epoch. A sampler with
    ``set_epoch`` is told each epoch before it is read, so batch ``start`` is the one that an
    uninterrupted stream gives there.
    """
    drop_last = len(sampler) >= batch_size  # keep every batch full when there is enough
    batches = BatchSampler(sampler, batch_size, drop_last=drop_last)
    per_epoch = len(batches)
    if per_epoch < 1:
        raise InputError("training data", "there is nothing to train on (0 samples)")
    epoch, skip = divmod(start, per_epoch)
    while True:
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        yield from itertools.islice(iter(batches), skip, per_epoch)
        epoch, skip = epoch + 1, 0


def to_device(indices: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``indices`` on ``device``; to a GPU through pinned memory, without waiting for it."""
    if device.type != "cuda":
        return indices.to(device)
    return indices.pin_memory().to(device, non_blocking=True)
