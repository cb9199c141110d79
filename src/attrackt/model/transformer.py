"""The association transformer: tokens are detections of a window, outputs are pair logits.

Trackastra-style: a token embedding from time, scalar features and (optionally) the appearance
embedding ``z``; an encoder of self-attention layers; a decoder whose layers cross-attend to the
encoder output; then a parent projection of the encoder output and a child projection of the
decoder output whose dot products are the logits. Space enters only through rotary encodings
of (t, [z,] y, x) on every query/key and on the final projections, so logits depend on relative
positions only. Attention uses ``scaled_dot_product_attention`` (flash / memory-efficient kernels
on GPU, bf16-safe). The attention projections are plain ``nn.Linear`` modules named ``q_proj``,
``k_proj``, ``v_proj`` and ``out_proj`` (LoRA targets).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attrackt.model.associations import NORMALISATIONS
from attrackt.model.rope import RotaryEncoding, rotate

TIME_FEATURES = 8  # sin/cos pairs of the within-window time in the token input


@dataclass(frozen=True)
class TransformerConfig:
    """Settings of :class:`AssociationTransformer` (defaults: the method's published ones).

    ``feature_dim``/``embedding_dim``: widths of the scalar features and of ``z``;
    ``use_embedding``: whether ``z`` is part of the token input (it is the reconstruction target
    of the Attrackt loss either way). Off by default, as in the method: a model that sees ``z``
    can learn to match appearance directly, which fails on look-alike cells (measured in
    ``bench/results/accuracy.json``); without it, appearance only teaches, through the loss,
    and the model must learn motion and shape. ``spatial_scale``: the largest distance (pixels)
    the rotary encoding resolves; ``normalisation``: how logits become association scores.
    """

    ndim: int = 2
    feature_dim: int = 0
    embedding_dim: int = 0
    use_embedding: bool = False
    d_model: int = 256
    n_heads: int = 4
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout: float = 0.1
    window: int = 6
    spatial_scale: float = 256.0
    normalisation: str = "quiet_softmax"

    def __post_init__(self) -> None:
        if self.ndim not in (2, 3):
            raise ValueError(f"ndim must be 2 or 3, got {self.ndim}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if (self.d_model // self.n_heads) < 2 * (1 + self.ndim) or (
            self.d_model // self.n_heads
        ) % 2:
            raise ValueError(
                f"the head width d_model/n_heads = {self.d_model // self.n_heads} must be even "
                f"and at least {2 * (1 + self.ndim)} for the rotary encoding"
            )
        if self.normalisation not in NORMALISATIONS:
            raise ValueError(
                f"unknown normalisation {self.normalisation!r}; choose one of {NORMALISATIONS}"
            )

    @property
    def token_inputs(self) -> int:
        z = self.embedding_dim if self.use_embedding else 0
        return 2 * TIME_FEATURES + self.feature_dim + z

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TransformerConfig:
        return cls(**raw)


class FeedForward(nn.Module):
    def __init__(self, d_model: int, expand: int = 2, dropout: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, expand * d_model)
        self.fc2 = nn.Linear(expand * d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.fc2(F.gelu(self.fc1(x))))


class RotaryAttention(nn.Module):
    """Multi-head attention with rotary positions on queries and keys and a key padding mask."""

    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        b, n, d = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.n_heads, d // self.n_heads).transpose(1, 2)

        cos, sin = rope
        q = rotate(heads(self.q_proj(x)), cos, sin)
        k = rotate(heads(self.k_proj(context)), cos, sin)
        v = heads(self.v_proj(context))
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=key_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.attn = RotaryAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model, dropout=dropout)

    def forward(
        self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor], key_mask: torch.Tensor
    ) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, rope, key_mask)
        return x + self.mlp(self.norm2(x))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(d_model)
        self.norm_context = nn.LayerNorm(d_model)
        self.attn = RotaryAttention(d_model, n_heads, dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = FeedForward(d_model, dropout=dropout)

    def forward(
        self,
        y: torch.Tensor,
        memory: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        key_mask: torch.Tensor,
    ) -> torch.Tensor:
        y = y + self.attn(self.norm_query(y), self.norm_context(memory), rope, key_mask)
        return y + self.mlp(self.norm2(y))


class AssociationTransformer(nn.Module):
    """Pair logits ``(B, N, N)`` for the tokens of a batch of windows; see the module docstring."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        head_dim = c.d_model // c.n_heads
        wavelengths = torch.logspace(math.log10(3.0), math.log10(4.0 * c.window), TIME_FEATURES)
        self.register_buffer("time_freq", 2 * torch.pi / wavelengths, persistent=False)
        self.input_proj = nn.Linear(c.token_inputs, c.d_model)
        self.input_norm = nn.LayerNorm(c.d_model)
        self.encoder = nn.ModuleList(
            EncoderLayer(c.d_model, c.n_heads, c.dropout) for _ in range(c.encoder_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(c.d_model, c.n_heads, c.dropout) for _ in range(c.decoder_layers)
        )
        self.rope = RotaryEncoding(head_dim, c.ndim, c.window, c.spatial_scale)
        self.pair_rope = RotaryEncoding(c.d_model, c.ndim, c.window, c.spatial_scale)
        self.parent_norm = nn.LayerNorm(c.d_model)
        self.parent_head = FeedForward(c.d_model)
        self.child_norm = nn.LayerNorm(c.d_model)
        self.child_head = FeedForward(c.d_model)

    def tokens(
        self, coords: torch.Tensor, features: torch.Tensor | None, z: torch.Tensor | None
    ) -> torch.Tensor:
        """The token embedding (B, N, d_model): within-window time, features, [z]."""
        c = self.config
        dtype = self.input_proj.weight.dtype
        angle = coords[..., :1].to(dtype) * self.time_freq.to(dtype)
        parts = [angle.sin(), angle.cos()]
        if c.feature_dim:
            if features is None or features.shape[-1] != c.feature_dim:
                raise ValueError(f"the model expects {c.feature_dim} features per token")
            parts.append(features.to(dtype))
        if c.use_embedding and c.embedding_dim:
            if z is None or z.shape[-1] != c.embedding_dim:
                raise ValueError(f"the model expects an embedding z of width {c.embedding_dim}")
            parts.append(z.to(dtype))
        return self.input_norm(self.input_proj(torch.cat(parts, dim=-1)))

    def forward(
        self,
        coords: torch.Tensor,
        mask: torch.Tensor,
        features: torch.Tensor | None = None,
        z: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits (B, N, N): entry (i, j) scores token i as the parent of token j.

        ``coords`` (B, N, 1+ndim) = (t within the window, [z,] y, x); ``mask`` (B, N) True for
        real tokens. Only pairs with ``t_i < t_j`` of real tokens are meaningful; normalise
        with :func:`~attrackt.model.associations.normalise_associations`.
        """
        if coords.ndim != 3 or coords.shape[-1] != 1 + self.config.ndim:
            raise ValueError(
                f"coords must be (B, N, {1 + self.config.ndim}), got {tuple(coords.shape)}"
            )
        key_mask = mask[:, None, None, :]
        cos, sin = self.rope.angles(coords)
        rope = (cos[:, None], sin[:, None])
        x = self.tokens(coords, features, z)
        memory = x
        for layer in self.encoder:
            memory = layer(memory, rope, key_mask)
        y = x
        for layer in self.decoder:
            y = layer(y, memory, rope, key_mask)
        cos, sin = self.pair_rope.angles(coords)
        parent = self.parent_head(self.parent_norm(memory))
        child = self.child_head(self.child_norm(y))
        with torch.autocast(device_type=coords.device.type, enabled=False):
            # in float32 (the rotation's dtype): logits feed a sharp softmax
            parent = rotate(parent.to(cos.dtype), cos, sin)
            child = rotate(child.to(cos.dtype), cos, sin)
            return (parent @ child.transpose(1, 2)) / math.sqrt(self.config.d_model)
