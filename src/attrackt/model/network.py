"""The association model as it is trained and saved: the transformer with the Attrackt loss's
heads, its configuration, loading it from a checkpoint, and the window settings a checkpoint
keeps for prediction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attrackt.checkpoints import load_checkpoint, resolve_device
from attrackt.errors import InputError
from attrackt.model.associations import normalise_associations
from attrackt.model.heads import AttracktHeads
from attrackt.model.transformer import AssociationTransformer, TransformerConfig
from attrackt.model.windows import WindowBatch, WindowConfig

KIND = "association"


@dataclass(frozen=True)
class AssociationModelConfig:
    """The transformer's settings and the width of the Attrackt loss's heads (0: no heads)."""

    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    heads_width: int = 64

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], source: Any = None) -> AssociationModelConfig:
        try:
            return cls(TransformerConfig.from_dict(dict(raw["transformer"])), raw["heads_width"])
        except (KeyError, TypeError, ValueError) as err:
            raise InputError(source, f"not an association model configuration ({err})") from err


class AssociationModel(nn.Module):
    """The association transformer and, when it has an embedding, the Attrackt loss's heads.

    ``self(batch)`` gives the pair logits ``(B, N, N)``; :meth:`associations` the normalised
    scores.
    """

    kind = KIND

    def __init__(self, config: AssociationModelConfig) -> None:
        super().__init__()
        self.config = config
        self.transformer = AssociationTransformer(config.transformer)
        width, dim = config.heads_width, config.transformer.embedding_dim
        self.heads = AttracktHeads(dim, width) if width > 0 and dim > 0 else None

    def forward(self, batch: WindowBatch) -> torch.Tensor:
        return self.transformer(batch.coords, batch.mask, batch.features, batch.z)

    def associations(self, batch: WindowBatch) -> torch.Tensor:
        """Scores ``(B, N, N)`` in [0, 1], float32: entry (i, j) for token i a parent of j."""
        mode = self.config.transformer.normalisation
        return normalise_associations(self(batch), batch.times, batch.mask, mode, batch.window)


def load_association_model(
    path: str | Path, device: str | torch.device = "cpu"
) -> tuple[AssociationModel, dict[str, Any]]:
    """The model in a checkpoint of :func:`train_association_model` (eval mode) and the
    checkpoint's extra state (``windows``: the window settings it was trained with, ...)."""
    checkpoint = load_checkpoint(path)
    if checkpoint.kind != KIND:
        raise InputError(path, f"holds a {checkpoint.kind!r} model, not an association model")
    model = AssociationModel(AssociationModelConfig.from_dict(checkpoint.model_config, path))
    checkpoint.load_into(model)
    return model.to(resolve_device(device)).eval(), checkpoint.extra


def window_extra(config: WindowConfig) -> dict[str, Any]:
    """The window settings a checkpoint keeps for prediction (plain types)."""
    return {
        "window": config.window,
        "max_tokens": config.max_tokens,
        "tile_margin": config.tile_margin,
        "embedding": config.embedding,
        "feature_columns": None if config.feature_columns is None else list(config.feature_columns),
        "voxel_size": None if config.voxel_size is None else list(config.voxel_size),
    }


def windows_from_extra(extra: Mapping[str, Any], **overrides: Any) -> WindowConfig:
    """The :class:`WindowConfig` recorded by :func:`window_extra` (fields may be overridden)."""
    raw = dict(extra.get("windows", {}))
    if raw.get("feature_columns") is not None:
        raw["feature_columns"] = tuple(raw["feature_columns"])
    raw.update(overrides)
    return WindowConfig(**raw)
