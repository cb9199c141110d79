"""A project folder as proof-reading sees it, with no Qt and no napari in it: what a session
opens of one sequence (:func:`read_sequence`), where its rounds go, its current tracks (each
sequence's latest round in place of the solver's), its movie, and the exports kept current
after each round (``tracks.geff``, ``result/NAME_RES``).

The layout is what ``attrackt run`` writes (:mod:`attrackt.pipeline`); proof-reading adds
``proofread/SEQUENCE/roundNNN/`` (``tracks/``, and after fine-tuning ``finetune/`` and
``associations.parquet``).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.errors import InputError

logger = logging.getLogger(__name__)

ROUNDS = "proofread"
DETECTION_FILES = ("embedded.npz", "store.npz", "detections.parquet")  # the first found
CHECKPOINT_FILES = ("model/best.pt", "model/last.pt", "model.pt")


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


@dataclass(frozen=True)
class ProjectSequence:
    """One sequence of a project as a proof-reading session opens it (:func:`read_sequence`):
    its detections, its latest tracks, associations and answers, the base model and its
    associations (those before any fine-tuning), where its rounds go, and the project's store
    (``None``: it keeps none; its masks and movie)."""

    folder: Path
    name: str
    detections: Detections
    tracks: Tracks
    associations: Associations | None
    annotations: Annotations
    checkpoint: str | Path | None
    work_dir: Path
    store: Any  # attrackt.store.Store, or None
    base_associations: Associations | None = None


def read_sequence(
    folder: str | Path,
    sequence: str | None = None,
    journal: str | Path | None = None,
    checkpoint: str | Path | None = None,
) -> ProjectSequence:
    """The sequence ``sequence`` (needed only where the project holds several) of the project
    ``folder`` (see :mod:`attrackt.napari.session`), at its latest round: the detections (the
    first of :data:`DETECTION_FILES`, else the tracks' own), the journal's answers on them,
    the associations leaving them, and the base model (the first of :data:`CHECKPOINT_FILES`).
    ``journal`` and ``checkpoint`` replace the project's own."""
    from attrackt.store import Store, resolve_sequences

    folder = Path(folder)
    if not is_project(folder):
        raise InputError(folder, "not a project: it holds no tracks/ (attrackt run, link)")
    tracks = Tracks.load(folder / "tracks")
    found = next((folder / n for n in DETECTION_FILES if (folder / n).is_file()), None)
    store = Store.load(found) if found is not None and found.suffix == ".npz" else None
    if store is not None:
        detections = store.detections
    else:
        detections = Detections.load(found) if found is not None else tracks.detections
    names = detections.sequences
    if sequence is None and len(names) > 1:
        raise InputError(folder, f"holds the sequences {names}; choose one to proof-read")
    name = names[0] if sequence is None else resolve_sequences(names, [sequence])[0]
    mine = detections.table["sequence"].to_numpy() == name
    others = set(detections.ids[~mine].tolist())
    detections = detections.take(mine)
    journal = Annotations.load(journal if journal is not None else folder / "answers.jsonl")
    # one journal for the project: this session sees its sequence's answers, adds to all
    annotations = Annotations(journal.path, [a for a in journal.history if a.id not in others])
    work_dir = rounds_folder(folder, name)
    tracks = Tracks.load(latest(work_dir, "tracks") or folder / "tracks")
    tracks = dict(tracks.by_sequence()).get(name)
    if tracks is None:
        raise InputError(folder / "tracks", f"holds no tracks of the sequence {name!r}")
    base = None
    if (folder / "associations.parquet").is_file():
        base = _restrict(Associations.load(folder / "associations.parquet"), detections)
    associations_file = latest(work_dir, "associations.parquet")
    associations = base
    if associations_file is not None:
        associations = _restrict(Associations.load(associations_file), detections)
    if checkpoint is None:
        checkpoint = next((folder / n for n in CHECKPOINT_FILES if (folder / n).is_file()), None)
    return ProjectSequence(
        folder, name, detections, tracks, associations, annotations, checkpoint, work_dir, store,
        base,
    )  # fmt: skip


def _restrict(associations: Associations, detections: Detections) -> Associations:
    """The associations leaving ``detections``."""
    table = associations.table
    keep = np.isin(table["source"].to_numpy(), detections.ids)
    return Associations(table[keep].reset_index(drop=True), dict(associations.meta))


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
