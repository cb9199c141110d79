"""From pairwise logits to association scores: each cell has at most one parent per frame.

``A[b, i, j]`` is the score that token ``i`` (earlier) is the parent of token ``j`` (later). For
every child ``j`` and every earlier frame, the scores over the candidate parents in that frame are
normalised together (Trackastra's "parental softmax"): ``softmax`` makes them sum to one,
``quiet_softmax`` adds 1 to the denominator so that a cell may have no parent (mass in [0, 1)),
``sigmoid`` scores each pair on its own. A cell may have several children.
"""

from __future__ import annotations

from typing import Literal

import torch

Normalisation = Literal["quiet_softmax", "softmax", "sigmoid"]
NORMALISATIONS: tuple[str, ...] = ("quiet_softmax", "softmax", "sigmoid")
LOGIT_BOUND = 30.0  # logits are soft-clamped to +-LOGIT_BOUND: exp() stays finite in float32


def valid_pairs(times: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, N, N) bool: both tokens real and ``times[j] > times[i]`` (i a candidate parent of j)."""
    both = mask[:, :, None] & mask[:, None, :]
    return both & (times[:, :, None] < times[:, None, :])


def frame_onehot(times: torch.Tensor, mask: torch.Tensor, n_frames: int) -> torch.Tensor:
    """(B, N, n_frames) float32: which frame each real token is in (padding rows are zero)."""
    frames = torch.arange(n_frames, device=times.device)
    return ((times[..., None] == frames) & mask[..., None]).to(torch.float32)


def normalise_associations(
    logits: torch.Tensor,
    times: torch.Tensor,
    mask: torch.Tensor,
    mode: Normalisation = "quiet_softmax",
    n_frames: int | None = None,
) -> torch.Tensor:
    """Association scores (B, N, N) in float32, zero outside :func:`valid_pairs`.

    ``times`` (B, N) frame index of each token within its window, ``mask`` (B, N) True for real
    tokens. ``n_frames`` bounds the frame indices (default: computed from ``times``, which costs
    a device sync). Runs in float32 whatever the autocast state.
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; choose one of {NORMALISATIONS}")
    valid = valid_pairs(times, mask)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        bounded = LOGIT_BOUND * torch.tanh(logits.float() / LOGIT_BOUND)
        if mode == "sigmoid":
            return torch.where(valid, torch.sigmoid(bounded), 0.0)
        n_frames = int(times.max()) + 1 if n_frames is None else n_frames
        onehot = frame_onehot(times, mask, n_frames)  # (B, N, T)
        expo = torch.where(valid, torch.exp(bounded), 0.0)
        per_frame = onehot.transpose(1, 2) @ expo  # (B, T, N): sum over parents in frame s
        denominator = onehot @ per_frame  # (B, N, N): the sum over the parent's frame
        if mode == "quiet_softmax":
            denominator = denominator + 1.0
        return torch.where(valid, expo / denominator.clamp(min=1e-30), 0.0)
