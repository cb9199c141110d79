"""How a proof-reading session is set up, with no Qt and no napari in it: its settings
(:class:`SessionConfig`), the fine-tuning defaults for a person who waits, and the linking
settings a project recorded."""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrackt.active import RankConfig
from attrackt.errors import InputError
from attrackt.link import LinkConfig

__all__ = [
    "CPU_FINETUNE_BATCH",
    "CPU_FINETUNE_MINUTES",
    "GPU_FINETUNE_MINUTES",
    "SessionConfig",
    "default_finetune_config",
    "project_link",
]

logger = logging.getLogger(__name__)


@dataclass
class SessionConfig:
    """How a session ranks, links, fine-tunes and predicts (``None``: the stage's defaults;
    for linking, the project's ``config.json`` first), who answers (``author``), and ``snap``:
    a click picks the nearest cell whose centre lies within this many pixels (``None``: half
    the median distance between neighbouring cells)."""

    rank: RankConfig = field(default_factory=RankConfig)
    link: LinkConfig | None = None
    finetune: Any = None  # attrackt.finetune.FinetuneConfig (imports torch)
    predict: Any = None  # attrackt.predict.PredictConfig (imports torch)
    author: str = ""
    snap: float | None = None


#: windows per fine-tuning step on a CPU where the session's config leaves it open: there,
#: attention with dropout keeps every attention map (~200 MiB per layer for 2,048 cells)
CPU_FINETUNE_BATCH = 2
#: minutes a fine-tuning round may take by default: a person waits for it
GPU_FINETUNE_MINUTES = 1.0
CPU_FINETUNE_MINUTES = 5.0


def default_finetune_config(minutes: float | None = None) -> Any:
    """The method's fine-tuning settings for a person who waits: at most ``minutes`` a round
    (default :data:`GPU_FINETUNE_MINUTES` on a GPU, :data:`CPU_FINETUNE_MINUTES` on the CPU),
    and :data:`CPU_FINETUNE_BATCH` windows a step on the CPU (a laptop's memory); a
    ``FinetuneConfig``."""
    import dataclasses

    from attrackt.finetune import FinetuneConfig
    from attrackt.train import resolve_device

    config = FinetuneConfig()
    on_cpu = resolve_device(config.train.device).type == "cpu"
    if minutes is None:
        minutes = CPU_FINETUNE_MINUTES if on_cpu else GPU_FINETUNE_MINUTES
    config = dataclasses.replace(config, minutes=minutes)
    if not on_cpu:
        return config
    logger.info("fine-tuning on the CPU: %d windows a step to bound memory", CPU_FINETUNE_BATCH)
    train = dataclasses.replace(config.train, batch_size=CPU_FINETUNE_BATCH)
    return dataclasses.replace(config, train=train)


def project_link(path: Path) -> LinkConfig:
    """The linking settings ``attrackt run`` recorded in a project's ``config.json``."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8")).get("link", {})
        known = {f.name for f in dataclasses.fields(LinkConfig)}
        return LinkConfig(**{k: v for k, v in raw.items() if k in known})
    except (OSError, ValueError, TypeError, AttributeError) as err:
        raise InputError(path, f"not a readable project configuration ({err})") from err
