"""Rotary positional encoding over (t, [z,] y, x): a relative spatio-temporal bias for attention.

Rotating queries and keys by angles proportional to their coordinates makes every dot product
depend on coordinate differences only, so attention (and the association logits) are invariant
to a global translation in space or time.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class RotaryEncoding(nn.Module):
    """Rotations of ``dim`` channels (``dim/2`` planes) by coordinate-dependent angles.

    The planes are shared between the axes: each spatial axis gets ``dim/2 // (1 + ndim)``
    wavelengths spaced geometrically from 4 to ``4 * spatial_scale`` pixels, time the remaining
    ones, from 2 to ``4 * window`` frames. Angles are computed in float32 (float64 for float64
    input), so bf16 inputs keep exact relative positions.
    """

    def __init__(self, dim: int, ndim: int, window: int, spatial_scale: float) -> None:
        super().__init__()
        half = dim // 2
        n_space = half // (1 + ndim)
        n_time = half - ndim * n_space
        if dim % 2 or n_space < 1:
            raise ValueError(f"rotary encoding needs an even dim >= {2 * (1 + ndim)}, got {dim}")
        wavelengths = [np.geomspace(2.0, 4.0 * window, n_time)]
        wavelengths += [np.geomspace(4.0, 4.0 * spatial_scale, n_space)] * ndim
        axis = np.repeat(np.arange(1 + ndim), [n_time] + [n_space] * ndim)
        freq = 2 * math.pi / np.concatenate(wavelengths)
        self.register_buffer("axis", torch.as_tensor(axis, dtype=torch.int64), persistent=False)
        self.register_buffer("freq", torch.as_tensor(freq, dtype=torch.float64), persistent=False)

    def angles(self, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``cos, sin`` of shape (B, N, dim/2) for coordinates (B, N, 1+ndim)."""
        dtype = torch.promote_types(coords.dtype, torch.float32)
        theta = coords.to(dtype)[..., self.axis] * self.freq.to(dtype)
        return theta.cos(), theta.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the channel planes ``(x[..., k], x[..., k + dim/2])`` of ``x`` (..., N, dim).

    ``cos``/``sin`` broadcast against ``x`` without its last dimension halved, e.g. (B, 1, N,
    dim/2) for ``x`` (B, heads, N, dim). The result has the dtype of ``x``.
    """
    x1, x2 = x.to(cos.dtype).chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1).to(x.dtype)
