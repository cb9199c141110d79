"""The training objectives: the Attrackt reconstruction loss, the transitive loss, the motion
loss, the supervised loss, and :func:`objective`, which combines them for one batch.

Every function takes whole batches (B, N, ...) and is loop-free over samples; losses are
computed in float32 whatever the autocast state. ``A`` is always a normalised association
matrix from :func:`~attrackt.model.associations.normalise_associations` (zero outside valid
pairs); ``times`` (B, N) the frame index within the window and ``mask`` (B, N) True for real
tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from attrackt.model.associations import (
    frame_onehot,
    normalise_associations,
    valid_pairs,
)
from attrackt.model.heads import AttracktHeads
from attrackt.model.windows import WindowBatch

Objective = Literal["unsupervised", "supervised", "mixed"]


def _float32(t: torch.Tensor) -> torch.autocast:
    return torch.autocast(device_type=t.device.type, enabled=False)


def _device_ints(values: Sequence[int], device: torch.device) -> torch.Tensor:
    """``values`` as a tensor on ``device``; a run of consecutive ints without a host copy (a
    copy from pageable memory waits for the device)."""
    first = values[0]
    if list(values) == list(range(first, first + len(values))):
        return torch.arange(first, first + len(values), device=device)
    return torch.as_tensor(list(values), device=device)


def attrackt_loss(
    A: torch.Tensor,
    z: torch.Tensor,
    times: torch.Tensor,
    mask: torch.Tensor,
    heads: AttracktHeads,
    dts: Sequence[int] | None = None,
    normalise: bool = True,
    target: torch.Tensor | None = None,
    n_frames: int | None = None,
) -> torch.Tensor:
    """Reconstruct each cell's embedding from its predicted parents, ``dt`` frames earlier.

    For each ``dt`` (default 1 .. last frame) and each cell j: ``zhat_j = m_D(sum_i A_ij
    m_E(z_i))`` over the cells i of frame ``t_j - dt``; the loss is the mean squared error to
    ``z_j`` (divided by the variance of ``z`` over the batch when ``normalise``) over the cells
    that have at least one candidate in that frame, summed over ``dt``. ``target`` replaces
    ``z_j`` as what is reconstructed (default: ``z`` itself). ``n_frames``: the window length
    (default: computed from ``times``, which costs a device sync).
    """
    target = z if target is None else target
    with _float32(A):
        A, z, target = A.float(), z.float(), target.float()
        n_frames = int(times.max()) + 1 if n_frames is None else n_frames
        dts = list(range(1, n_frames)) if dts is None else [d for d in dts if 0 < d < n_frames]
        if not dts:
            return A.sum() * 0.0
        b, n, _ = z.shape
        onehot = frame_onehot(times, mask, n_frames)  # (B, N, T)
        message = heads.m_e(z) * mask[..., None]  # (B, N, H)
        per_frame = (onehot[..., None] * message[:, :, None, :]).flatten(2)  # (B, N, T*H)
        gathered = (A.transpose(1, 2) @ per_frame).view(b, n, n_frames, -1)  # (B, N, T, H)
        shift = _device_ints(dts, times.device)
        source = times[:, :, None] - shift  # (B, N, K): the parents' frame
        in_window = source >= 0
        source = source.clamp(min=0)
        counts = onehot.sum(1)  # (B, T) real tokens per frame
        has_candidate = (
            in_window
            & mask[..., None]
            & (torch.gather(counts, 1, source.flatten(1)).view_as(source) > 0)
        )
        index = source[..., None].expand(-1, -1, -1, gathered.shape[-1])
        zhat = heads.m_d(torch.gather(gathered, 2, index))  # (B, N, K, D)
        error = ((zhat - target[:, :, None, :]) ** 2).mean(-1)  # (B, N, K)
        weight = has_candidate.float()
        per_dt = (error * weight).sum((0, 1)) / weight.sum((0, 1)).clamp(min=1.0)
        loss = per_dt.sum()
        if normalise:
            real = mask[..., None].float()
            count = real.sum().clamp(min=1.0)
            mean = (target * real).sum((0, 1)) / count
            variance = (((target - mean) * real) ** 2).sum() / (count * target.shape[-1])
            loss = loss / variance.detach().clamp(min=1e-6)
        return loss


def transitive_loss(A: torch.Tensor, times: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between ``A(t, t+2)`` and ``A(t, t+1) @ A(t+1, t+2)``.

    Taken over every pair of real tokens two frames apart in every window (each pair once).
    The one-frame links of a window, as a matrix, composed with themselves give every two-step
    path; so this is one batched matmul and needs no device sync. Zero when the associations
    chain consistently (and for windows of fewer than three frames); the caller applies the
    weight (the method uses 0.1).
    """
    with _float32(A):
        A = A.float()
        real = mask[:, :, None] & mask[:, None, :]
        step = times[:, None, :] - times[:, :, None]  # t_j - t_i
        one = torch.where(real & (step == 1), A, 0.0)
        two = real & (step == 2)
        diff = torch.where(two, A - one @ one, 0.0)
        return (diff**2).sum() / two.sum().clamp(min=1)


