"""Tracks <-> geff (the Graph Exchange File Format), through the ``geff`` library.

A geff written here holds one node per detection with the properties ``t``, ``[z,] y, x``
(axes metadata: ``t`` is time in frames, the others space in pixels, with the voxel size from
``detections.meta["scale"]`` where known), ``label`` and ``sequence``, every scalar feature
column, and every vector block as an array property. For viewers such as motile_tracker it
also holds ``seg_id`` (the mask label), ``track_id`` (CTC track label, declared as geff tracklet
id) and ``lineage_id`` (declared as geff lineage id). The exact column order, vector names and
``meta`` go into ``extra["attrackt"]``, so that ``read_geff(write_geff(tracks))`` equals
``tracks``. Foreign geffs are read through their axes metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

log = logging.getLogger(__name__)

_EXTRA_KEY = "attrackt"
_VIEWER_PROPS = ("seg_id", "track_id", "lineage_id")


def _lineages(tracks: Tracks) -> np.ndarray:
    """Lineage id (1, 2, ...) per detection row: weakly connected components of the graph."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(tracks.detections)
    rows = tracks.detections.rows_of(tracks.edges.ravel()).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(rows)), (rows[:, 0], rows[:, 1])), shape=(n, n))
    _, component = connected_components(graph, directed=True, connection="weak")
    # number lineages by their first detection, in table order
    _, first = np.unique(component, return_index=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(1, len(first) + 1)
    return rank[component]


def _prop(values: np.ndarray) -> dict[str, Any]:
    return {"values": values, "missing": None}


def write_geff(tracks: Tracks, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write ``tracks`` as a geff zarr store at ``path`` (atomically); returns ``path``."""
    import geff_spec
    from geff.core_io import write_arrays
    from geff_spec import Axis, DisplayHint, GeffMetadata

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists (pass overwrite=True to replace it)")
    det = tracks.detections
    table = det.table
    if len(det) and det.ids.min() < 0:
        raise InputError(path, "geff needs non-negative node ids")
    clash = (set(det.vectors) & set(table.columns)) | (
        (set(det.vectors) | set(table.columns)) & set(_VIEWER_PROPS)
    )
    if clash:
        raise InputError(path, f"names used twice as geff node properties: {sorted(clash)}")

    node_props: dict[str, dict[str, Any]] = {}
    for col in table.columns:
        if col == "id":
            continue
        values = table[col].to_numpy()
        if values.dtype == object or isinstance(table[col].dtype, pd.StringDtype):
            values = table[col].astype(str).to_numpy(dtype=str)
        node_props[col] = _prop(values)
    for name, vec in det.vectors.items():
        node_props[name] = _prop(np.ascontiguousarray(vec))
    track_id, _ = tracks.tracklets()
    node_props["seg_id"] = _prop(det.labels.copy())
    node_props["track_id"] = _prop(track_id)
    node_props["lineage_id"] = _prop(_lineages(tracks))

    scale = det.meta.get("scale")
    if scale is not None and len(scale) != det.ndim:
        scale = None
    axes = [Axis(name="t", type="time", unit="frame")]
    for i, axis in enumerate(det.spatial_axes):
        axes.append(
            Axis(name=axis, type="space", unit="pixel", scale=None if scale is None else scale[i])
        )
    metadata = GeffMetadata(
        geff_version=geff_spec.__version__,
        directed=True,
        axes=axes,
        node_props_metadata={},
        edge_props_metadata={},
        track_node_props={"tracklet": "track_id", "lineage": "lineage_id"},
        display_hints=DisplayHint(
            display_horizontal="x",
            display_vertical="y",
            display_depth="z" if det.ndim == 3 else None,
            display_time="t",
        ),
        extra={
            _EXTRA_KEY: {
                "columns": list(table.columns),
                "vectors": list(det.vectors),
                "meta": det.meta,
            }
        },
    )
    node_ids = det.ids.astype(np.uint64)
    edge_ids = tracks.edges.astype(np.uint64).reshape(-1, 2)
    with atomic_path(path) as tmp:
        write_arrays(str(tmp), node_ids, node_props, edge_ids, {}, metadata)
    log.info("wrote %d nodes and %d edges to %s", len(det), len(edge_ids), path)
    return path


def read_geff(path: str | Path, sequence: str = "") -> Tracks:
    """Read a geff store into :class:`Tracks`.

    A geff written by :func:`write_geff` comes back exactly. Any other geff needs axes metadata
    (one ``time`` axis, two or three ``space`` axes); its ``seg_id`` (else ``label``) property
    becomes ``label``, other scalar properties become feature columns, array properties vector
    blocks. ``sequence`` names the sequence where the geff has no ``sequence`` property.
    """
    from geff.core_io import read_to_memory

    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such geff store")
    try:
        geff = read_to_memory(str(path))
    except (ValueError, KeyError, FileNotFoundError) as err:
        raise InputError(path, f"not a readable geff store ({err})") from err
    meta = geff["metadata"]
    props = geff["node_props"]
    for name, prop in props.items():
        if prop.get("missing") is not None and prop["missing"].any():
            raise InputError(path, f"node property {name!r} has missing values")
    ids = np.asarray(geff["node_ids"]).astype(np.int64)
    edges = np.asarray(geff["edge_ids"]).astype(np.int64).reshape(-1, 2)
    own = (meta.extra or {}).get(_EXTRA_KEY)
    if own is not None:
        table = pd.DataFrame({"id": ids})
        for col in own["columns"]:
            if col != "id":
                table[col] = props[col]["values"]
        vectors = {name: props[name]["values"] for name in own["vectors"]}
        det = Detections(table, vectors, dict(own["meta"]))
    else:
        det = _foreign_detections(path, meta, props, ids, sequence)
    try:
        return Tracks(det, edges)
    except InputError as err:
        raise InputError(path, err.problem) from err


def _foreign_detections(
    path: Path, meta: Any, props: dict[str, Any], ids: np.ndarray, sequence: str
) -> Detections:
    axes = meta.axes or []
    time = [ax.name for ax in axes if ax.type == "time"]
    space = [ax.name for ax in axes if ax.type == "space"]
    if len(time) != 1 or len(space) not in (2, 3):
        raise InputError(
            path, "geff axes metadata must name one time axis and two or three space axes"
        )
    names = ("y", "x") if len(space) == 2 else ("z", "y", "x")
    table = pd.DataFrame({"id": ids, "t": props[time[0]]["values"]})
    for name, source in zip(names, space, strict=True):
        table[name] = props[source]["values"]
    label = "seg_id" if "seg_id" in props else "label" if "label" in props else None
    table["label"] = props[label]["values"] if label else 0
    seq = props.get("sequence")
    table["sequence"] = seq["values"] if seq is not None else sequence
    used = {time[0], *space, "seg_id", "label", "sequence", "track_id", "lineage_id"}
    track_props = set((meta.track_node_props or {}).values())
    vectors = {}
    for name, prop in props.items():
        if name in used or name in track_props:
            continue
        values = prop["values"]
        if values.dtype == object:
            log.warning("%s: skipping variable-length node property %r", path, name)
        elif values.ndim == 1:
            table[name] = values
        else:
            vectors[name] = values.reshape(len(values), -1)
    scale = [ax.scale for ax in axes if ax.type == "space"]
    det_meta = {"scale": scale} if all(s is not None for s in scale) else {}
    return Detections(table, vectors, det_meta)
