"""Tracks: a lineage graph over detections."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.data._files import read_parquet, write_parquet
from attrackt.data.detections import Detections
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path


@dataclass
class Tracks:
    """A lineage graph over detections: ``edges`` is an ``(E, 2)`` array of parent -> child ids.

    A detection has at most one parent; two children mark a division. Edges may skip frames.
    """

    detections: Detections
    edges: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.int64))

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        if len(edges):
            known = self.detections.has_ids(edges.ravel()).reshape(-1, 2)
            if not known.all():
                bad = edges[~known.all(axis=1)][0]
                raise InputError(None, f"edge {bad.tolist()} refers to an unknown detection")
            rows = self.detections.rows_of(edges.ravel()).reshape(-1, 2)
            t = self.detections.times[rows]
            if (t[:, 1] <= t[:, 0]).any():
                bad = edges[t[:, 1] <= t[:, 0]][0]
                raise InputError(None, f"edge {bad.tolist()} does not go forward in time")
            counts = np.bincount(rows[:, 1], minlength=len(self.detections))
            if (counts > 1).any():
                child = self.detections.ids[np.argmax(counts)]
                raise InputError(None, f"detection {child} has more than one parent")
            edges = np.unique(edges, axis=0)
        self.edges = edges

    # ---- structure -------------------------------------------------------------------------
    @property
    def parents(self) -> dict[int, int]:
        """child id -> parent id."""
        return dict(zip(self.edges[:, 1].tolist(), self.edges[:, 0].tolist(), strict=True))

    def children(self) -> dict[int, list[int]]:
        """parent id -> list of child ids (only detections that have children)."""
        out: dict[int, list[int]] = {}
        for p, c in self.edges.tolist():
            out.setdefault(p, []).append(c)
        return out

    def out_degree(self) -> np.ndarray:
        """Number of children of each detection, aligned with ``detections`` rows."""
        rows = self.detections.rows_of(self.edges[:, 0])
        return np.bincount(rows, minlength=len(self.detections))

    def in_degree(self) -> np.ndarray:
        """Number of parents (0 or 1) of each detection, aligned with ``detections`` rows."""
        rows = self.detections.rows_of(self.edges[:, 1])
        return np.bincount(rows, minlength=len(self.detections))

    def divisions(self) -> np.ndarray:
        """Ids of detections with two or more children."""
        return self.detections.ids[self.out_degree() >= 2]

    def tracklets(self) -> tuple[np.ndarray, pd.DataFrame]:
        """Split the graph into CTC tracks (chains between divisions, starts, ends and gaps).

        A CTC track has one detection in each frame of its span, so an edge that skips frames
        starts a new track whose parent is the track before the gap.

        Returns a track label (1, 2, ...) per detection row, and a table with the CTC columns
        ``label, start, end, parent`` (parent 0 where a track has no parent track).
        """
        det = self.detections
        n = len(det)
        rows_p = det.rows_of(self.edges[:, 0])
        rows_c = det.rows_of(self.edges[:, 1])
        outdeg = np.bincount(rows_p, minlength=n)
        t = det.times
        parent_row = np.full(n, -1, np.int64)
        parent_row[rows_c] = rows_p
        # a detection continues its parent's track when it is the parent's only child, next frame
        single = (outdeg[rows_p] == 1) & (t[rows_c] - t[rows_p] == 1)
        continues = np.zeros(n, bool)
        continues[rows_c[single]] = True
        label = np.zeros(n, np.int64)
        starts = np.flatnonzero(~continues)
        order = np.lexsort((det.ids[starts], det.times[starts]))
        starts = starts[order]
        label[starts] = np.arange(1, len(starts) + 1)
        only_child = np.full(n, -1, np.int64)
        only_child[rows_p[single]] = rows_c[single]
        for start in starts:  # follow each chain; total work is O(n)
            r = start
            while only_child[r] >= 0:
                r = only_child[r]
                label[r] = label[start]
        frame = pd.DataFrame({"label": label, "t": t})
        spans = frame.groupby("label")["t"].agg(["min", "max"])
        parent_track = np.zeros(len(starts), np.int64)
        sp = parent_row[starts]
        parent_track[sp >= 0] = label[sp[sp >= 0]]
        table = pd.DataFrame(
            {
                "label": np.arange(1, len(starts) + 1),
                "start": spans.loc[np.arange(1, len(starts) + 1), "min"].to_numpy(),
                "end": spans.loc[np.arange(1, len(starts) + 1), "max"].to_numpy(),
                "parent": parent_track,
            }
        )
        return label, table

    def by_sequence(self) -> Iterator[tuple[str, Tracks]]:
        """Iterate ``(name, tracks)`` per sequence (links never join two sequences)."""
        for name, detections in self.detections.by_sequence():
            inside = np.isin(self.edges[:, 1], detections.ids)
            yield name, Tracks(detections, self.edges[inside])

    def to_networkx(self):  # -> nx.DiGraph
        """A ``networkx.DiGraph`` with node attributes ``t``, ``[z,] y, x``, ``label``, ..."""
        import networkx as nx

        graph = nx.DiGraph()
        table = self.detections.table
        records = table.to_dict("records")
        graph.add_nodes_from((int(r["id"]), r) for r in records)
        graph.add_edges_from(map(tuple, self.edges.tolist()))
        return graph

    @classmethod
    def from_networkx(cls, graph, sequence: str = "") -> Tracks:
        """Inverse of :meth:`to_networkx` (nodes need ``t``, ``y``, ``x`` [, ``z``])."""
        records = [{"id": n, **attrs} for n, attrs in graph.nodes(data=True)]
        table = pd.DataFrame.from_records(records)
        if "sequence" not in table.columns:
            table["sequence"] = sequence
        return cls(Detections(table), np.asarray(list(graph.edges()), np.int64).reshape(-1, 2))

    # ---- disk ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a folder with ``detections.parquet`` and ``edges.parquet`` (atomically)."""
        import pyarrow as pa

        with atomic_path(path) as tmp:
            tmp.mkdir()
            self.detections.save(tmp / "detections.parquet")
            edges = pa.table({"parent": self.edges[:, 0], "child": self.edges[:, 1]})
            write_parquet(tmp / "edges.parquet", edges, {"kind": "edges"})

    @classmethod
    def load(cls, path: str | Path) -> Tracks:
        """Read a folder written by :meth:`save`."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(
                path, "not a tracks folder (expected detections.parquet + edges.parquet)"
            )
        det = Detections.load(path / "detections.parquet")
        edges, meta = read_parquet(path / "edges.parquet")
        if meta.get("kind") != "edges":
            raise InputError(path / "edges.parquet", "not an attrackt edges file")
        arr = np.stack([edges.column("parent").to_numpy(), edges.column("child").to_numpy()], 1)
        try:
            return cls(det, arr)
        except InputError as err:
            raise InputError(path, err.problem) from err

    def equals(self, other: Tracks) -> bool:
        return self.detections.equals(other.detections) and np.array_equal(self.edges, other.edges)
