"""Cell Tracking Challenge (CTC) folders: find, read (with checks), write.

A CTC dataset folder holds, per sequence ``NN``: ``NN/tTTT.tif`` (images),
``NN_GT/TRA/man_trackTTT.tif`` + ``man_track.txt`` (tracking ground truth: one label per track),
``NN_GT/SEG/man_segTTT.tif`` (full segmentation of some frames), ``NN_ST/SEG/man_segTTT.tif``
(silver-truth segmentation) and, for a tracker's result, ``NN_RES/maskTTT.tif`` +
``res_track.txt``. A track table has one row ``label start end parent`` per track; a track's
label is in its masks in every frame from ``start`` to ``end``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path
from attrackt.io.checks import (
    ERROR,
    WARNING,
    Issue,
    check_frame_files,
    check_images,
    check_masks,
    check_track_table,
    error,
    raise_on_errors,
    warning,
)
from attrackt.io.tiff import frame_files, read_frames, read_tiff, write_frames

log = logging.getLogger(__name__)

TRACK_COLUMNS = ("label", "start", "end", "parent")
_SEQUENCE_DIR = re.compile(r"^(\d+)(_GT|_ST|_RES)?$")


# ---- layout -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CTCSequence:
    """One sequence ``name`` (``"01"``) of the dataset folder ``root``, and where its parts live."""

    root: Path
    name: str

    @property
    def images(self) -> Path:
        return self.root / self.name

    @property
    def tra(self) -> Path:
        return self.root / f"{self.name}_GT" / "TRA"

    @property
    def gt_seg(self) -> Path:
        return self.root / f"{self.name}_GT" / "SEG"

    @property
    def st_seg(self) -> Path:
        return self.root / f"{self.name}_ST" / "SEG"

    @property
    def result(self) -> Path:
        return self.root / f"{self.name}_RES"

    @property
    def label(self) -> str:
        """The name detections carry in their ``sequence`` column: ``"Fluo-N2DL-HeLa/01"``."""
        return f"{self.root.name}/{self.name}"


def locate_sequence(path: str | Path, sequence: str | None = None) -> CTCSequence:
    """The sequence given as (dataset folder, sequence name) or by one of its own folders.

    ``locate_sequence("Fluo-N2DL-HeLa", "01")``, ``locate_sequence("Fluo-N2DL-HeLa/01")``,
    ``".../01_GT/TRA"`` and ``".../01_RES"`` all name the same sequence.
    """
    path = Path(path).absolute()
    if sequence is not None:
        seq = CTCSequence(path, str(sequence))
        if not any(p.is_dir() for p in (seq.images, seq.tra.parent, seq.st_seg.parent, seq.result)):
            raise InputError(
                path,
                f"has no sequence {sequence!r} (no folder {sequence}, {sequence}_GT, "
                f"{sequence}_ST or {sequence}_RES)",
            )
        return seq
    if path.name in ("TRA", "SEG"):
        match = re.match(r"^(\d+)_(GT|ST)$", path.parent.name)
        if match:
            return CTCSequence(path.parent.parent, match.group(1))
    match = _SEQUENCE_DIR.match(path.name)
    if match and path.is_dir():
        return CTCSequence(path.parent, match.group(1))
    raise InputError(
        path,
        "not a CTC sequence folder (expected DATASET/01, DATASET/01_GT/TRA or "
        "DATASET/01_RES); or give the dataset folder and the sequence name",
    )


def find_sequences(path: str | Path) -> list[CTCSequence]:
    """Every sequence of a dataset folder, or the one sequence that ``path`` belongs to."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise InputError(path, "no such folder")
    names = sorted(
        {m.group(1) for p in path.iterdir() if p.is_dir() and (m := _SEQUENCE_DIR.match(p.name))}
    )
    if names:
        return [CTCSequence(path, name) for name in names]
    return [locate_sequence(path)]


# ---- track tables -----------------------------------------------------------------------------


def parse_track_table(path: str | Path) -> tuple[pd.DataFrame | None, list[Issue]]:
    """Read a CTC track table; malformed rows are skipped, each reported as an error."""
    path = Path(path)
    if not path.is_file():
        return None, [error(path, "missing track table")]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return None, [error(path, f"unreadable track table ({err})")]
    rows, issues = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or min(values) < 0:
            issues.append(
                error(
                    path,
                    f"line {number}: expected 4 integers >= 0 'label start end parent', "
                    f"got {line.strip()!r}",
                )
            )
            continue
        rows.append(values)
    table = pd.DataFrame(np.asarray(rows, np.int64).reshape(-1, 4), columns=list(TRACK_COLUMNS))
    return table, issues


