"""Figures: tracking errors over the image, lineage trees, learning and active-learning curves.

Every ``plot_*`` function draws into ``ax`` (a new figure when ``None``), returns the
:class:`matplotlib.figure.Figure` and, with ``out``, also writes it (PNG, or any format
matplotlib knows from the suffix) atomically. Figures are made without ``pyplot``, so no window
opens and the caller's matplotlib backend is left alone.

Tracking errors come from the same matching as :func:`attrackt.evaluate.evaluate`: the graphs
that traccuracy annotates with its CTC edge flags and division flags are read back here, so the
counts on a figure are the counts ``evaluate`` reports.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attrackt.data import Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

log = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------------------------
# Figures and files
# --------------------------------------------------------------------------------------------


def _figure_and_axes(ax: Any, size: tuple[float, float]) -> tuple[Figure, Any]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically (the format follows the suffix, e.g. ``.png``)."""
    path = Path(path)
    if not path.suffix:
        raise InputError(path, "give the figure file a suffix such as .png, .pdf or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    log.info("wrote %s", path)
    return path


def _finish(fig: Figure, out: str | Path | None) -> Figure:
    if out is not None:
        save_figure(fig, out)
    return fig


# --------------------------------------------------------------------------------------------
# Tracking errors
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Lineage trees
# --------------------------------------------------------------------------------------------


def lineage_layout(
    tracks: Tracks, roots: Sequence[int] | None = None, max_trees: int | None = None
) -> pd.DataFrame:
    """Where each tracklet goes in a lineage plot: leaf order, left to right.

    Returns the table of :meth:`Tracks.tracklets` (``label, start, end, parent``) plus ``root``
    (the label of the lineage's first tracklet) and ``x``: leaves take consecutive positions in
    depth-first order, a mother sits midway between her first and last daughter, and lineages
    are one position apart, so their x ranges never overlap. Lineages are ordered by their
    first frame. ``roots`` keeps only the lineages holding these detection ids, ``max_trees``
    only the (chosen) lineages with the most detections.
    """
    return _layout(tracks, roots, max_trees)[1]


def _layout(
    tracks: Tracks, roots: Sequence[int] | None, max_trees: int | None
) -> tuple[np.ndarray, pd.DataFrame]:
    """The tracklet label of each detection row, and :func:`lineage_layout`'s table."""
    row_labels, table = tracks.tracklets()
    n = len(table)
    parent = table["parent"].to_numpy(np.int64)  # labels are 1..n in order of start frame
    root = np.arange(1, n + 1)
    for i in range(n):  # a mother starts before her daughters: her label is smaller
        if parent[i]:
            root[i] = root[parent[i] - 1]
    table = table.assign(root=root)
    root_of_row = root[row_labels - 1]
    chosen = np.unique(root)
    if roots is not None:
        ids = np.asarray(roots, np.int64)
        known = tracks.detections.has_ids(ids)
        if not known.all():
            raise InputError("roots", f"unknown detection id(s) {ids[~known][:5].tolist()}")
        chosen = np.unique(root_of_row[tracks.detections.rows_of(ids)])
    if max_trees is not None:
        if max_trees < 1:
            raise InputError("max_trees", f"must be >= 1, got {max_trees}")
        sizes = np.bincount(root_of_row, minlength=n + 1)[chosen]
        chosen = np.sort(chosen[np.argsort(-sizes, kind="stable")[:max_trees]])
    table = table[np.isin(table["root"], chosen)]
    daughters: dict[int, list[int]] = {}
    for label, mother in zip(table["label"].tolist(), table["parent"].tolist(), strict=True):
        if mother:
            daughters.setdefault(mother, []).append(label)
    x: dict[int, float] = {}
    cursor = 0.0
    for start in table.loc[table["parent"] == 0, "label"].tolist():
        stack = [(start, False)]
        while stack:  # iterative post-order: daughters before their mother
            label, done = stack.pop()
            kids = daughters.get(label, [])
            if not kids:
                x[label] = cursor
                cursor += 1
            elif done:
                x[label] = (x[kids[0]] + x[kids[-1]]) / 2
            else:
                stack.append((label, True))
                stack.extend((k, False) for k in reversed(kids))
        cursor += 1  # a free column between lineages
    layout = table.assign(x=table["label"].map(x).to_numpy(float)).reset_index(drop=True)
    return row_labels, layout


def _node_places(tracks: Tracks, row_labels: np.ndarray, layout: pd.DataFrame) -> pd.DataFrame:
    """``x, t`` of each plotted detection (indexed by id)."""
    x = pd.Series(layout["x"].to_numpy(), index=layout["label"].to_numpy())
    placed = np.isin(row_labels, layout["label"].to_numpy())
    det = tracks.detections
    return pd.DataFrame(
        {"x": x.loc[row_labels[placed]].to_numpy(), "t": det.times[placed].astype(float)},
        index=det.ids[placed],
    )


def plot_lineage(
    tracks: Tracks,
    *,
    errors: ErrorSet | None = None,
    side: Literal["pred", "gt"] | None = None,
    roots: Sequence[int] | None = None,
    max_trees: int | None = None,
    ax: Any = None,
    out: str | Path | None = None,
) -> Figure:
    """Lineage trees: time downwards, each tracklet a vertical segment, each division a
    horizontal connector from the mother's last frame to her daughters' columns.

    ``roots`` (detection ids) picks lineages; ``max_trees`` keeps the lineages with the most
    detections. With ``errors`` (from :func:`track_errors`), the links of ``tracks`` that are
    errors are drawn in their class colour along the tree, the other side's links that these
    tracks lack are drawn dashed and straight (on pred: the gt links it misses; on gt: pred's
    false positives), and division errors are marked. ``side`` says whether ``tracks`` is the
    ``"pred"`` or ``"gt"`` of ``errors`` (default: ``"gt"`` when it is ``errors.gt``, else
    ``"pred"``).
    """
    row_labels, layout = _layout(tracks, roots, max_trees)
    places = _node_places(tracks, row_labels, layout)

    segments = np.stack(
        [
            np.stack([layout["x"], layout["start"]], axis=1),
            np.stack([layout["x"], layout["end"]], axis=1),
        ],
        axis=1,
    ).astype(float)
    child = layout[layout["parent"] > 0]
    mother = layout.set_index("label").loc[child["parent"]]
    mx, mend = mother["x"].to_numpy(float), mother["end"].to_numpy(float)
    cx, cstart = child["x"].to_numpy(float), child["start"].to_numpy(float)
    connectors = np.stack(
        [np.stack([mx, mend], 1), np.stack([cx, mend], 1), np.stack([cx, cstart], 1)], axis=1
    ).reshape(-1, 3, 2)

    width = float(np.clip(0.08 * (layout["x"].max() + 1 if len(layout) else 1), 6, 40))
    fig, ax = _figure_and_axes(ax, (width, 6))
    ax.add_collection(
        LineCollection(segments, colors="0.3", linewidths=1.2, capstyle="round", gid="tracklets")
    )
    ax.add_collection(LineCollection(connectors, colors="0.3", linewidths=0.8, gid="divisions"))
    handles = []
    if errors is not None:
        handles = _draw_errors(ax, tracks, errors, side, places)
    ax.autoscale_view()
    ax.invert_yaxis()
    ax.set_ylabel("frame")
    ax.set_xticks([])
    ax.set_xlabel(f"{layout['root'].nunique()} lineages, {len(layout)} tracklets")
    if handles:
        ax.legend(handles=handles, loc="lower right", fontsize="small", framealpha=0.8)
    return _finish(fig, out)


def _draw_errors(
    ax: Any, tracks: Tracks, errors: ErrorSet, side: str | None, places: pd.DataFrame
) -> list[Line2D]:
    """Error links and divisions of ``errors`` on a lineage plot of ``tracks``; legend handles."""
    if side is None:
        side = "gt" if tracks is errors.gt else "pred"
    if side not in ("pred", "gt"):
        raise InputError("side", f"must be 'pred' or 'gt', got {side!r}")
    own = ("fn",) if side == "gt" else ("fp", "ws", "unmatched")
    other = ("fp", "ws") if side == "gt" else ("fn",)
    if not np.array_equal(tracks.edges, getattr(errors, side).edges):
        raise InputError("errors", f"were computed on other tracks than these (as {side})")
    matched = errors.mapping.tolist()  # (gt, pred): the other side's id -> this side's id
    to_side = {p: g for g, p in matched} if side == "gt" else dict(matched)
    handles = []
    for kind in own + other:
        pairs = errors.edges_of(kind)
        if kind in other:
            pairs = np.array(
                [[to_side.get(a, -1), to_side.get(b, -1)] for a, b in pairs.tolist()], np.int64
            ).reshape(-1, 2)
        pairs = pairs[np.isin(pairs, places.index.to_numpy()).all(axis=1)]
        if not len(pairs):
            continue
        a = places.loc[pairs[:, 0]].to_numpy(float)
        b = places.loc[pairs[:, 1]].to_numpy(float)
        colour, style, _, text = _EDGE_STYLE[kind]
        width = 2.0
        if kind in own or kind == "ws":  # a link of the tree: down, across, down
            lines = np.stack([a, np.stack([b[:, 0], a[:, 1]], 1), b], axis=1)
        else:  # a link this side lacks: straight across
            lines = np.stack([a, b], axis=1)
            style, width = "dashed", 1.2
            text = ("links gt lacks" if side == "gt" else "links missed") + f" ({kind.upper()})"
        ax.add_collection(
            LineCollection(lines, colors=colour, linestyles=style, linewidths=width, gid=kind)
        )
        handles.append(
            Line2D([], [], color=colour, ls=style, lw=width, label=f"{text} ({len(pairs)})")
        )
    for kind, (colour, marker, text) in _DIVISION_STYLE.items():
        ids = errors.divisions.loc[errors.divisions["kind"] == kind, side].to_numpy(np.int64)
        ids = ids[np.isin(ids, places.index.to_numpy())]
        if not len(ids):
            continue
        xt = places.loc[ids].to_numpy(float)
        ax.scatter(xt[:, 0], xt[:, 1], s=40, c=colour, marker=marker, zorder=4, gid=f"{kind}_div")
        handles.append(
            Line2D([], [], color=colour, marker=marker, ls="none", label=f"{text} ({len(ids)})")
        )
    return handles


# --------------------------------------------------------------------------------------------
# Learning curves
# --------------------------------------------------------------------------------------------


def read_training_log(path: str | Path) -> list[dict[str, float]]:
    """The records of a training ``log.jsonl`` (or of the ``log.jsonl`` in a training folder)."""
    from attrackt.train import LOG, _read_log

    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise InputError(path, "no such training log")
    records = _read_log(path, up_to_step=math.inf)
    if not records:
        raise InputError(path, "holds no training records")
    return records


def _ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average starting at the first value."""
    from scipy.signal import lfilter

    zi = [smoothing * values[0]]
    return lfilter([1 - smoothing], [1, -smoothing], values, zi=zi)[0]


def plot_learning_curves(
    logs: Mapping[str, str | Path | Sequence[Mapping[str, float]]],
    keys: Sequence[str] = ("loss",),
    *,
    smoothing: float = 0.0,
    log_y: bool = False,
    ax: Any = None,
    out: str | Path | None = None,
) -> Figure:
    """Loss (or any logged value) against the training step, one line per run and key.

    ``logs`` maps a run name to its ``log.jsonl`` (or training folder) or to its records, as
    :func:`attrackt.train.fit` writes them. A key a run does not log is left out (with a log
    message); none at all is an :class:`InputError`. ``smoothing`` in [0, 1) draws an
    exponential moving average over the faded raw curve.
    """
    if not 0 <= smoothing < 1:
        raise InputError("smoothing", f"must lie in [0, 1), got {smoothing}")
    fig, ax = _figure_and_axes(ax, (7, 4.5))
    drawn = 0
    for name, source in logs.items():
        records = read_training_log(source) if isinstance(source, (str, Path)) else list(source)
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
            if not points:
                log.info("%s logs no %r", name, key)
                continue
            steps, values = np.asarray(points, float).T
            label = key if len(logs) == 1 else f"{name}: {key}"
            marker = "o" if len(points) < 30 else None
            if smoothing:
                (raw,) = ax.plot(steps, values, alpha=0.3, lw=0.8)
                ax.plot(steps, _ema(values, smoothing), color=raw.get_color(), label=label)
            else:
                ax.plot(steps, values, marker=marker, ms=3, label=label)
            drawn += 1
    if not drawn:
        raise InputError(", ".join(map(str, logs)), f"no run logs any of {list(keys)}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(keys[0] if len(keys) == 1 else "value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, out)


def plot_budget_curves(
    results: Mapping[str, Mapping[Any, float | Mapping[str, float]]],
    metric: str = "AOGM",
    reference: Mapping[str, float] | None = None,
    *,
    ax: Any = None,
    out: str | Path | None = None,
) -> Figure:
    """A metric against the number of proof-read cells, one line per active-learning strategy.

    ``results`` is ``{strategy: {budget: value}}`` (budgets may be JSON strings; a value may be
    a dict of metrics, of which ``metric`` is drawn). The x axis is logarithmic (linear below
    1 when a budget is 0). ``reference`` draws horizontal lines, e.g. ``{"supervised": 12.0}``.
    """
    fig, ax = _figure_and_axes(ax, (6.5, 4.5))
    smallest = math.inf
    for strategy, by_budget in results.items():
        points = []
        for budget, value in by_budget.items():
            try:
                b = float(budget)
            except ValueError as err:
                raise InputError(strategy, f"budget {budget!r} is not a number") from err
            v = value[metric] if isinstance(value, Mapping) else value
            points.append((b, math.nan if v is None else float(v)))
        if not points:
            continue
        x, y = np.asarray(sorted(points), float).T
        smallest = min(smallest, x.min())
        ax.plot(x, y, marker="o", ms=4, label=strategy)
    for i, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color=f"C{len(results) + i}", ls="--", lw=1, label=name)
    if smallest <= 0:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=smallest)
    elif math.isfinite(smallest):
        ax.set_xscale("log")
    ax.set_xlabel("proof-read cells")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return _finish(fig, out)
