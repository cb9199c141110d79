"""Tracks <-> the data of a napari Tracks layer (napari itself is not needed here).

napari's Tracks layer takes ``data``, an ``(N, 4)`` or ``(N, 5)`` array with the columns
``track_id, t, [z,] y, x`` (rows of one track in time order), and ``graph``, a dict
``{track_id: [parent_track_id, ...]}`` that links each daughter track to its mother.
Track ids here are the CTC track labels of :meth:`Tracks.tracklets`. A layer holds one
sequence's time axis: pass one sequence at a time (see :meth:`Detections.by_sequence`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError


def _layer_order(tracks: Tracks) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Track label per detection row, the row order of the layer, and the lineage table."""
    labels, table = tracks.tracklets()
    order = np.lexsort((tracks.detections.times, labels))
    return labels, order, table


def tracks_layer_data(tracks: Tracks) -> tuple[np.ndarray, dict[int, list[int]]]:
    """``(data, graph)`` for ``napari.layers.Tracks``: rows sorted by track id, then time."""
    det = tracks.detections
    labels, order, table = _layer_order(tracks)
    data = np.column_stack([labels, det.times, det.positions()])[order].astype(np.float64)
    daughters = table[table["parent"] > 0]
    graph = {
        int(child): [int(parent)]
        for child, parent in zip(daughters["label"], daughters["parent"], strict=True)
    }
    return data, graph


def tracks_layer_features(tracks: Tracks) -> pd.DataFrame:
    """Per-point features for the layer (``id``, ``label``, ``sequence`` and feature columns),
    in the row order of :func:`tracks_layer_data`, so a clicked point maps back to its detection.
    """
    _, order, _ = _layer_order(tracks)
    table = tracks.detections.table
    keep = [c for c in table.columns if c not in tracks.detections.spatial_axes and c != "t"]
    return table[keep].iloc[order].reset_index(drop=True)


def tracks_from_layer_data(
    data: np.ndarray, graph: dict[int, list[int]] | None = None, sequence: str = ""
) -> Tracks:
    """Rebuild :class:`Tracks` from a Tracks layer's ``data`` and ``graph``.

    Detection ids are the row numbers of ``data``; ``label`` is the track id (as in CTC masks).
    Within a track, points are linked in time order; a daughter track's first point is linked
    to the last point of its parent track. Merges (several parents) cannot be represented.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] not in (4, 5):
        raise InputError(None, f"tracks layer data must be (N, 4) or (N, 5), got {data.shape}")
    track = data[:, 0].astype(np.int64)
    t = data[:, 1].astype(np.int64)
    if not (np.array_equal(track, data[:, 0]) and np.array_equal(t, data[:, 1])):
        raise InputError(None, "track ids and times in tracks layer data must be integers")
    det = Detections.from_arrays(t, data[:, 2:], labels=track, sequence=sequence)
    order = np.lexsort((t, track))
    ordered = track[order]
    same = ordered[1:] == ordered[:-1]
    if (same & (t[order][1:] == t[order][:-1])).any():
        raise InputError(None, "a track has two points in one frame")
    edges = [np.stack([order[:-1][same], order[1:][same]], 1)]
    starts = np.flatnonzero(np.r_[True, ~same]) if len(order) else np.zeros(0, np.int64)
    ends = np.r_[starts[1:] - 1, len(order) - 1] if len(order) else starts
    first = dict(zip(ordered[starts].tolist(), order[starts].tolist(), strict=True))
    last = dict(zip(ordered[starts].tolist(), order[ends].tolist(), strict=True))
    links = []
    for child, parents in (graph or {}).items():
        parents = [parents] if np.isscalar(parents) else list(parents)
        if len(parents) > 1:
            raise InputError(None, f"track {child} has several parents (a merge)")
        missing = [k for k in (child, *parents) if k not in first]
        if missing:
            raise InputError(None, f"the graph names tracks absent from the data: {missing}")
        links.extend((last[p], first[child]) for p in parents)
    edges.append(np.asarray(links, np.int64).reshape(-1, 2))
    try:
        return Tracks(det, np.concatenate(edges))
    except InputError as err:
        raise InputError(None, f"tracks layer: {err.problem}") from err
