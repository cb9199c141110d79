"""Writing CTC folders: a tracker's result (:func:`write_ctc_result`: ``maskTTT.tif`` +
``res_track.txt``) and a training-style sequence with its ground truth
(:func:`write_ctc_sequence`), each atomically and checked first."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.data import Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path
from attrackt.io.checks import ERROR, check_masks, check_track_table, raise_on_errors
from attrackt.io.ctc.tables import TRACK_COLUMNS, format_track_table
from attrackt.io.ctc.tracks import detections_from_masks
from attrackt.io.tiff import write_frames


def _label_dtype(top: int) -> np.dtype:
    return np.dtype(np.uint16) if top < 2**16 else np.dtype(np.uint32)


def write_ctc_result(folder: str | Path, tracks: Tracks, masks: np.ndarray) -> Path:
    """Write tracks as a CTC result folder: ``maskTTT.tif`` + ``res_track.txt``, atomically.

    ``masks`` (``(T, [Z,] Y, X)``) hold each detection's region under its ``label`` in frame
    ``t``; each region is relabelled by its CTC track label, regions of no detection are dropped.
    """
    folder = Path(folder)
    det = tracks.detections
    masks = np.asarray(masks)
    if len(det.sequences) > 1:
        raise InputError(folder, f"tracks of several sequences {det.sequences}; write one each")
    if masks.dtype.kind not in "iu" or masks.ndim != det.ndim + 1:
        raise InputError(
            folder,
            f"masks must be ({'T, Z, ' if det.ndim == 3 else 'T, '}Y, X) integer "
            f"labels, got {masks.dtype} {masks.shape}",
        )
    t, labels = det.times, det.labels
    if len(det) and (t.min() < 0 or t.max() >= len(masks)):
        raise InputError(folder, f"detections at frame {t.max()} beyond the {len(masks)} masks")
    if (labels <= 0).any():
        bad = det.table.loc[labels <= 0].iloc[0]
        raise InputError(folder, f"detection {bad['id']} (t={bad['t']}) has no mask label")
    track_label, table = tracks.tracklets()
    out = np.zeros(masks.shape, dtype=_label_dtype(int(track_label.max(initial=0))))
    order = np.argsort(t, kind="stable")
    bounds = np.searchsorted(t[order], np.arange(len(masks) + 1))
    for frame in range(len(masks)):
        rows = order[bounds[frame] : bounds[frame + 1]]
        if not len(rows):
            continue
        out[frame] = _relabel(masks[frame], labels[rows], track_label[rows], out.dtype)
        present = np.bincount(out[frame].ravel(), minlength=int(track_label[rows].max()) + 1)
        absent = rows[present[track_label[rows]] == 0]
        if len(absent):
            r = absent[0]
            raise InputError(
                folder,
                f"detection {det.ids[r]} (t={frame}, label {labels[r]}) has no region in the masks",
            )
    with atomic_path(folder) as tmp:
        write_frames(tmp, "mask", out)
        (tmp / "res_track.txt").write_text(format_track_table(table), encoding="utf-8")
    return folder


def _relabel(frame: np.ndarray, old: np.ndarray, new: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``frame`` with each value ``old[i]`` replaced by ``new[i]``, every other value by 0."""
    if len(np.unique(old)) != len(old):
        dup = old[np.flatnonzero(np.diff(np.sort(old)) == 0)[0]]
        raise InputError(None, f"two detections of one frame share the mask label {dup}")
    top = int(frame.max())
    if top < 2**24:
        lut = np.zeros(top + 1, dtype)
        keep = old <= top
        lut[old[keep]] = new[keep]
        return lut[frame]
    values, inverse = np.unique(frame, return_inverse=True)
    mapped = np.zeros(len(values), dtype)
    hit = np.isin(values, old)
    if hit.any():
        sorter = np.argsort(old)
        mapped[hit] = new[sorter[np.searchsorted(old, values[hit], sorter=sorter)]]
    return mapped[inverse].reshape(frame.shape)


def write_ctc_sequence(
    root: Path, name: str, images: np.ndarray, masks: np.ndarray, track_table: pd.DataFrame
) -> Path:
    """Write a CTC training-style sequence and return its image folder ``root/name``.

    Writes ``root/name/tTTT.tif`` and ``root/name_GT/TRA/man_trackTTT.tif`` + ``man_track.txt``
    from ``masks`` labelled by track and a table with columns ``label, start, end, parent``.
    The masks and the table are checked against each other first (:class:`InputError`).
    """
    root = Path(root)
    images, masks = np.asarray(images), np.asarray(masks)
    tra = root / f"{name}_GT" / "TRA"
    if images.shape != masks.shape:
        raise InputError(root / name, f"images {images.shape} and masks {masks.shape} differ")
    missing = [c for c in TRACK_COLUMNS if c not in track_table.columns]
    if missing:
        raise InputError(tra / "man_track.txt", f"track table lacks the column(s) {missing}")
    table = track_table[list(TRACK_COLUMNS)].astype(np.int64)
    mask_paths = [tra / f"man_track{t:03d}.tif" for t in range(len(masks))]
    issues = check_masks(masks, mask_paths)
    raise_on_errors([i for i in issues if i.level == ERROR])
    pairs = detections_from_masks(masks).table
    raise_on_errors(check_track_table(table, pairs, tra / "man_track.txt", mask_paths))
    masks = masks.astype(_label_dtype(int(masks.max(initial=0))), copy=False)
    with atomic_path(root / name) as tmp:
        write_frames(tmp, "t", images)
    with atomic_path(tra) as tmp:
        write_frames(tmp, "man_track", masks)
        (tmp / "man_track.txt").write_text(format_track_table(table), encoding="utf-8")
    return root / name
