"""A project folder as proof-reading sees it, with no Qt and no napari in it: where its rounds
go, its current tracks (each sequence's latest round in place of the solver's), its movie, and
the exports kept current after each round (``tracks.geff``, ``result/NAME_RES``).

The layout is what ``attrackt run`` writes (:mod:`attrackt.pipeline`); proof-reading adds
``proofread/SEQUENCE/roundNNN/`` (``tracks/``, and after fine-tuning ``finetune/`` and
``associations.parquet``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError

logger = logging.getLogger(__name__)

ROUNDS = "proofread"


def is_project(folder: str | Path) -> bool:
    """Whether ``folder`` is a project (it holds the solver's ``tracks/``)."""
    return (Path(folder) / "tracks").is_dir()


def rounds_folder(root: str | Path, sequence: str) -> Path:
    """Where the proof-reading rounds of ``sequence`` go under ``root``."""
    return Path(root) / ROUNDS / (re.sub(r"[^\w.-]+", "_", sequence) or "sequence")


def round_folders(work_dir: Path) -> list[Path]:
    """The finished rounds in ``work_dir``, oldest first (``.roundNNN.partial`` left out)."""
    if not work_dir.is_dir():
        return []
    found = [p for p in work_dir.glob("round[0-9]*") if p.name[5:].isdigit() and p.is_dir()]
    return sorted(found, key=lambda p: int(p.name[5:]))


def latest(work_dir: Path, name: str) -> Path | None:
    """``work_dir/roundNNN/name`` of the latest round that has it."""
    return next((r / name for r in reversed(round_folders(work_dir)) if (r / name).exists()), None)


def current_tracks(root: str | Path) -> Tracks:
    """The project's tracks, each sequence's latest round in place of the solver's."""
    root = Path(root)
    parts = []
    for name, part in Tracks.load(root / "tracks").by_sequence():
        found = latest(rounds_folder(root, name), "tracks")
        if found is not None:
            part = dict(Tracks.load(found).by_sequence()).get(name, part)
        parts.append(part)
    return concat_tracks(parts)


def concat_tracks(parts: list[Tracks]) -> Tracks:
    """The tracks of several sequences as one."""
    if len(parts) == 1:
        return parts[0]
    detections = Detections.concat([p.detections for p in parts])
    return Tracks(detections, np.concatenate([p.edges for p in parts]).reshape(-1, 2))


def image_source(meta: dict, sequence: str) -> Path | None:
    """The movie of ``sequence`` that ``attrackt prepare`` read (its store's ``sources``),
    where it still is."""
    source = (meta.get("sources") or {}).get(sequence)
    if source is None:
        return None
    path = Path(source)
    if not path.exists():
        logger.warning("the movie of %s is no longer at %s: pass --images", sequence, path)
        return None
    return path


def read_images(path: str | Path) -> np.ndarray:
    """The movie at ``path`` (a CTC frame folder, ``.tif`` or ``.npy`` stack)."""
    from attrackt.io.tiff import read_movie

    return read_movie(path)


def export_tracks(
    tracks: Tracks, folder: str | Path, name: str, masks: np.ndarray | None
) -> list[Path]:
    """Write ``tracks`` (one sequence) as ``folder/tracks.geff`` and, with ``masks``, as the CTC
    result ``folder/NAME_RES``; returns what was written (each file is written atomically)."""
    from attrackt.io.ctc import write_ctc_result
    from attrackt.io.geff import write_geff

    folder = Path(folder)
    written = [write_geff(tracks, folder / "tracks.geff", overwrite=True)]
    if masks is not None:
        written.append(write_ctc_result(folder / f"{name}_RES", tracks, masks))
    return written


def update_project(root: str | Path, name: str, masks: np.ndarray | None) -> list[Path]:
    """Keep the project's exports current after a round of ``name``: ``tracks.geff`` (every
    sequence, each at its latest round) and, with ``masks``, ``result/NAME_RES``."""
    from attrackt.io.ctc import write_ctc_result
    from attrackt.io.geff import write_geff

    root = Path(root)
    tracks = current_tracks(root)
    written = [write_geff(tracks, root / "tracks.geff", overwrite=True)]
    if masks is not None:
        mine = dict(tracks.by_sequence()).get(name)
        if mine is None:
            raise InputError(root / "tracks", f"holds no tracks of the sequence {name!r}")
        written.append(write_ctc_result(root / "result" / f"{name}_RES", mine, masks))
    return written
