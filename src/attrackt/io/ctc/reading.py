"""Loading a CTC tracking folder (GT ``TRA`` or a ``RES``) with its images, checked:
:func:`load_ctc` and what it gives, :class:`CTCData`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.data import Tracks
from attrackt.errors import InputError
from attrackt.io.checks import Issue, raise_on_errors
from attrackt.io.ctc.inspection import inspect_images, inspect_tracking
from attrackt.io.ctc.layout import is_tracking_folder, locate_sequence, sequence_images
from attrackt.io.ctc.tracks import ctc_edges


@dataclass
class CTCData:
    """A loaded CTC tracking folder: images (when read), masks, tracks and the track table."""

    images: np.ndarray | None
    masks: np.ndarray
    tracks: Tracks
    track_table: pd.DataFrame
    folder: Path


def _tracking_folder(path: str | Path, sequence: str | None) -> tuple[Path, str]:
    path = Path(path).absolute()
    if sequence is None and is_tracking_folder(path):
        try:
            return path, locate_sequence(path).label
        except InputError:
            return path, path.name
    seq = locate_sequence(path, sequence)
    return seq.tra, seq.label


def load_ctc(path: str | Path, sequence: str | None = None, *, images: bool = True) -> CTCData:
    """Load a CTC tracking folder (GT ``TRA`` or a ``RES``) with its images, checked.

    ``path`` is the TRA or RES folder itself, a sequence folder (``.../Fluo-N2DL-HeLa/01``:
    its ``01_GT/TRA`` is read), or a dataset folder with ``sequence``. Images are read from the
    sequence's image folder when ``images`` and the folder exists. Bad input raises
    :class:`InputError` with the text ``attrackt validate`` prints; warnings are logged.
    """
    folder, label = _tracking_folder(path, sequence)
    if not folder.is_dir():
        raise InputError(folder, "no such tracking folder")
    issues: list[Issue] = []
    image_folder = sequence_images(folder)
    read = "keep" if images else "shape"
    loaded = inspect_images(image_folder, issues, read) if image_folder else None
    found = inspect_tracking(folder, issues, loaded, label)
    raise_on_errors(issues)
    assert found is not None  # every way to get None adds an error
    masks, table, detections = found
    stack = loaded.stack if loaded is not None else None
    return CTCData(stack, masks, Tracks(detections, ctc_edges(detections, table)), table, folder)
