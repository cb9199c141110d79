"""Lineage trees: each tracklet a vertical segment in time, each division a connector, and
optionally the tracking errors drawn along the tree."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attrackt.data import Tracks
from attrackt.errors import InputError
from attrackt.plots.errors import _DIVISION_STYLE, _EDGE_STYLE, ErrorSet
from attrackt.plots.figures import _figure_and_axes, _finish


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
