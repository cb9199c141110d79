"""The association model: windows of detections, the transformer, its loss heads, association
normalisation, and the model as a checkpoint holds it (:mod:`attrackt.model.network`)."""

from attrackt.model.associations import normalise_associations, valid_pairs
from attrackt.model.transformer import AssociationTransformer, TransformerConfig
from attrackt.model.windows import AugmentConfig, WindowBatch, WindowConfig, WindowSet

__all__ = [
    "AssociationTransformer",
    "AugmentConfig",
    "TransformerConfig",
    "WindowBatch",
    "WindowConfig",
    "WindowSet",
    "normalise_associations",
    "valid_pairs",
]
