"""The solver's lineage around a cell, with no Qt and no napari in it: the table of ancestors
and descendants that the lineage tree draws (:mod:`attrackt.napari._lineage`) and the tracks
it spans. :class:`~attrackt.napari.session.ProofreadSession` calls these."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from attrackt.data import Tracks
from attrackt.napari.cells import LIKELY_WRONG, Cell

__all__ = ["LINEAGE_COLUMNS", "Links", "lineage_table", "solver_links", "tracks_of_lineage"]

#: the solver's parent of each child, children of each parent, and the frame of each detection
Links = tuple[dict[int, int], dict[int, list[int]], dict[int, int]]
LINEAGE_COLUMNS = ["id", "t", "parent", "lane", "score", "answered", "suspect"]


def solver_links(tracks: Tracks) -> Links:
    """The solver's parent of each child, children of each parent, and the frame of each
    detection of ``tracks``."""
    det = tracks.detections
    times = dict(zip(det.ids.tolist(), det.times.tolist(), strict=True))
    return tracks.parents, tracks.children(), times


def lineage_table(
    cell: Cell,
    links: Links,
    scores: pd.Series,
    answered: Collection[int],
    confident: bool,
    frames: int = 15,
) -> pd.DataFrame:
    """The lineage of ``cell`` in the solver's ``links`` within ``frames`` frames of it: its
    ancestors and every descendant of the oldest, one row per detection with
    :data:`LINEAGE_COLUMNS`: ``id``, ``t``, ``parent`` (-1: none shown), ``lane`` (branches side
    by side, for a tree drawing), ``score`` (from ``scores`` by id; ``NaN`` where not ranked:
    last frame), ``answered`` (in ``answered``) and ``suspect`` (a score of
    :data:`~attrackt.napari.cells.LIKELY_WRONG` or more, unanswered; only when ``confident``:
    the confidence ranking)."""
    parents, children, times = links
    first, last = cell.t - frames, cell.t + frames
    root = cell.id
    while root in parents and times[parents[root]] >= first:
        root = parents[root]
    rows: list[tuple[int, int, int, int]] = []
    lanes = [0]

    def walk(node: int, parent: int) -> int:
        kids = [k for k in children.get(node, []) if times[k] <= last]
        lane = lanes[0]
        if kids:
            lane = walk(kids[0], node)
            for kid in kids[1:]:
                lanes[0] += 1
                walk(kid, node)
        rows.append((node, times[node], parent, lane))
        return lane

    walk(root, -1)  # as deep as the frames shown (each level is a later frame)
    out = pd.DataFrame(rows, columns=["id", "t", "parent", "lane"]).sort_values(["lane", "t"])
    out["score"] = [float(scores.get(i, np.nan)) for i in out["id"]]
    out["answered"] = out["id"].isin(list(answered))
    out["suspect"] = confident & (out["score"] >= LIKELY_WRONG) & ~out["answered"]
    return out.reset_index(drop=True)[LINEAGE_COLUMNS]


def tracks_of_lineage(tracks: Tracks, lineage: pd.DataFrame) -> Tracks:
    """``tracks`` restricted to the detections of a :func:`lineage_table`."""
    ids = lineage["id"].to_numpy(np.int64)
    rows = np.sort(tracks.detections.rows_of(ids))
    edges = lineage.loc[lineage["parent"] >= 0, ["parent", "id"]].to_numpy(np.int64)
    return Tracks(tracks.detections.take(rows), edges.reshape(-1, 2))
