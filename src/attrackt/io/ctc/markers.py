"""The "GT detections" protocol: tracked full masks from the ``TRA`` markers painted over the
silver-truth segmentation (:func:`gt_detections`), by the rule of :func:`paint_markers`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage
from tqdm import tqdm

from attrackt.errors import InputError
from attrackt.io.checks import WARNING, Issue, error, raise_on_errors
from attrackt.io.ctc.inspection import inspect_images, inspect_masks, inspect_tracking
from attrackt.io.ctc.layout import locate_sequence
from attrackt.io.ctc.reading import CTCData
from attrackt.io.ctc.tracks import tracks_from_ctc


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
    loaded = inspect_images(seq.images, issues, read) if seq.images.is_dir() else None
    found = inspect_tracking(seq.tra, issues, loaded, seq.label)
    if not seq.st_seg.is_dir():
        issues.append(error(seq.st_seg, "no silver-truth segmentation folder"))
        raise_on_errors(issues)
    st_masks, st_frames, _ = inspect_masks(seq.st_seg, "man_seg", issues, loaded, WARNING)
    raise_on_errors(issues)
    assert found is not None and st_masks is not None
    markers, table, _ = found
    full = markers.copy()
    for i, t in enumerate(tqdm(st_frames, desc="painting markers", leave=False)):
        full[t] = _paint_frame(markers[t], st_masks[i])
    stack = loaded.stack if loaded is not None else None
    return CTCData(stack, full, tracks_from_ctc(full, table, seq.label, stack), table, seq.tra)
