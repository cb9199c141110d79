"""Embedding crops with a trained auto-encoder, and loading one from its checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from attrackt.embed.model import KIND, AutoEncoder, AutoEncoderConfig
from attrackt.embed.train import check_crops
from attrackt.errors import InputError
from attrackt.train import load_checkpoint, resolve_device


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> AutoEncoder:
    """The auto-encoder saved in a checkpoint of :func:`~attrackt.embed.train_autoencoder`."""
    checkpoint = load_checkpoint(path)
    if checkpoint.kind != KIND:
        raise InputError(path, f"holds a {checkpoint.kind!r} model, not an auto-encoder")
    model = AutoEncoder(AutoEncoderConfig.from_dict(checkpoint.model_config, path))
    checkpoint.load_into(model)
    return model.to(resolve_device(device)).eval()


@torch.no_grad()
def embed_crops(
    model: AutoEncoder,
    crops: np.ndarray,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """``(N, embedding_dim)`` float32 embeddings of ``crops`` ``(N, [Z,] Y, X)``.

    Batched, without gradients, in eval mode; the model is moved to ``device``.
    """
    check_crops(crops, model.config)
    dev = resolve_device(device)
    model.to(dev).eval()
    out = np.empty((len(crops), model.config.embedding_dim), np.float32)
    for start in range(0, len(crops), batch_size):
        chunk = torch.from_numpy(np.ascontiguousarray(crops[start : start + batch_size]))
        batch = chunk.to(dev).float()[:, None]
        out[start : start + len(chunk)] = model.embed(batch).float().cpu().numpy()
    return out