def motion_loss(
    A: torch.Tensor, positions: torch.Tensor, times: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """How far the predicted parents lie: the association-weighted mean squared distance from
    each cell to its candidate parents, divided by the mean squared distance of all candidate
    pairs of the batch (``positions`` (B, N, ndim): spatial only).

    0 when every cell's mass sits on parents at its own position, about 1 for mass spread at
    random; it ignores how much mass there is (a quiet softmax may link nothing). A prior that
    cells move little, for where appearance says little; the caller applies the weight.
    """
    with _float32(A):
        A, positions = A.float(), positions.float()
        valid = valid_pairs(times, mask)
        d2 = torch.where(valid, torch.cdist(positions, positions) ** 2, 0.0)
        mean_d2 = d2.sum() / valid.sum().clamp(min=1)
        mass = torch.where(valid, A, 0.0)
        expected = (mass * d2).sum() / mass.sum().clamp(min=1e-6)
        return expected / mean_d2.detach().clamp(min=1e-12)


def supervised_loss(
    A: torch.Tensor,
    A_gt: torch.Tensor,
    valid: torch.Tensor,
    pos_weight: float | Literal["auto"] | None = "auto",
    max_pos_weight: float = 100.0,
) -> torch.Tensor:
    """Weighted binary cross-entropy of the scores ``A`` against ``A_gt`` on the ``valid`` pairs.

    ``pos_weight``: the weight of a true link relative to a non-link; ``"auto"`` uses the
    ratio of non-links to links in the batch, clipped to ``[1, max_pos_weight]``; ``None`` = 1.
    Pass ``valid = valid_pairs(times, mask)`` (and, for partial labels, only the labelled pairs).
    """
    with _float32(A):
        A = A.float().clamp(1e-6, 1 - 1e-6)
        positive = (A_gt > 0.5) & valid
        if pos_weight == "auto":
            n_pos = positive.sum().float()
            n_neg = valid.sum().float() - n_pos
            w_pos = (n_neg / n_pos.clamp(min=1.0)).clamp(1.0, max_pos_weight)
        else:
            w_pos = torch.tensor(1.0 if pos_weight is None else float(pos_weight), device=A.device)
        weight = torch.where(positive, w_pos, 1.0) * valid
        bce = F.binary_cross_entropy(A, A_gt.float(), reduction="none")
        return (bce * weight).sum() / weight.sum().clamp(min=1e-6)


def link_error(
    A: torch.Tensor, A_gt: torch.Tensor, times: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """The share of cells with a true parent one frame earlier whose highest association in
    that frame is not that parent (0 when none has one); no gradient. ``A_gt`` may hold every
    ancestor: only its one-frame links count."""
    with torch.no_grad(), _float32(A):
        one_step = valid_pairs(times, mask) & (times[:, None, :] == times[:, :, None] + 1)
        truth = (A_gt > 0.5) & one_step  # parent -> child
        has_parent = truth.any(1)  # (B, N) per child
        predicted = torch.where(one_step, A.float(), -1.0).argmax(1)
        right = torch.gather(truth, 1, predicted[:, None, :]).squeeze(1)
        wrong = (has_parent & ~right).sum()
        return wrong.float() / has_parent.sum().clamp(min=1)


def objective(
    model: nn.Module,
    heads: AttracktHeads | None,
    batch: WindowBatch,
    kind: Objective = "unsupervised",
    transitive_weight: float = 0.1,
    motion_weight: float = 0.0,
) -> dict[str, torch.Tensor]:
    """The training objective for one batch: a dict of scalar tensors with ``"loss"``.

    ``unsupervised``: the Attrackt loss (needs ``heads`` and ``batch.z``); ``supervised``: the
    weighted cross-entropy against ``batch.a_gt``; ``mixed``: both, summed. Each adds
    ``transitive_weight`` times the transitive loss and ``motion_weight`` times the motion
    loss. With labels the dict also holds ``link_error`` (:func:`link_error`, not part of the
    loss). The model may run under bf16 autocast.
    """
    if kind not in ("unsupervised", "supervised", "mixed"):
        raise ValueError(f"unknown objective {kind!r}")
    logits = model(batch.coords, batch.mask, batch.features, batch.z)
    mode = model.config.normalisation
    A = normalise_associations(logits, batch.times, batch.mask, mode, n_frames=batch.window)
    parts: dict[str, torch.Tensor] = {}
    if kind in ("unsupervised", "mixed"):
        if heads is None or batch.z.shape[-1] == 0:
            raise ValueError("the unsupervised objective needs heads and an embedding z")
        dts = range(1, batch.window)
        parts["attrackt"] = attrackt_loss(
            A, batch.z, batch.times, batch.mask, heads, dts, n_frames=batch.window
        )
    if kind in ("supervised", "mixed"):
        if batch.a_gt is None:
            raise ValueError("the supervised objective needs ground-truth links (batch.a_gt)")
        valid = valid_pairs(batch.times, batch.mask)
        parts["supervised"] = supervised_loss(A, batch.a_gt, valid)
    loss = sum(parts.values())
    if kind in ("supervised", "mixed"):
        parts["link_error"] = link_error(A, batch.a_gt, batch.times, batch.mask)
    if transitive_weight > 0:
        parts["transitive"] = transitive_loss(A, batch.times, batch.mask)
        loss = loss + transitive_weight * parts["transitive"]
    if motion_weight > 0:
        parts["motion"] = motion_loss(A, batch.coords[..., 1:], batch.times, batch.mask)
        loss = loss + motion_weight * parts["motion"]
    parts["loss"] = loss
    return parts