def read_track_table(path: str | Path) -> pd.DataFrame:
    """Read a CTC track table (``label start end parent`` per line); raises on a bad row."""
    table, issues = parse_track_table(path)
    raise_on_errors(issues)
    return table


def _format_track_table(table: pd.DataFrame) -> str:
    rows = table[list(TRACK_COLUMNS)].to_numpy(np.int64)
    return "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows.tolist())


# ---- masks -> detections and tracks -------------------------------------------------------------


def _regions(
    frame: np.ndarray, image: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Labels (sorted), pixel counts, centroids ``(n, ndim)`` [and mean intensities] of a frame."""
    flat = frame.ravel()
    idx = np.flatnonzero(flat)
    values = flat[idx].astype(np.int64, copy=False)
    if len(values) and values.max() < 4 * flat.size + 1024:
        counts = np.bincount(values)
        labels = np.flatnonzero(counts)
        dense = np.zeros(len(counts), np.int64)
        dense[labels] = np.arange(len(labels))
        inverse = dense[values]
    else:
        labels, inverse = np.unique(values, return_inverse=True)
    area = np.bincount(inverse, minlength=len(labels))
    coords = np.unravel_index(idx, frame.shape)
    centroid = np.stack([np.bincount(inverse, c, len(labels)) for c in coords], 1)
    safe = np.maximum(area, 1)
    mean = None
    if image is not None:
        mean = np.bincount(inverse, image.ravel()[idx].astype(np.float64), len(labels)) / safe
    return labels, area, centroid / safe[:, None], mean


def detections_from_masks(
    masks: np.ndarray, sequence: str = "", images: np.ndarray | None = None
) -> Detections:
    """One detection per ``(t, label)`` of a ``(T, [Z,] Y, X)`` label stack, at its centroid.

    Columns beyond the core ones: ``area`` (pixels) and, with ``images``, ``intensity_mean``.
    Ids run 0, 1, 2, ... in ``(t, label)`` order; ``meta["image_shape"]`` is the spatial shape.
    """
    masks = np.asarray(masks)
    if masks.ndim not in (3, 4):
        raise InputError(None, f"masks must be (T, Y, X) or (T, Z, Y, X), got shape {masks.shape}")
    if masks.dtype.kind not in "iu":
        raise InputError(None, f"masks must hold integer labels, found {masks.dtype}")
    if images is not None and images.shape != masks.shape:
        raise InputError(None, f"images {images.shape} and masks {masks.shape} differ in shape")
    ts, labels, areas, centroids, means = [], [], [], [], []
    for t, frame in enumerate(masks):
        lab, area, centroid, mean = _regions(frame, None if images is None else images[t])
        ts.append(np.full(len(lab), t, np.int64))
        labels.append(lab)
        areas.append(area)
        centroids.append(centroid)
        means.append(mean)

    def joined(parts: list, empty: np.ndarray) -> np.ndarray:
        return np.concatenate(parts) if parts else empty

    columns = {"area": joined(areas, np.zeros(0, np.int64))}
    if images is not None:
        columns["intensity_mean"] = joined(means, np.zeros(0))
    return Detections.from_arrays(
        joined(ts, np.zeros(0, np.int64)),
        joined(centroids, np.zeros((0, masks.ndim - 1))),
        labels=joined(labels, np.zeros(0, np.int64)),
        sequence=sequence,
        meta={"image_shape": [int(s) for s in masks.shape[1:]]},
        **columns,
    )


def _ctc_edges(detections: Detections, track_table: pd.DataFrame) -> np.ndarray:
    """Edges between consecutive appearances of a label, and parent end -> child start."""
    ids, t, labels = detections.ids, detections.times, detections.labels
    order = np.lexsort((t, labels))
    ids_s, lab_s = ids[order], labels[order]
    same = lab_s[1:] == lab_s[:-1]
    within = np.stack([ids_s[:-1][same], ids_s[1:][same]], 1)
    first = pd.Series(ids_s, index=lab_s).groupby(level=0).first()
    last = pd.Series(ids_s, index=lab_s).groupby(level=0).last()
    linked = track_table[track_table["parent"] != 0]
    known = linked["label"].isin(first.index) & linked["parent"].isin(last.index)
    if not known.all():
        log.warning(
            "%d parent links name a track without masks; they are left out", int((~known).sum())
        )
    linked = linked[known]
    between = np.stack(
        [last.loc[linked["parent"]].to_numpy(), first.loc[linked["label"]].to_numpy()], 1
    )
    return np.concatenate([within, between.reshape(-1, 2)]).astype(np.int64)


def tracks_from_ctc(
    masks: np.ndarray,
    track_table: pd.DataFrame,
    sequence: str = "",
    images: np.ndarray | None = None,
) -> Tracks:
    """Tracks of CTC masks (labelled by track) and their table.

    Consecutive appearances of a label are linked (a frame gap gives an edge that skips frames);
    each child track's first detection is linked to its parent track's last detection.
    """
    detections = detections_from_masks(masks, sequence, images)
    return Tracks(detections, _ctc_edges(detections, track_table))


# ---- reading with checks ------------------------------------------------------------------------


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
class _Images:
    """An image folder's frame numbers, files, spatial shape and (when kept) pixels."""

    frames: list[int]
    paths: list[Path]
    shape: tuple[int, ...] | None
    stack: np.ndarray | None = None


def _inspect_images(folder: Path, issues: list[Issue], read: str = "check") -> _Images:
    """List and check an image folder; ``read`` is "keep" (pixels), "check" or "shape" (first)."""
    frames = frame_files(folder, "t")
    issues += check_frame_files(frames, folder, "t")
    paths = [p[0] for p in frames.values()]
    if not paths:
        return _Images([], [], None)
    if read == "shape":
        try:
            return _Images(list(frames), paths, tuple(read_tiff(paths[0]).shape))
        except InputError as err:
            issues.append(error(err.source, err.problem))
            return _Images(list(frames), paths, None)
    stack = _read_stack(paths, issues)
    if stack is None:
        return _Images(list(frames), paths, None)
    issues += check_images(stack, paths)
    return _Images(list(frames), paths, tuple(stack.shape[1:]), stack if read == "keep" else None)


def _inspect_masks(
    folder: Path,
    prefix: str,
    issues: list[Issue],
    images: _Images | None,
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


def _inspect_tracking(
    folder: Path,
    issues: list[Issue],
    images: _Images | None,
    sequence: str = "",
) -> tuple[np.ndarray, pd.DataFrame, Detections] | None:
    """Check a TRA or RES folder: masks, track table, and the two against each other."""
    prefix, table_name = _tracking_names(folder)
    masks, _, paths = _inspect_masks(folder, prefix, issues, images)
    table, table_issues = parse_track_table(folder / table_name)
    issues += table_issues
    if masks is None or table is None:
        return None
    detections = detections_from_masks(masks, sequence, images.stack if images else None)
    issues += check_track_table(table, detections.table, folder / table_name, paths)
    return masks, table, detections


def _tracking_names(folder: Path) -> tuple[str, str]:
    """(mask prefix, table name) of a TRA or RES folder."""
    if (folder / "res_track.txt").exists() or folder.name.endswith("_RES"):
        return "mask", "res_track.txt"
    return "man_track", "man_track.txt"


def _is_tracking_folder(path: Path) -> bool:
    return (path / "man_track.txt").is_file() or (path / "res_track.txt").is_file()


def inspect_ctc(path: str | Path, sequence: str | None = None) -> list[Issue]:
    """Every issue of a CTC dataset folder (all sequences), one sequence, or one TRA/RES folder."""
    path = Path(path).absolute()
    if _is_tracking_folder(path) and sequence is None:
        issues: list[Issue] = []
        image_folder = _sequence_images(path)
        images = _inspect_images(image_folder, issues) if image_folder else None
        _inspect_tracking(path, issues, images)
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
        images = _inspect_images(seq.images, issues)
    else:
        issues.append(warning(seq.images, "no image folder; the masks are checked alone"))
    if seq.tra.is_dir():
        _inspect_tracking(seq.tra, issues, images, seq.label)
    if seq.gt_seg.is_dir():
        if frame_files(seq.gt_seg, "man_seg"):
            _inspect_masks(seq.gt_seg, "man_seg", issues, images, missing=None)
        else:
            issues.append(warning(seq.gt_seg, "holds no man_segNNN.tif files; not checked"))
    if seq.st_seg.is_dir():
        _inspect_masks(seq.st_seg, "man_seg", issues, images, missing=WARNING)
    if seq.result.is_dir():
        _inspect_tracking(seq.result, issues, images, seq.label)
    return issues


def _sequence_images(folder: Path) -> Path | None:
    """The image folder of the sequence a TRA/RES folder belongs to, when it is there."""
    try:
        seq = locate_sequence(folder)
    except InputError:
        return None
    return seq.images if seq.images.is_dir() else None


# ---- loading ------------------------------------------------------------------------------------


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
    if sequence is None and _is_tracking_folder(path):
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
    image_folder = _sequence_images(folder)
    read = "keep" if images else "shape"
    loaded = _inspect_images(image_folder, issues, read) if image_folder else None
    found = _inspect_tracking(folder, issues, loaded, label)
    raise_on_errors(issues)
    assert found is not None  # every way to get None adds an error
    masks, table, detections = found
    stack = loaded.stack if loaded is not None else None
    return CTCData(stack, masks, Tracks(detections, _ctc_edges(detections, table)), table, folder)


# ---- GT detections ------------------------------------------------------------------------------


def paint_markers(markers: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """Tracked full masks: each marker's label painted over the instance it overlaps most.

    The rule, frame by frame: each marker picks the instance it shares most pixels with (the
    lower instance id on a tie). An instance picked by one marker takes that marker's label
    whole; an instance picked by several markers (a merged segmentation) is split between them,
    each pixel going to the nearest of their markers. Instances no marker picks are dropped.
    Marker pixels keep their own label everywhere, so a marker that overlaps no instance stays
    as it is, and every marker label of a frame is in the result.
    """
    if markers.shape != instances.shape:
        raise InputError(None, f"markers {markers.shape} and instances {instances.shape} differ")
    out = np.zeros(markers.shape, dtype=markers.dtype)
    for t in range(len(markers)):
        out[t] = _paint_frame(markers[t], instances[t])
    return out


def _paint_frame(marker: np.ndarray, inst: np.ndarray) -> np.ndarray:
    both = (marker > 0) & (inst > 0)
    m = marker[both].astype(np.int64)
    s = inst[both].astype(np.int64)
    pairs = pd.DataFrame({"m": m, "s": s}).value_counts().rename("n").reset_index()
    pairs = pairs.sort_values(["m", "n", "s"], ascending=[True, False, True])
    picks = pairs.drop_duplicates("m")
    claims = picks.groupby("s")["m"].agg(["count", "first"])
    out = np.zeros_like(marker)
    single = claims[claims["count"] == 1]
    if len(single):
        lut = np.zeros(int(inst.max()) + 1, dtype=marker.dtype)
        lut[single.index.to_numpy()] = single["first"].to_numpy()
        out = lut[inst]
    shared = claims.index[claims["count"] > 1]
    if len(shared):
        boxes = ndimage.find_objects(inst)
        for s_id in shared:
            box = boxes[s_id - 1]
            region = inst[box] == s_id
            owners = picks.loc[picks["s"] == s_id, "m"].to_numpy()
            seeds = np.where(np.isin(marker[box], owners), marker[box], 0)
            _, nearest = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            split = seeds[tuple(nearest)]
            out[box][region] = split[region]
    painted = marker > 0
    out[painted] = marker[painted]
    return out


def gt_detections(path: str | Path, sequence: str | None = None, *, images: bool = True) -> CTCData:
    """The "GT detections" protocol: tracked full masks from TRA markers and ST segmentation.

    Each TRA marker's label is painted over the silver-truth (``NN_ST/SEG``) instance it overlaps
    most (:func:`paint_markers` gives the rule); where no instance overlaps, or a frame has no ST
    mask, the marker itself is kept. Returns the TRA tracks on these full masks (same labels and
    track table; positions are the full cells' centroids).
    """
    seq = locate_sequence(path, sequence)
    issues: list[Issue] = []
    read = "keep" if images else "shape"
    loaded = _inspect_images(seq.images, issues, read) if seq.images.is_dir() else None
    found = _inspect_tracking(seq.tra, issues, loaded, seq.label)
    if not seq.st_seg.is_dir():
        issues.append(error(seq.st_seg, "no silver-truth segmentation folder"))
        raise_on_errors(issues)
    st_masks, st_frames, _ = _inspect_masks(seq.st_seg, "man_seg", issues, loaded, WARNING)
    raise_on_errors(issues)
    assert found is not None and st_masks is not None
    markers, table, _ = found
    full = markers.copy()
    for i, t in enumerate(tqdm(st_frames, desc="painting markers", leave=False)):
        full[t] = _paint_frame(markers[t], st_masks[i])
    stack = loaded.stack if loaded is not None else None
    return CTCData(stack, full, tracks_from_ctc(full, table, seq.label, stack), table, seq.tra)


# ---- writing ------------------------------------------------------------------------------------


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
        (tmp / "res_track.txt").write_text(_format_track_table(table), encoding="utf-8")
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
        (tmp / "man_track.txt").write_text(_format_track_table(table), encoding="utf-8")
    return root / name


# ---- summary ------------------------------------------------------------------------------------


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
    if _is_tracking_folder(path) and sequence is None:
        folders = [(str(path), path)]
    else:
        seqs = [locate_sequence(path, sequence)] if sequence else find_sequences(path)
        folders = [(s.label, s.tra if s.tra.is_dir() else s.images) for s in seqs]
    out = []
    for name, folder in folders:
        if not _is_tracking_folder(folder):
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
