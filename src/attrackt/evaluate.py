"""Tracking metrics through traccuracy: AOGM / TRA / DET / LNK, CHOTA and division scores.

Three ways to match predicted to ground-truth detections:

* **identity** — pred and gt are over the same detections (the same ``(sequence, t, label)``
  set, or the same positions): the "GT detections" protocol of linking benchmarks. The
  one-to-one matching is built directly; no masks needed.
* **CTC** — both sides come with label masks: traccuracy's ``CTCMatcher`` (a gt marker is
  matched by the predicted mask covering most of it).
* **point** — otherwise, with ``match_distance`` given: traccuracy's ``PointMatcher``.

AOGM uses the CTC weights (nodes: FN 10, FP 1, NS 5; edges: FN 1.5, FP 1, WS 1). Division
scores are traccuracy's ``DivisionMetrics`` with frame buffer 0.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.jsonfile import strict_json

log = logging.getLogger(__name__)

#: the metric keys, in the order tables show them
METRICS = (
    "AOGM",
    "TRA",
    "DET",
    "LNK",
    "CHOTA",
    "fp_nodes",
    "fn_nodes",
    "ns_nodes",
    "fp_edges",
    "fn_edges",
    "ws_edges",
    "division_precision",
    "division_recall",
    "division_f1",
    "gt_divisions",
    "pred_divisions",
    "tp_divisions",
    "fp_divisions",
    "fn_divisions",
    "wc_divisions",
    "gt_nodes",
    "gt_edges",
)
_DIVISION_KEYS = {
    "Division Precision": "division_precision",
    "Division Recall": "division_recall",
    "Division F1": "division_f1",
    "Total GT Divisions": "gt_divisions",
    "Total Predicted Divisions": "pred_divisions",
    "True Positive Divisions": "tp_divisions",
    "False Positive Divisions": "fp_divisions",
    "False Negative Divisions": "fn_divisions",
    "Wrong Children Divisions": "wc_divisions",
}


# --------------------------------------------------------------------------------------------
# Scoring a matched pair of graphs
# --------------------------------------------------------------------------------------------


def score_matched(matched: Any, chota: bool = True) -> dict[str, float]:
    """Every metric of one traccuracy ``Matched``; its graphs get annotated in place with
    traccuracy's node and edge flags (CTC errors, and divisions for one-to-one matchings)."""
    from traccuracy.metrics import CHOTAMetric, CTCMetrics, DivisionMetrics

    out: dict[str, float] = {}
    ctc = CTCMetrics().compute(matched).results
    out.update({k: float(v) for k, v in ctc.items() if k in METRICS})
    if chota:
        # traccuracy's CHOTA logs at INFO with "{}" placeholders that logging cannot format,
        # and warns that the CTC errors are annotated already: silence both
        chota_log = logging.getLogger("traccuracy.metrics._chota")
        level = chota_log.level
        chota_log.setLevel(logging.WARNING)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                out["CHOTA"] = float(CHOTAMetric().compute(matched).results["CHOTA"])
        finally:
            chota_log.setLevel(level)
    if matched.matching_type == "one-to-one":
        div = DivisionMetrics(max_frame_buffer=0).compute(matched).results["Frame Buffer 0"]
        out.update({_DIVISION_KEYS[k]: float(v) for k, v in div.items() if k in _DIVISION_KEYS})
    else:
        log.warning(
            "division scores need a one-to-one matching, this one is %s: reported as NaN",
            matched.matching_type,
        )
        out.update({k: math.nan for k in _DIVISION_KEYS.values()})
    out["gt_nodes"] = float(matched.gt_graph.graph.number_of_nodes())
    out["gt_edges"] = float(matched.gt_graph.graph.number_of_edges())
    return {k: out[k] for k in METRICS if k in out}


def _frame_offsets(*tracks: Tracks) -> dict[str, int]:
    """Put the sequences one after the other on one time axis (with a gap between them)."""
    last: dict[str, int] = {}
    for tr in tracks:
        table = tr.detections.table
        for seq, t in table.groupby("sequence")["t"].max().items():
            last[seq] = max(last.get(seq, 0), int(t))
    offsets, start = {}, 0
    for seq in sorted(last):
        offsets[seq] = start
        start += last[seq] + 2
    return offsets


