"""The crop auto-encoder (step one of the method): model, training, embedding."""

from attrackt.embed.infer import embed_crops, load_autoencoder
from attrackt.embed.model import AutoEncoder, AutoEncoderConfig
from attrackt.embed.stage import detection_crops, embed_detections
from attrackt.embed.train import EmbedConfig, train_autoencoder

__all__ = [
    "AutoEncoder",
    "AutoEncoderConfig",
    "EmbedConfig",
    "detection_crops",
    "embed_crops",
    "embed_detections",
    "load_autoencoder",
    "train_autoencoder",
]
