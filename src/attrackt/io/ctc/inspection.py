"""Checking a CTC dataset: every issue of its image folders, masks and track tables
(:func:`inspect_ctc`, which ``attrackt validate`` prints), and the checked readers of one folder
that loading builds on (:func:`inspect_images`, :func:`inspect_masks`, :func:`inspect_tracking`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.io.checks import (
    ERROR,
    WARNING,
    Issue,
    check_frame_files,
    check_images,
    check_masks,
    check_track_table,
    error,
    warning,
)
from attrackt.io.ctc.layout import (
    CTCSequence,
    find_sequences,
    is_tracking_folder,
    locate_sequence,
    sequence_images,
    tracking_names,
)
from attrackt.io.ctc.tables import parse_track_table
from attrackt.io.ctc.tracks import detections_from_masks
from attrackt.io.tiff import frame_files, read_frames, read_tiff


def _has_errors(issues: list[Issue], since: int = 0) -> bool:
    return any(i.level == ERROR for i in issues[since:])


def _read_stack(paths: list[Path], issues: list[Issue]) -> np.ndarray | None:
    if not paths:
        return None
    try:
        return read_frames(paths)
    except InputError as err:
        issues.append(error(err.source, err.problem))
        return None


@dataclass
class Images:
    """An image folder's frame numbers, files, spatial shape and (when kept) pixels."""

    frames: list[int]
    paths: list[Path]
    shape: tuple[int, ...] | None
    stack: np.ndarray | None = None


def inspect_images(folder: Path, issues: list[Issue], read: str = "check") -> Images:
    """List and check an image folder; ``read`` is "keep" (pixels), "check" or "shape" (first)."""
    frames = frame_files(folder, "t")
    issues += check_frame_files(frames, folder, "t")
    paths = [p[0] for p in frames.values()]
    if not paths:
        return Images([], [], None)
    if read == "shape":
        try:
            return Images(list(frames), paths, tuple(read_tiff(paths[0]).shape))
        except InputError as err:
            issues.append(error(err.source, err.problem))
            return Images(list(frames), paths, None)
    stack = _read_stack(paths, issues)
    if stack is None:
        return Images(list(frames), paths, None)
    issues += check_images(stack, paths)
    return Images(list(frames), paths, tuple(stack.shape[1:]), stack if read == "keep" else None)


def inspect_masks(
    folder: Path,
    prefix: str,
    issues: list[Issue],
    images: Images | None,
    missing: str | None = ERROR,
) -> tuple[np.ndarray | None, list[int], list[Path]]:
    """Read a mask folder, adding the issues; the stack is None when it cannot be used."""
    start = len(issues)
    frames = frame_files(folder, prefix)
    expected = images.frames if images is not None and images.frames else None
    issues += check_frame_files(frames, folder, prefix, expected, missing)
    paths = [p[0] for p in frames.values()]
    masks = _read_stack(paths, issues)
    if masks is not None:
        image_shape = images.shape if images is not None else None
        image_path = images.paths[0] if images is not None and images.paths else None
        issues += check_masks(masks, paths, image_shape, image_path)
    return (None if _has_errors(issues, start) else masks), list(frames), paths


def inspect_tracking(
    folder: Path,
    issues: list[Issue],
    images: Images | None,
    sequence: str = "",
) -> tuple[np.ndarray, pd.DataFrame, Detections] | None:
    """Check a TRA or RES folder: masks, track table, and the two against each other."""
    prefix, table_name = tracking_names(folder)
    masks, _, paths = inspect_masks(folder, prefix, issues, images)
    table, table_issues = parse_track_table(folder / table_name)
    issues += table_issues
    if masks is None or table is None:
        return None
    detections = detections_from_masks(masks, sequence, images.stack if images else None)
    issues += check_track_table(table, detections.table, folder / table_name, paths)
    return masks, table, detections


def inspect_ctc(path: str | Path, sequence: str | None = None) -> list[Issue]:
    """Every issue of a CTC dataset folder (all sequences), one sequence, or one TRA/RES folder."""
    path = Path(path).absolute()
    if is_tracking_folder(path) and sequence is None:
        issues: list[Issue] = []
        image_folder = sequence_images(path)
        images = inspect_images(image_folder, issues) if image_folder else None
        inspect_tracking(path, issues, images)
        return issues
    try:
        sequences = [locate_sequence(path, sequence)] if sequence else find_sequences(path)
    except InputError as err:
        return [error(err.source, err.problem)]
    issues = []
    for seq in sequences:
        issues += _inspect_sequence(seq)
    return issues


def _inspect_sequence(seq: CTCSequence) -> list[Issue]:
    issues: list[Issue] = []
    images = None
    if seq.images.is_dir():
        images = inspect_images(seq.images, issues)
    else:
        issues.append(warning(seq.images, "no image folder; the masks are checked alone"))
    if seq.tra.is_dir():
        inspect_tracking(seq.tra, issues, images, seq.label)
    if seq.gt_seg.is_dir():
        if frame_files(seq.gt_seg, "man_seg"):
            inspect_masks(seq.gt_seg, "man_seg", issues, images, missing=None)
        else:
            issues.append(warning(seq.gt_seg, "holds no man_segNNN.tif files; not checked"))
    if seq.st_seg.is_dir():
        inspect_masks(seq.st_seg, "man_seg", issues, images, missing=WARNING)
    if seq.result.is_dir():
        inspect_tracking(seq.result, issues, images, seq.label)
    return issues