def _tracking_graph(tracks: Tracks, offsets: dict[str, int], masks: np.ndarray | None, name: str):
    import networkx as nx
    from traccuracy import TrackingGraph

    det = tracks.detections
    table = det.table
    frame = det.times + table["sequence"].map(offsets).to_numpy(np.int64)
    axes = det.spatial_axes
    attrs = pd.DataFrame({"t": frame, "segmentation_id": det.labels})
    for axis in axes:
        attrs[axis] = table[axis].to_numpy()
    graph = nx.DiGraph()
    graph.add_nodes_from(zip(det.ids.tolist(), attrs.to_dict("records"), strict=True))
    graph.add_edges_from(tracks.edges.tolist())
    return TrackingGraph(
        graph,
        segmentation=masks,
        frame_key="t",
        label_key="segmentation_id",
        location_keys=axes,
        name=name,
    )


def _same_sequence_name(pred: Tracks, gt: Tracks) -> Tracks:
    """With one sequence on each side, pred takes gt's sequence name (names often differ)."""
    ours, theirs = pred.detections.sequences, gt.detections.sequences
    if len(ours) == 1 and len(theirs) == 1 and ours != theirs:
        log.info("scoring sequence %r against %r", ours[0], theirs[0])
        det = pred.detections
        det = Detections(det.table.assign(sequence=theirs[0]), det.vectors, det.meta)
        return Tracks(det, pred.edges)
    return pred


def _identity_mapping(pred: Tracks, gt: Tracks) -> list[tuple[int, int]] | None:
    """``(gt_id, pred_id)`` pairs when both are over the same detections, else ``None``."""
    if len(pred.detections) != len(gt.detections):
        return None
    for keys in (["sequence", "t", "label"], ["sequence", "t", *gt.detections.spatial_axes]):
        a, b = pred.detections.table, gt.detections.table
        if not set(keys) <= set(a.columns):
            continue
        if keys[-1] == "label" and ((a["label"] == 0).any() or (b["label"] == 0).any()):
            continue
        if a.duplicated(keys).any() or b.duplicated(keys).any():
            continue
        joined = b[["id", *keys]].merge(a[["id", *keys]], on=keys, suffixes=("_gt", "_pred"))
        if len(joined) == len(b):
            return list(zip(joined["id_gt"].tolist(), joined["id_pred"].tolist(), strict=True))
    return None


_MATCHINGS = ("auto", "identity", "ctc", "point")


def match_tracks(
    pred: Tracks,
    gt: Tracks,
    *,
    pred_masks: np.ndarray | None = None,
    gt_masks: np.ndarray | None = None,
    match_distance: float | None = None,
    matching: str = "auto",
) -> Any:  # -> traccuracy.matchers.Matched
    """Match predicted to ground-truth detections: a traccuracy ``Matched`` whose graphs' node
    ids are the detection ids of ``pred`` and ``gt`` (see :func:`evaluate` for ``matching``)."""
    from traccuracy.matchers import CTCMatcher, Matched, PointMatcher

    if matching not in _MATCHINGS:
        raise InputError(None, f"matching must be one of {_MATCHINGS}, got {matching!r}")
    if pred.detections.ndim != gt.detections.ndim:
        raise InputError(None, "pred and gt differ in their number of spatial dimensions")
    pred = _same_sequence_name(pred, gt)
    offsets = _frame_offsets(pred, gt)
    mapping = _identity_mapping(pred, gt) if matching in ("auto", "identity") else None
    if matching == "identity" and mapping is None:
        raise InputError(None, "pred and gt are not over the same detections")
    has_masks = pred_masks is not None and gt_masks is not None
    if matching == "auto":
        if mapping is not None:
            matching = "identity"
        elif has_masks:
            matching = "ctc"
        elif match_distance is not None:
            matching = "point"
        else:
            raise InputError(
                None,
                "pred and gt are not over the same detections: give both masks (CTC matching) "
                "or a match_distance (point matching)",
            )
    masks: dict[str, np.ndarray | None] = {"gt": None, "pred": None}
    if matching == "ctc":
        if not has_masks:
            raise InputError(None, "CTC matching needs both pred_masks and gt_masks")
        if len(offsets) > 1:
            raise InputError(None, "masks can only be scored for one sequence at a time")
        if pred_masks.shape != gt_masks.shape:
            raise InputError(
                None, f"pred masks {pred_masks.shape} and gt masks {gt_masks.shape} differ"
            )
        # traccuracy reads the masks from the first frame that holds a gt node on
        start = int(gt.detections.times.min()) if len(gt.detections) else 0
        masks = {"gt": np.asarray(gt_masks)[start:], "pred": np.asarray(pred_masks)[start:]}
    if matching == "point" and match_distance is None:
        raise InputError(None, "point matching needs a match_distance")
    gt_graph = _tracking_graph(gt, offsets, masks["gt"], "gt")
    pred_graph = _tracking_graph(pred, offsets, masks["pred"], "pred")
    if matching == "identity":
        info = {"name": "IdentityMatcher", "matching type": "one-to-one"}
        matched = Matched(gt_graph, pred_graph, mapping, info)
    elif matching == "ctc":
        with warnings.catch_warnings():  # traccuracy finds the boxes itself, and says so
            warnings.filterwarnings("ignore", message=".*boxes.* not provided")
            matched = CTCMatcher().compute_mapping(gt_graph, pred_graph)
    else:
        matched = PointMatcher(threshold=match_distance).compute_mapping(gt_graph, pred_graph)
    log.info("matching: %s, %d pairs", matched.matcher_info["name"], len(matched.mapping))
    return matched


