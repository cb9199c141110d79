"""From CTC masks labelled by track, and their track table, to detections (one per ``(t, label)``
at its centroid; :func:`detections_from_masks`) and tracks (:func:`tracks_from_ctc`)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError

log = logging.getLogger(__package__)  # the messages keep the name of attrackt.io.ctc


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


def ctc_edges(detections: Detections, track_table: pd.DataFrame) -> np.ndarray:
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
    return Tracks(detections, ctc_edges(detections, track_table))
