"""Layer data for napari, built without napari: tracks layers and back.

A tracks layer made here carries the detection of each point in its ``features`` (``id``,
``label``, ``sequence`` and the feature columns) and the detections' ``meta`` in its
``metadata``, so :func:`tracks_from_layer` rebuilds the same :class:`~attrackt.data.Tracks`
(vector blocks aside) from what napari hands back. Layers of a 3D movie with a voxel size carry
napari's ``scale`` (:func:`layer_scale`): data stay in pixels, the view is true to shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.napari_tracks import (
    tracks_from_layer_data,
    tracks_layer_data,
    tracks_layer_features,
)
from attrackt.voxels import check_voxel_size

LayerTuple = tuple[Any, dict[str, Any], str]
_META_KEY = "attrackt"


def layer_scale(detections: Detections) -> tuple[float, ...] | None:
    """napari's ``scale`` (t, z, y, x) for the layers of a 3D movie whose voxel size is known
    (``meta["scale"]``, which ``attrackt run --voxel-size`` records): 1 per frame and the voxel
    size in units of x, so that y-x stay in pixels and z planes lie as far apart as they are.
    ``None`` (pixels) for 2D movies and where the voxel size is not known."""
    voxel = detections.meta.get("scale")
    if voxel is None or detections.ndim != 3:
        return None
    values = check_voxel_size(voxel, 3)
    return (1.0, *(values / values[-1]).tolist())


def tracks_layer(tracks: Tracks, name: str = "tracks") -> LayerTuple:
    """A napari layer-data tuple ``(data, kwargs, "tracks")`` for one sequence's tracks."""
    if len(tracks.detections.sequences) > 1:
        raise InputError(
            "tracks layer", f"one sequence per layer, got {tracks.detections.sequences}"
        )
    data, graph = tracks_layer_data(tracks)
    kwargs = {
        "name": name,
        "graph": graph,
        "features": tracks_layer_features(tracks),
        "metadata": {_META_KEY: {"meta": tracks.detections.meta}},
        "tail_length": 10,
    }
    scale = layer_scale(tracks.detections)
    if scale is not None:
        kwargs["scale"] = scale
    return data, kwargs, "tracks"


def tracks_from_layer(
    data: np.ndarray,
    graph: dict[int, Any] | None = None,
    features: pd.DataFrame | dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    sequence: str = "",
) -> Tracks:
    """:class:`Tracks` of a napari tracks layer (its ``data``, ``graph``, ``features`` and
    ``metadata``). With an ``id`` feature (layers made by :func:`tracks_layer`) the points keep
    their detection ids and feature columns; otherwise ids are the row numbers of ``data``."""
    base = tracks_from_layer_data(data, graph or {}, sequence)
    meta = dict(((metadata or {}).get(_META_KEY) or {}).get("meta", {}))
    features = pd.DataFrame(features if features is not None else {})
    features = features.drop(columns=["track_id"], errors="ignore")  # napari's own column
    if "id" not in features.columns:
        return Tracks(Detections(base.detections.table, meta=meta), base.edges)
    if len(features) != len(base.detections):
        raise InputError(
            "tracks layer", f"{len(features)} feature rows for {len(base.detections)} points"
        )
    rows = base.detections.ids  # the row of each detection in ``data``
    det = base.detections
    table = det.table[["t", *det.spatial_axes]].copy()
    ids = features["id"].to_numpy().astype(np.int64)
    table.insert(0, "id", ids[rows])
    for column in features.columns:
        if column != "id":
            table[column] = features[column].to_numpy()[rows]
    try:
        return Tracks(Detections(table, meta=meta), ids[base.edges])
    except InputError as err:
        raise InputError("tracks layer", err.problem) from err