def evaluate(
    pred: Tracks,
    gt: Tracks,
    *,
    pred_masks: np.ndarray | None = None,
    gt_masks: np.ndarray | None = None,
    match_distance: float | None = None,
    matching: str = "auto",
    chota: bool = True,
) -> dict[str, float]:
    """Score predicted tracks against ground truth; returns ``{metric: value}`` (see METRICS).

    ``matching="auto"`` picks identity when pred and gt are over the same detections; else the
    CTC matcher when both ``pred_masks`` and ``gt_masks`` are given (``(T, [Z,] Y, X)``, frame
    ``t`` at index ``t``, labels = the detections' ``label``, one sequence); else a point
    matcher within ``match_distance`` pixels. ``"identity"``, ``"ctc"`` or ``"point"`` force
    one. What cannot be matched is an :class:`InputError`.
    """
    matched = match_tracks(
        pred,
        gt,
        pred_masks=pred_masks,
        gt_masks=gt_masks,
        match_distance=match_distance,
        matching=matching,
    )
    return score_matched(matched, chota)


# --------------------------------------------------------------------------------------------
# CTC folders
# --------------------------------------------------------------------------------------------


def _ctc_folder(path: Path, role: str) -> tuple[Path, Path]:
    """The mask folder and track file of a CTC result (``*_RES``) or ground-truth folder."""
    path = Path(path)
    if (path / "TRA").is_dir():
        path = path / "TRA"
    if not path.is_dir():
        raise InputError(path, f"no such {role} folder")
    tracks = sorted(path.glob("*_track.txt"))
    if len(tracks) != 1:
        raise InputError(
            path,
            f"a CTC {role} folder needs exactly one *_track.txt (found {len(tracks)})",
        )
    if not any(path.glob("*.tif")):
        raise InputError(path, f"a CTC {role} folder needs its masks as .tif files")
    return path, tracks[0]


def evaluate_ctc(pred_folder: str | Path, gt_folder: str | Path, chota: bool = True) -> dict:
    """Score a CTC result folder (masks + ``res_track.txt``) against a CTC ground-truth
    folder (``NN_GT``, or its ``TRA``), with traccuracy's CTC loader and matcher."""
    from traccuracy.loaders import load_ctc_data
    from traccuracy.matchers import CTCMatcher

    graphs = []
    for folder, role in ((gt_folder, "ground-truth"), (pred_folder, "result")):
        path, track_file = _ctc_folder(Path(folder), role)
        try:
            graphs.append(load_ctc_data(str(path), str(track_file), name=role))
        except (ValueError, OSError) as err:
            raise InputError(path, f"not a valid CTC {role} folder ({err})") from err
    gt_graph, pred_graph = graphs
    if gt_graph.segmentation.shape != pred_graph.segmentation.shape:
        raise InputError(
            pred_folder,
            f"masks of shape {pred_graph.segmentation.shape} do not match the ground truth "
            f"{gt_graph.segmentation.shape}",
        )
    matched = CTCMatcher().compute_mapping(gt_graph, pred_graph)
    return score_matched(matched, chota)


# --------------------------------------------------------------------------------------------
# Results on disk: CTC folders, geff stores, saved Tracks
# --------------------------------------------------------------------------------------------


def _is_geff(path: Path) -> bool:
    for name, inner in ((".zattrs", None), ("zarr.json", "attributes")):
        attrs = path / name
        if attrs.is_file():
            try:
                raw = json.loads(attrs.read_text(encoding="utf-8"))
            except (ValueError, OSError):
                return False
            return "geff" in (raw.get(inner, {}) if inner else raw)
    return False


