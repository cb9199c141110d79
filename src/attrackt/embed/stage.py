"""The embedding stage: detections + their movies -> detections with an ``embedding`` block."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.data import Detections
from attrackt.embed.infer import embed_crops, load_autoencoder
from attrackt.embed.train import EmbedConfig, train_autoencoder
from attrackt.errors import InputError
from attrackt.features import extract_crops, normalise_movie

logger = logging.getLogger(__name__)


def detection_crops(
    detections: Detections,
    images: Mapping[str, Any],
    config: EmbedConfig,
    masks: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """Float16 crops of every detection (table order) from its sequence's normalised movie."""
    parts = []
    for name, part in detections.by_sequence():
        if name not in images:
            raise InputError("images", f"no movie given for sequence {name!r}")
        movie = normalise_movie(images[name], config.low, config.high)
        parts.append(
            extract_crops(
                movie,
                part,
                config.model.crop_size,
                masks=None if masks is None else masks[name],
                mask_others=config.mask_others,
                dtype=np.float16,
            )
        )
    return np.concatenate(parts) if parts else np.zeros((0, *config.model.crop_size), np.float16)


def embed_detections(
    detections: Detections,
    images: Mapping[str, Any],
    config: EmbedConfig,
    out_dir: str | Path | None = None,
    *,
    checkpoint: str | Path | None = None,
    masks: Mapping[str, Any] | None = None,
    resume: bool = True,
) -> Detections:
    """Crop, train an auto-encoder (or load ``checkpoint``), embed: adds the ``embedding`` block.

    ``images`` (and ``masks``, needed for ``config.mask_others``) map each sequence name of
    ``detections`` to its movie ``(T, [Z,] Y, X)``. Training writes to ``out_dir``; with a
    ``checkpoint`` the crop size and model come from it and nothing is trained.
    """
    if checkpoint is not None:
        model = load_autoencoder(checkpoint, config.train.device)
        config = dataclasses.replace(config, model=model.config)
        crops = detection_crops(detections, images, config, masks)
    else:
        if out_dir is None:
            raise InputError("embedding", "give a checkpoint to load or an out_dir to train in")
        crops = detection_crops(detections, images, config, masks)
        model = train_autoencoder(crops, config, out_dir, resume=resume)
    vectors = embed_crops(model, crops, device=config.train.device)
    logger.info("embedded %d detections into %d dimensions", len(vectors), vectors.shape[1])
    return detections.with_vectors(embedding=vectors)
