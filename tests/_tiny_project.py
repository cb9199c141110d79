"""The pipeline configuration of the tests: the demo's, with a few training steps."""

from __future__ import annotations

from attrackt.pipeline import PipelineConfig


def shorten(config: PipelineConfig) -> PipelineConfig:
    """``config`` with 10 training steps for each model (in place; returned)."""
    config.embed.train.steps = 10
    config.train.train.steps = 10
    config.train.train.val_every = config.train.train.checkpoint_every = 5
    return config


def tiny_config() -> PipelineConfig:
    return shorten(PipelineConfig.quick(seed=0, device="cpu"))