def result_kind(path: str | Path) -> str:
    """``"tracks"`` (a saved Tracks folder), ``"geff"`` or ``"ctc"`` (a RES or GT folder)."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "no such folder")
    if (path / "detections.parquet").is_file() and (path / "edges.parquet").is_file():
        return "tracks"
    if _is_geff(path):
        return "geff"
    if any(path.glob("*_track.txt")) or any((path / "TRA").glob("*_track.txt")):
        return "ctc"
    raise InputError(
        path,
        "not a CTC result or ground-truth folder (masks + *_track.txt), a geff store or a "
        "saved Tracks folder (detections.parquet + edges.parquet)",
    )


def load_result(path: str | Path) -> tuple[Tracks, np.ndarray | None]:
    """The tracks of a CTC folder, geff store or saved Tracks folder (see :func:`result_kind`),
    with the label masks of a CTC folder (``None`` for the others)."""
    path = Path(path)
    kind = result_kind(path)
    if kind == "tracks":
        return Tracks.load(path), None
    if kind == "geff":
        from attrackt.io.geff import read_geff

        return read_geff(path), None
    from attrackt.io.ctc import load_ctc

    data = load_ctc(_ctc_folder(path, "tracking")[0], images=False)
    return data.tracks, data.masks


def evaluate_paths(
    pred: str | Path, gt: str | Path, *, match_distance: float | None = None, chota: bool = True
) -> dict[str, float]:
    """Score results on disk: each of ``pred`` and ``gt`` is a CTC folder, a geff store or a
    saved Tracks folder. Two CTC folders go through :func:`evaluate_ctc`, anything else through
    :func:`evaluate` (CTC masks come along for the CTC matcher)."""
    pred, gt = Path(pred), Path(gt)
    kinds = result_kind(pred), result_kind(gt)
    if kinds == ("ctc", "ctc"):
        return evaluate_ctc(pred, gt, chota=chota)
    pred_tracks, pred_masks = load_result(pred)
    gt_tracks, gt_masks = load_result(gt)
    return evaluate(
        pred_tracks,
        gt_tracks,
        pred_masks=pred_masks,
        gt_masks=gt_masks,
        match_distance=match_distance,
        chota=chota,
    )


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:  # a score that is not defined, as read back from JSON
        return "n/a"
    if isinstance(value, (int, np.integer)) or (
        isinstance(value, float) and value.is_integer() and abs(value) < 1e15
    ):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{value:.4f}"
    return str(value)


def format_table(results: Mapping[str, float] | Mapping[str, Mapping[str, float]]) -> str:
    """An aligned text table: one metric per row, one column per named result.

    ``results`` is one result dict, or ``{name: result dict}`` for several side by side.
    """
    if results and all(isinstance(v, Mapping) for v in results.values()):
        columns = {str(k): dict(v) for k, v in results.items()}
    else:
        columns = {"value": dict(results)}
    keys = [k for k in METRICS if any(k in c for c in columns.values())]
    keys += sorted({k for c in columns.values() for k in c} - set(keys))
    rows = [["metric", *columns]]
    rows += [[k, *(_cell(c[k]) if k in c else "" for c in columns.values())] for k in keys]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_json(results: Mapping[str, Any]) -> str:
    """Results (one dict, or named dicts) as JSON text; NaN becomes ``null``."""
    return strict_json(results, indent=2) + "\n"


def parent_accuracy(associations: Any, gt: Tracks) -> dict[str, float]:
    """How often a child's best-scored source one frame earlier is its true parent.

    Taken over the ground-truth links that span one frame; a child without any scored source
    counts as wrong. Also reported for the children of dividing parents alone. A quick score of
    associations before linking (``associations``: an :class:`~attrackt.data.Associations`).
    """
    table = associations.table
    table = table[table["dt"] == 1]
    best = table.sort_values(["target", "score"], ascending=[True, False], kind="stable")
    best = best.drop_duplicates("target").set_index("target")["source"]
    edges = gt.edges
    rows = gt.detections.rows_of(edges.ravel()).reshape(-1, 2)
    one_step = np.diff(gt.detections.times[rows], axis=1)[:, 0] == 1
    edges = edges[one_step]
    chosen = best.reindex(edges[:, 1]).to_numpy()
    correct = chosen == edges[:, 0]
    parents, counts = np.unique(edges[:, 0], return_counts=True)
    dividing = np.isin(edges[:, 0], parents[counts >= 2])
    return {
        "parent_accuracy": float(correct.mean()) if len(correct) else math.nan,
        "division_parent_accuracy": float(correct[dividing].mean()) if dividing.any() else math.nan,
        "links": int(len(correct)),
    }
