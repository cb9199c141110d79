"""Input checks shared by the CTC readers and ``attrackt validate``.

Each check looks at data already in memory and returns :class:`Issue` s (errors and warnings),
each naming the file and the problem. Readers turn the first error into an :class:`InputError`
with the same text (:func:`raise_on_errors`); ``validate`` prints them all.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from skimage.measure import label as connected_components

from attrackt.errors import InputError
from attrackt.io.tiff import frame_name

log = logging.getLogger(__name__)

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Issue:
    """One problem found in the input: ``level`` is ``"error"`` or ``"warning"``."""

    level: str
    source: str
    problem: str

    def __str__(self) -> str:
        return f"{self.level.upper()} {self.source}: {self.problem}"


def error(source: str | Path, problem: str) -> Issue:
    return Issue(ERROR, str(source), problem)


def warning(source: str | Path, problem: str) -> Issue:
    return Issue(WARNING, str(source), problem)


def raise_on_errors(issues: Iterable[Issue]) -> None:
    """Log the warnings; raise :class:`InputError` with the text of the first error."""
    issues = list(issues)
    for issue in issues:
        if issue.level == WARNING:
            log.warning("%s: %s", issue.source, issue.problem)
    errors = [i for i in issues if i.level == ERROR]
    if errors:
        more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
        raise InputError(errors[0].source, errors[0].problem + more)


def _names(ts: Sequence[int], limit: int = 5, render=str) -> str:
    shown = ", ".join(render(int(t)) for t in ts[:limit])
    return shown + (f" and {len(ts) - limit} more" if len(ts) > limit else "")


# ---- frame files ------------------------------------------------------------------------------


def check_frame_files(
    frames: dict[int, list[Path]],
    folder: Path,
    prefix: str,
    expected: Sequence[int] | None = None,
    missing: str | None = ERROR,
) -> list[Issue]:
    """Frame numbering: duplicates, gaps, and (given the image frames) missing or extra frames.

    Without ``expected`` the frames must run 0, 1, 2, ... without a gap. With it, each expected
    frame without a file is an issue of level ``missing`` (``None``: allowed, as for sparse
    ground truth); a frame that is not expected is an error.
    """
    issues: list[Issue] = []
    if not frames:
        return [error(folder, f"holds no {prefix}NNN.tif files")]
    for t, paths in frames.items():
        if len(paths) > 1:
            names = ", ".join(p.name for p in paths)
            issues.append(error(folder, f"frame {t} has {len(paths)} files: {names}"))
    have = np.fromiter(frames, dtype=np.int64)
    n = int(max(have.max() + 1, 0 if expected is None else len(expected)))
    if expected is None:
        for t in np.setdiff1d(np.arange(have.max() + 1), have):
            before = have[have < t].max(initial=-1)
            after = have[have > t].min()
            where = (
                f"numbering jumps from {frames[before][0].name} to {frames[after][0].name}"
                if before >= 0
                else f"numbering starts at {frames[after][0].name}"
            )
            issues.append(
                error(folder / frame_name(prefix, int(t), n), f"missing frame {t} ({where})")
            )
        return issues
    expected = np.asarray(expected, dtype=np.int64)
    if missing is not None:
        for t in np.setdiff1d(expected, have):
            source = folder / frame_name(prefix, int(t), n)
            issues.append(Issue(missing, str(source), f"missing: image frame {t} has no mask"))
    for t in np.setdiff1d(have, expected):
        issues.append(error(frames[int(t)][0], f"frame {t} has no image"))
    return issues


# ---- arrays -----------------------------------------------------------------------------------


def check_images(images: np.ndarray, paths: Sequence[Path]) -> list[Issue]:
    """Images must be numbers without NaN."""
    if images.dtype.kind not in "biuf":
        return [error(paths[0], f"image pixels must be numbers, found {images.dtype}")]
    if images.dtype.kind != "f":
        return []
    has_nan = np.isnan(images.reshape(len(images), -1)).any(axis=1)
    return [error(paths[t], "contains NaN pixels") for t in np.flatnonzero(has_nan)]


def check_masks(
    masks: np.ndarray,
    paths: Sequence[Path],
    image_shape: tuple[int, ...] | None = None,
    image_path: Path | None = None,
) -> list[Issue]:
    """Masks: integer labels >= 0, the images' shape; warn for empty frames and split labels.

    A label in several disconnected pieces (full connectivity) is a warning, not an error.
    """
    if masks.dtype.kind not in "iu":
        return [error(paths[0], f"masks must hold integer labels, found {masks.dtype} pixels")]
    if image_shape is not None and masks.shape[1:] != tuple(image_shape):
        return [
            error(
                paths[0],
                f"mask shape {masks.shape[1:]} differs from image shape "
                f"{tuple(image_shape)} ({image_path.name if image_path else 'images'})",
            )
        ]
    issues: list[Issue] = []
    if masks.dtype.kind == "i":
        negative = (masks.reshape(len(masks), -1) < 0).any(axis=1)
        issues += [error(paths[t], "holds negative labels") for t in np.flatnonzero(negative)]
        if issues:
            return issues
    for t, frame in enumerate(masks):
        if not frame.any():
            issues.append(warning(paths[t], "empty frame (no labelled object)"))
            continue
        issues += _split_labels(frame, paths[t])
    return issues


def _split_labels(frame: np.ndarray, path: Path) -> list[Issue]:
    components, n = connected_components(frame, background=0, return_num=True)
    n_labels = np.count_nonzero(np.bincount(frame.ravel().astype(np.int64, copy=False))[1:])
    if n <= n_labels:
        return []
    label_of = np.zeros(n + 1, dtype=np.int64)
    label_of[components.ravel()] = frame.ravel()
    labels, pieces = np.unique(label_of[1:], return_counts=True)
    split = pieces > 1
    detail = _names(
        np.flatnonzero(split), render=lambda i: f"label {labels[i]} ({pieces[i]} pieces)"
    )
    return [warning(path, f"labels in disconnected pieces: {detail}")]


# ---- track tables -----------------------------------------------------------------------------


def check_track_table(
    table: pd.DataFrame,
    pairs: pd.DataFrame,
    table_path: Path,
    mask_paths: Sequence[Path],
) -> list[Issue]:
    """A CTC track table (label, start, end, parent) against the ``(t, label)`` pairs of the masks.

    Errors: a repeated or non-positive label, start > end, a parent that does not exist or does
    not end before its child starts, a track absent from a frame of its span, a label present
    outside its span or absent from the table.
    """
    src = table_path
    issues: list[Issue] = []
    dup = table["label"][table["label"].duplicated()].unique()
    issues += [error(src, f"track {lab} has more than one row") for lab in dup]
    for row in table.itertuples(index=False):
        if row.label <= 0:
            issues.append(error(src, f"track {row.label}: labels must be positive"))
        if row.start > row.end:
            issues.append(error(src, f"track {row.label}: start {row.start} after end {row.end}"))
    ends = table.drop_duplicates("label").set_index("label")["end"]
    with_parent = table[table["parent"] != 0]
    for row in with_parent.itertuples(index=False):
        if row.parent not in ends.index:
            issues.append(error(src, f"track {row.label}: parent {row.parent} does not exist"))
        elif ends[row.parent] >= row.start:
            issues.append(
                error(
                    src,
                    f"track {row.label} starts at frame {row.start} but its parent "
                    f"{row.parent} ends at frame {ends[row.parent]}",
                )
            )

    n_frames = len(mask_paths)
    name = lambda t: mask_paths[t].name if 0 <= t < n_frames else f"frame {t}"  # noqa: E731
    spans = table.drop_duplicates("label").set_index("label")[["start", "end"]]
    beyond = spans[(spans["start"] < 0) | (spans["end"] >= n_frames)]
    for lab, row in beyond.iterrows():
        issues.append(
            error(
                src,
                f"track {lab}: span {row.start}-{row.end} lies outside the "
                f"{n_frames} frames (0-{n_frames - 1})",
            )
        )
    joined = pairs[["t", "label"]].join(spans, on="label")
    unknown = joined[joined["start"].isna()]
    for lab, group in unknown.groupby("label")["t"]:
        issues.append(
            error(
                src,
                f"label {lab} in {_names(group.to_numpy(), render=name)} "
                f"has no row in {table_path.name}",
            )
        )
    known = joined[joined["start"].notna()]
    outside = known[(known["t"] < known["start"]) | (known["t"] > known["end"])]
    for lab, group in outside.groupby("label")["t"]:
        start, end = spans.loc[lab]
        issues.append(
            error(
                src,
                f"track {lab} spans frames {start}-{end} but its label is also in "
                f"{_names(group.to_numpy(), render=name)}",
            )
        )
    inside = known.drop(outside.index)
    seen = inside.groupby("label")["t"].nunique()
    length = (spans["end"].clip(upper=n_frames - 1) - spans["start"].clip(lower=0) + 1).clip(0)
    short = length.index[seen.reindex(length.index, fill_value=0).to_numpy() < length.to_numpy()]
    frames_of = inside.groupby("label")["t"].unique()
    for lab in short:
        start, end = (int(v) for v in spans.loc[lab])
        span = np.arange(max(start, 0), min(end, n_frames - 1) + 1)
        present = frames_of.get(lab, np.zeros(0, np.int64))
        absent = np.setdiff1d(span, present)
        issues.append(
            error(
                src,
                f"track {lab} spans frames {start}-{end} but is absent from "
                f"{_names(absent, render=name)}",
            )
        )
    return issues
