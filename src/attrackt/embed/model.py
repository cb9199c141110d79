"""The crop auto-encoder: a convolutional encoder and decoder built from residual blocks.

2D or 3D by the length of ``crop_size``. Each level after the first halves every spatial axis
that is even and at least 4 long (so thin 3D stacks keep their few planes), which for the
default 64 x 64 crops and four levels gives a latent of 4 x 8 x 8: a 256-long embedding.
The variational form predicts a mean and a log-variance per latent element; its embedding is
the mean.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from attrackt.errors import InputError

KIND = "autoencoder"


@dataclass
class AutoEncoderConfig:
    """The shape of an auto-encoder.

    ``channel_mult`` has one entry per level (the level's width is ``base_channels`` times it);
    ``embedding`` is ``"flat"`` (the whole latent, flattened) or ``"pooled"`` (the latent
    averaged onto a grid of ``pool_size`` per axis: ``latent_channels * pool_size**ndim`` long,
    the usual choice for 3D crops).
    """

    crop_size: tuple[int, ...] = (64, 64)
    in_channels: int = 1
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 4)
    res_blocks: int = 1
    latent_channels: int = 4
    variational: bool = False
    embedding: Literal["flat", "pooled"] = "flat"
    pool_size: int = 2

    def __post_init__(self) -> None:
        self.crop_size = tuple(int(s) for s in self.crop_size)
        self.channel_mult = tuple(int(m) for m in self.channel_mult)
        problems = []
        if len(self.crop_size) not in (2, 3) or min(self.crop_size) < 1:
            problems.append(f"crop_size must be 2 or 3 positive sizes, got {self.crop_size}")
        if not self.channel_mult or min(self.channel_mult) < 1:
            problems.append(f"channel_mult needs positive entries, got {self.channel_mult}")
        for name in ("in_channels", "base_channels", "res_blocks", "latent_channels", "pool_size"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.embedding not in ("flat", "pooled"):
            problems.append(f"embedding must be 'flat' or 'pooled', got {self.embedding!r}")
        if problems:
            raise InputError("auto-encoder configuration", "; ".join(problems))

    @property
    def ndim(self) -> int:
        return len(self.crop_size)

    @property
    def strides(self) -> list[tuple[int, ...]]:
        """Per downsampling step, the stride (1 or 2) of each spatial axis."""
        size = list(self.crop_size)
        out = []
        for _ in self.channel_mult[1:]:
            stride = tuple(2 if s % 2 == 0 and s >= 4 else 1 for s in size)
            size = [s // k for s, k in zip(size, stride, strict=True)]
            out.append(stride)
        return out

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(latent_channels, *spatial)`` of the latent of one crop."""
        size = list(self.crop_size)
        for stride in self.strides:
            size = [s // k for s, k in zip(size, stride, strict=True)]
        return (self.latent_channels, *size)

    @property
    def embedding_dim(self) -> int:
        if self.embedding == "flat":
            return math.prod(self.latent_shape)
        return self.latent_channels * self.pool_size**self.ndim

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: Any = None) -> AutoEncoderConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise InputError(source, f"unknown auto-encoder setting(s) {unknown}")
        return cls(**raw)


class AutoEncoderOutput(NamedTuple):
    reconstruction: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor | None


def _conv(ndim: int) -> type[nn.Module]:
    return nn.Conv2d if ndim == 2 else nn.Conv3d


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(channels, 16), channels, eps=1e-6)


class ResBlock(nn.Module):
    """norm, SiLU, conv, norm, SiLU, conv, plus a (1x1-projected) shortcut."""

    def __init__(self, ndim: int, c_in: int, c_out: int) -> None:
        super().__init__()
        conv = _conv(ndim)
        self.body = nn.Sequential(
            _norm(c_in),
            nn.SiLU(),
            conv(c_in, c_out, 3, padding=1),
            _norm(c_out),
            nn.SiLU(),
            conv(c_out, c_out, 3, padding=1),
        )
        self.shortcut = nn.Identity() if c_in == c_out else conv(c_in, c_out, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.body(x)


class Upsample(nn.Module):
    """(Bi/tri)linear upsampling by a per-axis factor, then a 3x3 convolution."""

    def __init__(self, ndim: int, channels: int, factor: tuple[int, ...]) -> None:
        super().__init__()
        self.factor = tuple(float(f) for f in factor)
        self.mode = "bilinear" if ndim == 2 else "trilinear"
        self.conv = _conv(ndim)(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=self.factor, mode=self.mode))


class AutoEncoder(nn.Module):
    """Crops ``(B, C, [Z,] Y, X)`` -> latent ``(B, *latent_shape)`` -> reconstruction."""

    kind = KIND

    def __init__(self, config: AutoEncoderConfig) -> None:
        super().__init__()
        self.config = config
        nd, conv = config.ndim, _conv(config.ndim)
        widths = [config.base_channels * m for m in config.channel_mult]
        strides = config.strides
        z_out = config.latent_channels * (2 if config.variational else 1)

        enc: list[nn.Module] = [conv(config.in_channels, widths[0], 3, padding=1)]
        c = widths[0]
        for level, width in enumerate(widths):
            for _ in range(config.res_blocks):
                enc.append(ResBlock(nd, c, width))
                c = width
            if level < len(strides):
                enc.append(conv(c, c, 3, stride=strides[level], padding=1))
        enc += [ResBlock(nd, c, c), _norm(c), nn.SiLU(), conv(c, z_out, 3, padding=1)]
        self.encoder = nn.Sequential(*enc)

        dec: list[nn.Module] = [conv(config.latent_channels, c, 3, padding=1), ResBlock(nd, c, c)]
        for level in reversed(range(len(widths))):
            for _ in range(config.res_blocks):
                dec.append(ResBlock(nd, c, widths[level]))
                c = widths[level]
            if level > 0:
                dec.append(Upsample(nd, c, strides[level - 1]))
        dec += [_norm(c), nn.SiLU(), conv(c, config.in_channels, 3, padding=1)]
        self.decoder = nn.Sequential(*dec)

    def _check(self, x: torch.Tensor) -> None:
        want = (self.config.in_channels, *self.config.crop_size)
        if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want:
            raise InputError(
                "crops",
                f"the auto-encoder takes (B, {', '.join(map(str, want))}) crops, "
                f"got {tuple(x.shape)}",
            )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(mean, logvar)`` of the latent; ``logvar`` is ``None`` for the plain model."""
        self._check(x)
        h = self.encoder(x)
        if not self.config.variational:
            return h, None
        mean, logvar = h.chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> AutoEncoderOutput:
        mean, logvar = self.encode(x)
        z = mean if logvar is None else mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        return AutoEncoderOutput(self.decode(z), mean, logvar)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, embedding_dim)``: the latent mean, flattened or pooled (see the config)."""
        mean, _ = self.encode(x)
        if self.config.embedding == "pooled":
            pool = F.adaptive_avg_pool2d if self.config.ndim == 2 else F.adaptive_avg_pool3d
            mean = pool(mean, self.config.pool_size)
        return mean.flatten(1)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over every latent element."""
    return 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
