"""What ``attrackt info`` prints about a CTC dataset: frames, image shape, cells per frame,
tracks, divisions and nodes of each sequence (:func:`ctc_info`, :class:`SequenceInfo`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from attrackt.errors import InputError
from attrackt.io.ctc.layout import find_sequences, is_tracking_folder, locate_sequence
from attrackt.io.ctc.reading import load_ctc
from attrackt.io.tiff import frame_files, read_tiff


@dataclass(frozen=True)
class SequenceInfo:
    """What ``attrackt info`` prints for one sequence (tracking numbers None without tracks)."""

    name: str
    frames: int
    image_shape: tuple[int, ...]
    cells_per_frame: tuple[int, float, int] | None = None
    tracks: int | None = None
    divisions: int | None = None
    nodes: int | None = None


def ctc_info(path: str | Path, sequence: str | None = None) -> list[SequenceInfo]:
    """Frames, image shape, cells per frame (min, median, max), tracks, divisions and nodes.

    For each sequence of a dataset folder (its GT ``TRA``), one sequence, or one TRA/RES folder.
    """
    path = Path(path).absolute()
    if is_tracking_folder(path) and sequence is None:
        folders = [(str(path), path)]
    else:
        seqs = [locate_sequence(path, sequence)] if sequence else find_sequences(path)
        folders = [(s.label, s.tra if s.tra.is_dir() else s.images) for s in seqs]
    out = []
    for name, folder in folders:
        if not is_tracking_folder(folder):
            frames = frame_files(folder, "t")
            if not frames:
                raise InputError(folder, "holds no tNNN.tif images")
            first = read_tiff(next(iter(frames.values()))[0])
            out.append(SequenceInfo(name, len(frames), tuple(first.shape)))
            continue
        data = load_ctc(folder, images=False)
        per_frame = np.bincount(data.tracks.detections.times, minlength=len(data.masks))
        out.append(
            SequenceInfo(
                name,
                len(data.masks),
                tuple(data.masks.shape[1:]),
                (int(per_frame.min()), float(np.median(per_frame)), int(per_frame.max())),
                len(data.track_table),
                len(data.tracks.divisions()),
                len(data.tracks.detections),
            )
        )
    return out
