"""The Attrackt loss's heads: the encoder ``m_E`` of an appearance vector into a message and the
decoder ``m_D`` of a message back into an appearance vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualMap(nn.Module):
    """``skip(x) + fc2(gelu(fc1(norm(x))))`` from ``d_in`` to ``d_out`` channels; ``fc2`` starts
    at zero, so the map starts as the linear ``skip``."""

    def __init__(self, d_in: int, d_out: int, hidden: int) -> None:
        super().__init__()
        self.skip = nn.Linear(d_in, d_out, bias=False)
        self.norm = nn.LayerNorm(d_in)
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, d_out)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.skip(x) + self.fc2(F.gelu(self.fc1(self.norm(x))))


class AttracktHeads(nn.Module):
    """The Attrackt loss's encoder ``m_E`` (z -> message of ``width`` channels) and decoder
    ``m_D`` (message -> z), residual MLPs of hidden width ``width``.

    They start as an orthogonal projection and its transpose, so ``m_D(m_E(z))`` starts as
    ``z`` (or its projection onto ``width`` dimensions): from the first step a cell is best
    reconstructed by weighting its most similar candidates. (From a random start the loss can
    settle on "everything but the parent" when a frame holds few cells.) The message width,
    not the embedding's, sets the cost of the loss.
    """

    def __init__(self, embedding_dim: int, width: int = 64) -> None:
        super().__init__()
        if embedding_dim < 1:
            raise ValueError("the Attrackt loss needs an appearance embedding (embedding_dim >= 1)")
        self.m_e = ResidualMap(embedding_dim, width, width)
        self.m_d = ResidualMap(width, embedding_dim, width)
        nn.init.orthogonal_(self.m_e.skip.weight)
        with torch.no_grad():
            self.m_d.skip.weight.copy_(self.m_e.skip.weight.T)
