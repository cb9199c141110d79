"""Sliding-window inference: from detections to sparse association scores.

Every window of ``window`` consecutive frames (stride 1; crowded windows split into spatial
tiles, as in training) is scored by the model. A pair (i at t, j at t + dt), ``dt <= max_dt``,
gets the mean of its scores over every window (and tile) that holds both, and, with test-time
augmentation, over the 8 flips and transpositions of the y-x plane, which makes the scores
invariant to them. In 3D, z is left as it is: swapping it with y or x would not keep the shape
of a stack whose planes lie further apart than its pixels (a z flip would, at twice the cost).
Pairs whose mean is below ``threshold`` are dropped.

Scores are accumulated on the device by pair key (``source_row * N + target_row``) with
``torch.unique`` and ``index_add_``; windows come in time order, so pairs whose source frame no
later window can hold leave the accumulator after each batch and memory stays bounded by a few
frames' worth of pairs.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from attrackt.checkpoints import resolve_device
from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.model import WindowBatch, WindowConfig, WindowSet
from attrackt.model.network import AssociationModel, load_association_model, windows_from_extra

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictConfig:
    """How to score a movie: ``max_dt`` (frames a link may span), ``threshold`` (lower mean
    scores are dropped), ``tta`` (average over the 8 flips and transpositions of y-x),
    ``batch_size`` (windows per forward pass), ``device``, ``amp`` (bf16 autocast on CUDA),
    ``progress`` (a progress bar)."""

    max_dt: int = 1
    threshold: float = 0.01
    tta: bool = True
    batch_size: int = 16
    device: str = "auto"
    amp: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_dt < 1:
            raise InputError("prediction", f"max_dt must be at least 1, got {self.max_dt}")
        if not 0 <= self.threshold < 1:
            raise InputError("prediction", f"threshold must lie in [0, 1), got {self.threshold}")
        if self.batch_size < 1:
            raise InputError("prediction", f"batch_size must be >= 1, got {self.batch_size}")


def plane_transforms(tta: bool) -> list[tuple[bool, bool, bool]]:
    """``(transpose y-x, flip y, flip x)`` of each test-time transform (identity first)."""
    if not tta:
        return [(False, False, False)]
    return list(itertools.product((False, True), repeat=3))


def transform_coords(coords: torch.Tensor, transform: tuple[bool, bool, bool]) -> torch.Tensor:
    """Apply one :func:`plane_transforms` entry to the y-x part of ``coords`` (B, N, 1+ndim)."""
    transpose, flip_y, flip_x = transform
    y, x = coords[..., -2], coords[..., -1]
    if transpose:
        y, x = x, y
    y = -y if flip_y else y
    x = -x if flip_x else x
    return torch.cat([coords[..., :-2], y[..., None], x[..., None]], dim=-1)


class _PairMeans:
    """Running sums and counts of scores per pair key, flushed when a pair is final."""

    def __init__(self, device: torch.device) -> None:
        empty = torch.zeros(0, device=device)
        self.keys = empty.long()
        self.sums = empty.double()
        self.counts = empty.long()
        self.done: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, keys: torch.Tensor, scores: torch.Tensor) -> None:
        keys = torch.cat([self.keys, keys])
        unique, inverse = torch.unique(keys, return_inverse=True)
        old = len(self.keys)
        sums = torch.zeros(len(unique), dtype=torch.float64, device=keys.device)
        sums.index_add_(0, inverse[:old], self.sums)
        sums.index_add_(0, inverse[old:], scores.double())
        counts = torch.zeros(len(unique), dtype=torch.int64, device=keys.device)
        counts.index_add_(0, inverse[:old], self.counts)
        counts.index_add_(0, inverse[old:], torch.ones_like(inverse[old:]))
        self.keys, self.sums, self.counts = unique, sums, counts

    def flush(self, final: torch.Tensor, threshold: float) -> None:
        """Move the pairs marked ``final`` out, keeping those whose mean reaches ``threshold``."""
        means = self.sums[final] / self.counts[final]
        keep = means >= threshold
        self.done.append((self.keys[final][keep].cpu().numpy(), means[keep].float().cpu().numpy()))
        self.keys, self.sums, self.counts = (
            self.keys[~final],
            self.sums[~final],
            self.counts[~final],
        )

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate([k for k, _ in self.done]) if self.done else np.zeros(0, np.int64)
        means = np.concatenate([m for _, m in self.done]) if self.done else np.zeros(0, np.float32)
        return keys, means


def _batch_scores(
    model: AssociationModel, batch: WindowBatch, transforms: list, amp: bool
) -> torch.Tensor:
    """Association scores (B, N, N) averaged over the test-time transforms."""
    device = batch.coords.device
    total = None
    for transform in transforms:
        moved = dataclasses.replace(batch, coords=transform_coords(batch.coords, transform))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            scores = model.associations(moved)
        total = scores if total is None else total + scores
    return total / len(transforms)


@torch.no_grad()
def predict_associations(
    model: AssociationModel,
    detections: Detections,
    windows: WindowConfig,
    config: PredictConfig | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> Associations:
    """Associations of every pair up to ``config.max_dt`` frames apart (see the module doc).

    ``windows`` should be the window settings the model was trained with (a checkpoint keeps
    them: :func:`predict_from_checkpoint`); its stride is set to 1. The returned table's
    ``meta`` records the settings, the number of frames and the seconds it took. ``on_batch``
    is called after each batch of windows with ``(batches done, batches)``; an exception it
    raises (a caller's cancel) stops the prediction.
    """
    config = config or PredictConfig()
    device = resolve_device(config.device)
    start_time = time.perf_counter()
    window_config = dataclasses.replace(windows, stride=1)
    shape = getattr(model, "config", None)
    if shape is not None and not shape.transformer.use_embedding:  # z only taught the model
        window_config = dataclasses.replace(window_config, embedding=None)
    if config.max_dt >= window_config.window:
        raise InputError(
            "prediction",
            f"max_dt {config.max_dt} needs windows longer than {window_config.window} frames",
        )
    if len(detections) == 0:
        raise InputError("detections", "there are no detections to score")
    model = model.to(device).eval()
    ws = WindowSet.build(detections, None, window_config, device=device)
    n = len(detections)
    seq_codes = pd.factorize(detections.table["sequence"])[0]
    row_seq = torch.as_tensor(seq_codes, device=device)
    row_t = torch.as_tensor(detections.times.copy(), device=device)
    code_of = dict(zip(detections.table["sequence"], seq_codes, strict=False))
    win_seq = np.array([code_of[s] for s in ws.sequences])
    win_start = ws.start.cpu().numpy()
    transforms = plane_transforms(config.tta)
    amp = config.amp and device.type == "cuda"
    means = _PairMeans(device)
    batches = range(0, len(ws), config.batch_size)
    for done, first in enumerate(
        tqdm(batches, desc="predict", unit="batch", disable=not config.progress), start=1
    ):
        idx = np.arange(first, min(first + config.batch_size, len(ws)))
        batch = ws.batch(idx)
        scores = _batch_scores(model, batch, transforms, amp)
        dt = batch.times[:, None, :] - batch.times[:, :, None]
        both = batch.mask[:, :, None] & batch.mask[:, None, :]
        b, i, j = torch.nonzero(both & (dt >= 1) & (dt <= config.max_dt), as_tuple=True)
        source, target = batch.rows[b, i], batch.rows[b, j]
        means.add(source * n + target, scores[b, i, j])
        nxt = idx[-1] + 1
        src_rows = means.keys // n
        if nxt < len(ws):  # a later window of the same sequence may still hold the pair
            pending = (row_seq[src_rows] == int(win_seq[nxt])) & (
                row_t[src_rows] >= int(win_start[nxt])
            )
            means.flush(~pending, config.threshold)
        else:
            means.flush(torch.ones_like(src_rows, dtype=torch.bool), config.threshold)
        if on_batch is not None:
            on_batch(done, len(batches))
    keys, score = means.result()
    source, target = keys // n, keys % n
    ids, times = detections.ids, detections.times
    seconds = time.perf_counter() - start_time
    frames = int(detections.table.groupby("sequence")["t"].nunique().sum())
    meta = {
        "max_dt": config.max_dt,
        "threshold": config.threshold,
        "tta": config.tta,
        "window": window_config.window,
        "windows": len(ws),
        "frames": frames,
        "seconds": seconds,
    }
    logger.info(
        "predicted %d associations over %d frames in %.1f s (%.1f frames/s)",
        len(source),
        frames,
        seconds,
        frames / max(seconds, 1e-9),
    )
    return Associations.from_arrays(
        ids[source], ids[target], score, times[target] - times[source], meta=meta
    )


def predict_from_checkpoint(
    checkpoint: str | Path,
    detections: Detections,
    config: PredictConfig | None = None,
    on_batch: Callable[[int, int], None] | None = None,
) -> Associations:
    """Load the model of a training run's checkpoint and score ``detections`` with it
    (``on_batch``: see :func:`predict_associations`)."""
    config = config or PredictConfig()
    model, extra = load_association_model(checkpoint, config.device)
    windows = windows_from_extra(extra)
    associations = predict_associations(model, detections, windows, config, on_batch)
    associations.meta["checkpoint"] = str(checkpoint)
    return associations
