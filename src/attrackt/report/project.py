"""What a report is made of, read once from the project folder."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.data import Tracks
from attrackt.link.config import LinkConfig
from attrackt.store import Store

logger = logging.getLogger(__name__)

GUARD_FILE = "guard.json"


def _read_json(path: Path) -> Any:
    """A JSON file's content, ``None`` when absent; an unreadable one raises ``ValueError``."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path.name} is not readable JSON ({err})") from err


def _recorded_link(config: dict | None) -> LinkConfig:
    """The linking settings recorded in ``config.json`` (defaults for what is missing)."""
    raw = (config or {}).get("link", {})
    known = {f.name for f in dataclasses.fields(LinkConfig)}
    return LinkConfig(**{k: v for k, v in raw.items() if k in known})


@dataclasses.dataclass
class _Project:
    """What a report is made of, read once from the project folder."""

    root: Path
    config: dict | None
    store: Store | None
    tracks: Tracks | None
    metrics: dict
    link: LinkConfig

    @classmethod
    def read(cls, root: Path, link: LinkConfig | None) -> _Project:
        config = _read_json(root / "config.json")
        store = Store.load(root / "store.npz") if (root / "store.npz").is_file() else None
        tracks = Tracks.load(root / "tracks") if (root / "tracks").is_dir() else None
        metrics = _read_json(root / "metrics.json") or {}
        return cls(root, config, store, tracks, metrics, link or _recorded_link(config))

    @functools.cached_property
    def movies(self) -> dict[str, np.ndarray]:
        """The movie of each sequence, read again from where ``prepare`` read it, if it can."""
        from attrackt.io.images import read_images

        out = {}
        for sequence, source in (self.store.meta.get("sources") or {}).items():
            if source.startswith("<"):  # an array in memory
                continue
            try:
                out[sequence] = read_images(source).array
            except Exception as err:  # moved, deleted or unreadable: the report goes on without
                logger.info("report: no images for %s (%s)", sequence, err)
        return out

    @functools.cached_property
    def ours(self) -> dict[str, Tracks]:
        """attrackt's tracks per sequence."""
        return dict(self.tracks.by_sequence()) if self.tracks is not None else {}

    @functools.cached_property
    def position(self) -> dict[str, Tracks]:
        """Tracks per sequence linked by position only (the same settings, no associations)."""
        from attrackt.link import link

        return dict(link(self.store.detections, None, None, self.link).tracks.by_sequence())
