"""Tracking errors: every link and division of a result classified against the ground truth,
and drawn over the image.

The classes come from the same matching as :func:`attrackt.evaluate.evaluate`: the graphs
that traccuracy annotates with its CTC edge flags and division flags are read back here, so the
counts on a figure are the counts ``evaluate`` reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attrackt.data import Tracks
from attrackt.errors import InputError
from attrackt.plots.figures import _figure_and_axes, _finish

#: edge classes: links of pred (``tp``, ``fp``, ``ws`` = right link with the wrong division
#: semantics, ``unmatched`` = touching a pred detection without a one-to-one match) and
#: links of gt that pred misses (``fn``)
EDGE_KINDS = ("tp", "fp", "ws", "unmatched", "fn")
#: division classes (traccuracy's, frame buffer 0): ``tp``, ``fp`` (spurious), ``fn`` (missed),
#: ``wc`` (wrong children)
DIVISION_KINDS = ("tp", "fp", "fn", "wc")

_EDGE_STYLE = {  # colour, line style, width, legend text
    "tp": ("0.55", "solid", 0.8, "true positive links"),
    "fp": ("tab:red", "solid", 1.6, "false positive links"),
    "ws": ("tab:orange", "solid", 1.6, "links with wrong division semantics"),
    "unmatched": ("tab:purple", "dotted", 1.2, "links of unmatched detections"),
    "fn": ("tab:blue", "dashed", 1.6, "false negative links"),
}
_DIVISION_STYLE = {  # colour, marker, legend text
    "fp": ("tab:red", "^", "spurious divisions"),
    "fn": ("tab:blue", "v", "missed divisions"),
    "wc": ("tab:orange", "D", "divisions with wrong children"),
}


@dataclass
class ErrorSet:
    """The links and divisions of ``pred`` and ``gt``, each classified against the other.

    ``edges`` has the columns ``source, target, kind`` (see :data:`EDGE_KINDS`): ids of pred
    detections for every kind but ``fn``, whose ids are gt detections. ``divisions`` has
    ``kind, pred, gt``: the mother's id on each side (-1 where that side has no match).
    ``mapping`` is the ``(M, 2)`` array of matched ``(gt id, pred id)`` pairs and ``metrics``
    the scores of :func:`attrackt.evaluate.evaluate` (without CHOTA).
    """

    pred: Tracks
    gt: Tracks
    edges: pd.DataFrame
    divisions: pd.DataFrame
    mapping: np.ndarray
    metrics: dict[str, float]

    def edges_of(self, kind: str) -> np.ndarray:
        """The ``(E, 2)`` links of one class."""
        if kind not in EDGE_KINDS:
            raise InputError(None, f"edge kind must be one of {EDGE_KINDS}, got {kind!r}")
        rows = self.edges[self.edges["kind"] == kind]
        return rows[["source", "target"]].to_numpy(np.int64).reshape(-1, 2)

    def counts(self) -> dict[str, int]:
        """``{kind}_edges`` and ``{kind}_divisions`` counts (names as in ``evaluate``)."""
        edges = self.edges["kind"].value_counts()
        divisions = self.divisions["kind"].value_counts()
        out = {f"{k}_edges": int(edges.get(k, 0)) for k in EDGE_KINDS}
        out.update({f"{k}_divisions": int(divisions.get(k, 0)) for k in DIVISION_KINDS})
        return out


def _flagged(pairs: np.ndarray, flagged: set) -> np.ndarray:
    """Which rows of an ``(E, 2)`` id array are in a set of flagged edges."""
    return np.fromiter((tuple(p) in flagged for p in pairs.tolist()), bool, len(pairs))


def track_errors(
    pred: Tracks,
    gt: Tracks,
    *,
    pred_masks: np.ndarray | None = None,
    gt_masks: np.ndarray | None = None,
    match_distance: float | None = None,
    matching: str = "auto",
) -> ErrorSet:
    """Classify every link and division of ``pred`` and ``gt`` (see :class:`ErrorSet`).

    The matching is :func:`attrackt.evaluate.match_tracks` with the same arguments as
    :func:`attrackt.evaluate.evaluate`; the classes are traccuracy's CTC edge flags
    (false positive, false negative, wrong semantics) and division flags.
    """
    from traccuracy import EdgeFlag, NodeFlag

    from attrackt.evaluate import match_tracks, score_matched

    matched = match_tracks(
        pred,
        gt,
        pred_masks=pred_masks,
        gt_masks=gt_masks,
        match_distance=match_distance,
        matching=matching,
    )
    metrics = score_matched(matched, chota=False)
    pg, gg = matched.pred_graph, matched.gt_graph

    kind = np.full(len(pred.edges), "tp", dtype=object)
    tp_nodes = pg.get_nodes_with_flag(NodeFlag.CTC_TRUE_POS)
    matched_ends = np.isin(pred.edges, np.fromiter(tp_nodes, np.int64, len(tp_nodes)))
    kind[~matched_ends.all(axis=1)] = "unmatched"
    kind[_flagged(pred.edges, pg.get_edges_with_flag(EdgeFlag.CTC_FALSE_POS))] = "fp"
    kind[_flagged(pred.edges, pg.get_edges_with_flag(EdgeFlag.WRONG_SEMANTIC))] = "ws"
    fn = gt.edges[_flagged(gt.edges, gg.get_edges_with_flag(EdgeFlag.CTC_FALSE_NEG))]
    edges = pd.DataFrame(
        {
            "source": np.concatenate([pred.edges[:, 0], fn[:, 0]]),
            "target": np.concatenate([pred.edges[:, 1], fn[:, 1]]),
            "kind": np.concatenate([kind, np.full(len(fn), "fn", dtype=object)]),
        }
    )

    def only(ids: list | None) -> int:
        return int(ids[0]) if ids and len(ids) == 1 else -1

    rows = []
    for name, flag in (("tp", NodeFlag.TP_DIV), ("wc", NodeFlag.WC_DIV), ("fp", NodeFlag.FP_DIV)):
        for node in sorted(pg.get_nodes_with_flag(flag)):
            rows.append((name, int(node), only(matched.pred_gt_map.get(node))))
    for node in sorted(gg.get_nodes_with_flag(NodeFlag.FN_DIV)):
        rows.append(("fn", only(matched.gt_pred_map.get(node)), int(node)))
    divisions = pd.DataFrame(rows, columns=["kind", "pred", "gt"]).astype(
        {"pred": np.int64, "gt": np.int64}
    )
    mapping = np.asarray(matched.mapping, dtype=np.int64).reshape(-1, 2)
    return ErrorSet(pred, gt, edges, divisions, mapping, metrics)


def _projected(tracks: Tracks) -> pd.DataFrame:
    """``t, y, x, sequence`` indexed by detection id (3D positions drop ``z``)."""
    table = tracks.detections.table
    return table.set_index("id")[["t", "y", "x", "sequence"]]


def _segments(nodes: pd.DataFrame, pairs: np.ndarray) -> np.ndarray:
    """``(E, 2, 2)`` line segments ``[(x, y) of source, (x, y) of target]``."""
    a = nodes.loc[pairs[:, 0], ["x", "y"]].to_numpy(float)
    b = nodes.loc[pairs[:, 1], ["x", "y"]].to_numpy(float)
    return np.stack([a, b], axis=1).reshape(-1, 2, 2)


def _keep(nodes: pd.DataFrame, pairs: np.ndarray, frames, sequence: str | None) -> np.ndarray:
    keep = np.ones(len(pairs), bool)
    for end in (0, 1):
        rows = nodes.loc[pairs[:, end]]
        if frames is not None:
            t = rows["t"].to_numpy()
            keep &= (t >= frames[0]) & (t <= frames[1])
        if sequence is not None:
            keep &= rows["sequence"].to_numpy() == sequence
    return keep


def _image_2d(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] not in (3, 4):
        image = image.max(axis=0)  # (Z, Y, X): project along z
    if image.ndim not in (2, 3):
        raise InputError(
            "image", f"expected (Y, X), (Z, Y, X) or an RGB(A) image, got shape {image.shape}"
        )
    return image


def plot_track_errors(
    pred: Tracks,
    gt: Tracks,
    *,
    image: np.ndarray | None = None,
    frames: tuple[int, int] | None = None,
    sequence: str | None = None,
    errors: ErrorSet | None = None,
    ax: Any = None,
    out: str | Path | None = None,
    **matching: Any,
) -> Figure:
    """The links of ``pred`` and ``gt`` in the image plane, coloured by their error class.

    A ``(y, x)`` projection (``z`` dropped in 3D): true positive links grey, false positives red,
    false negatives (gt links pred misses) blue dashed, wrong semantics orange, links of
    unmatched detections purple; missed / spurious / wrong-children divisions as markers. The
    legend counts what is drawn. ``image`` is drawn underneath: a frame or a projection,
    ``(Y, X)``, ``(Z, Y, X)`` (max over z) or RGB. ``frames=(first, last)`` keeps links with
    both ends in those frames; ``sequence`` picks one sequence when there are several.
    ``errors`` (from :func:`track_errors` on the same tracks) saves matching again; otherwise
    ``matching`` keywords (``pred_masks``, ``gt_masks``, ``match_distance``, ``matching``) go
    to :func:`track_errors`.
    """
    if errors is None:
        errors = track_errors(pred, gt, **matching)
    elif matching:
        raise InputError(None, f"give either errors or matching keywords {sorted(matching)}")
    elif not (
        np.array_equal(errors.pred.edges, pred.edges) and np.array_equal(errors.gt.edges, gt.edges)
    ):
        raise InputError("errors", "were computed on other tracks than pred and gt")
    p_nodes, g_nodes = _projected(pred), _projected(gt)
    for nodes, side in ((p_nodes, "pred"), (g_nodes, "gt")):
        names = sorted(set(nodes["sequence"]))
        if sequence is None and len(names) > 1:
            raise InputError(side, f"holds several sequences {names}: pick one with sequence=")
        if sequence is not None and sequence not in names:
            raise InputError(side, f"has no sequence {sequence!r} (it has {names})")

    fig, ax = _figure_and_axes(ax, (8, 8))
    if image is not None:
        ax.imshow(_image_2d(image), cmap="gray", interpolation="nearest")
    handles = []
    for kind in EDGE_KINDS:
        nodes = g_nodes if kind == "fn" else p_nodes
        pairs = errors.edges_of(kind)
        pairs = pairs[_keep(nodes, pairs, frames, sequence)]
        colour, style, width, text = _EDGE_STYLE[kind]
        lines = LineCollection(
            _segments(nodes, pairs),
            colors=colour,
            linestyles=style,
            linewidths=width,
            gid=kind,
            zorder=2 if kind == "tp" else 3,
        )
        ax.add_collection(lines)
        if len(pairs) or kind in ("tp", "fp", "fn"):
            handles.append(
                Line2D([], [], color=colour, ls=style, lw=width, label=f"{text} ({len(pairs)})")
            )
    for kind, (colour, marker, text) in _DIVISION_STYLE.items():
        side = "gt" if kind == "fn" else "pred"
        nodes = g_nodes if side == "gt" else p_nodes
        ids = errors.divisions.loc[errors.divisions["kind"] == kind, side].to_numpy(np.int64)
        ids = ids[_keep(nodes, np.stack([ids, ids], axis=1), frames, sequence)]
        if not len(ids):
            continue
        xy = nodes.loc[ids, ["x", "y"]].to_numpy(float)
        ax.scatter(xy[:, 0], xy[:, 1], s=40, c=colour, marker=marker, zorder=4, gid=f"{kind}_div")
        handles.append(
            Line2D([], [], color=colour, marker=marker, ls="none", label=f"{text} ({len(ids)})")
        )
    if image is None:
        ax.autoscale_view()
        ax.set_aspect("equal")
        ax.invert_yaxis()  # image convention: y grows downwards
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    m = errors.metrics
    ax.set_title(
        f"AOGM {m.get('AOGM', math.nan):g}: {int(m.get('fp_edges', 0))} FP, "
        f"{int(m.get('fn_edges', 0))} FN, {int(m.get('ws_edges', 0))} WS links"
    )
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)
    return _finish(fig, out)
