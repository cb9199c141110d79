"""The candidate graph: k nearest neighbours backwards in time plus division hyper-edges.

Everything is a numpy array (no graph library in the hot path), so that a million detections
take seconds. Node rows follow the rows of the :class:`~attrackt.data.Detections` table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link.config import LinkConfig
from attrackt.voxels import check_voxel_size

logger = logging.getLogger(__name__)


@dataclass
class CandidateGraph:
    """Candidate links between detections, as arrays.

    Node arrays are aligned with the detections' rows. ``edge_rows`` holds (parent, child) rows,
    ``hyper_rows`` (parent, child 1, child 2) rows, ``hyper_edges`` the indices of the two
    regular edges parent -> child 1 and parent -> child 2 of each hyper-edge. Features:
    ``*_distance`` (in scaled units) and ``*_association`` (``None`` without associations).
    ``informed`` marks the sequences (by code) that associations cover; the others link on
    position alone (every sequence without associations, ``None``). ``diameter``: each
    detection's equivalent diameter (of a disc or ball of its ``area``; ``None`` without an
    ``area`` column).
    """

    ids: np.ndarray  # (N,) int64
    t: np.ndarray  # (N,) int64
    sequence: np.ndarray  # (N,) int64 code into ``sequence_names``
    sequence_names: list[str]
    positions: np.ndarray  # (N, D) float64, scaled by ``scale``
    scale: np.ndarray  # (D,) float64
    edge_rows: np.ndarray  # (E, 2) int64
    hyper_rows: np.ndarray  # (H, 3) int64
    hyper_edges: np.ndarray  # (H, 2) int64
    edge_distance: np.ndarray  # (E,)
    hyper_distance: np.ndarray  # (H,)
    edge_association: np.ndarray | None = None  # (E,)
    hyper_association: np.ndarray | None = None  # (H,)
    informed: np.ndarray | None = None  # (S,) bool
    diameter: np.ndarray | None = None  # (N,) float64

    def on_position(self) -> np.ndarray:
        """Nodes of the sequences that link on position alone (no associations cover them)."""
        if self.informed is None:
            return np.ones(self.num_nodes, bool)
        return ~self.informed[self.sequence]

    @property
    def num_nodes(self) -> int:
        return len(self.ids)

    @property
    def num_edges(self) -> int:
        return len(self.edge_rows)

    @property
    def num_hyper(self) -> int:
        return len(self.hyper_rows)

    @property
    def edges(self) -> np.ndarray:
        """``(E, 2)`` parent -> child detection ids."""
        return self.ids[self.edge_rows]

    @property
    def hyper(self) -> np.ndarray:
        """``(H, 3)`` (parent, child 1, child 2) detection ids."""
        return self.ids[self.hyper_rows]

    @property
    def edge_dt(self) -> np.ndarray:
        """Frames spanned by each edge (1 for consecutive frames)."""
        return self.t[self.edge_rows[:, 1]] - self.t[self.edge_rows[:, 0]]

    @property
    def hyper_dt(self) -> np.ndarray:
        return self.t[self.hyper_rows[:, 1]] - self.t[self.hyper_rows[:, 0]]

    def pixel_positions(self) -> np.ndarray:
        """Positions in pixels (the scale undone)."""
        return self.positions / self.scale

    def sizes(self) -> dict[str, int]:
        return {"nodes": self.num_nodes, "edges": self.num_edges, "hyper_edges": self.num_hyper}

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the given detection ids (``InputError`` for an unknown id)."""
        ids = np.asarray(ids, np.int64)
        sorter = np.argsort(self.ids, kind="stable")
        pos = np.clip(np.searchsorted(self.ids, ids, sorter=sorter), 0, max(len(self.ids) - 1, 0))
        rows = sorter[pos] if len(self.ids) else pos
        ok = self.ids[rows] == ids if len(self.ids) else np.zeros(len(ids), bool)
        if not ok.all():
            raise InputError(None, f"unknown detection id(s) {ids[~ok][:5].tolist()}")
        return rows

    def with_links(
        self,
        edge_rows: np.ndarray,
        hyper_rows: np.ndarray,
        associations: Associations | None = None,
    ) -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
        """Add links that are missing (a hyper-edge brings its two regular edges).

        Returns the new graph and the indices of the given edges and hyper-edges in it.
        """
        edge_rows = np.asarray(edge_rows, np.int64).reshape(-1, 2)
        hyper_rows = np.asarray(hyper_rows, np.int64).reshape(-1, 3)
        hyper_rows = np.concatenate([hyper_rows[:, :1], np.sort(hyper_rows[:, 1:], axis=1)], axis=1)
        wanted = np.concatenate([edge_rows, hyper_rows[:, [0, 1]], hyper_rows[:, [0, 2]]])
        idx = _find_rows(self.edge_rows, wanted)
        new_edges = np.unique(wanted[idx < 0], axis=0)
        graph = self
        if len(new_edges):
            graph = _append_edges(graph, new_edges, associations)
            idx = _find_rows(graph.edge_rows, wanted)
        n_e, n_h = len(edge_rows), len(hyper_rows)
        edge_idx = idx[:n_e]
        hyper_idx = _find_rows(graph.hyper_rows, hyper_rows)
        missing = hyper_idx < 0
        if missing.any():
            pairs = np.stack([idx[n_e : n_e + n_h], idx[n_e + n_h :]], axis=1)[missing]
            new = np.unique(np.concatenate([hyper_rows[missing], pairs], axis=1), axis=0)
            graph = _append_hyper(graph, new[:, :3], new[:, 3:])
            hyper_idx = _find_rows(graph.hyper_rows, hyper_rows)
        return graph, edge_idx, hyper_idx


def build_candidates(
    detections: Detections,
    associations: Associations | None = None,
    config: LinkConfig | None = None,
) -> CandidateGraph:
    """Join every detection to its ``k`` nearest detections in each of the ``max_gap`` previous
    frames (of its sequence), optionally within ``max_distance``; with ``divisions``, add a
    hyper-edge (parent; c1, c2) for every pair of candidate children of a parent in one frame.
    """
    config = config or LinkConfig()
    scale, positions, seq, names = _layout(detections, config)
    t = detections.times
    edge_rows = _knn_edges(positions, t, seq, config)
    graph = CandidateGraph(
        ids=detections.ids.copy(),
        t=t.copy(),
        sequence=seq,
        sequence_names=list(names),
        positions=positions,
        scale=scale.astype(np.float64),
        edge_rows=np.zeros((0, 2), np.int64),
        hyper_rows=np.zeros((0, 3), np.int64),
        hyper_edges=np.zeros((0, 2), np.int64),
        edge_distance=np.zeros(0),
        hyper_distance=np.zeros(0),
        edge_association=None if associations is None else np.zeros(0),
        hyper_association=None if associations is None else np.zeros(0),
        informed=_informed(detections, seq, len(names), associations),
        diameter=detections.diameters(),
    )
    graph = _append_edges(graph, edge_rows, associations)
    if config.divisions:
        hyper_rows, hyper_edges = _division_pairs(graph)
        graph = _append_hyper(graph, hyper_rows, hyper_edges)
    logger.info(
        "candidate graph: %d nodes, %d edges, %d hyper-edges",
        graph.num_nodes,
        graph.num_edges,
        graph.num_hyper,
    )
    return graph


def candidate_links(detections: Detections, config: LinkConfig | None = None) -> np.ndarray:
    """The ``(E, 2)`` detection ids ``(parent, child)`` of the links :func:`build_candidates`
    makes with ``config`` (no hyper-edges): the links a solver with these settings can choose."""
    config = config or LinkConfig()
    _, positions, seq, _ = _layout(detections, config)
    return detections.ids[_knn_edges(positions, detections.times, seq, config)]


def _layout(
    detections: Detections, config: LinkConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Voxel scale, scaled positions, sequence codes and the sequence names."""
    scale = check_voxel_size(config.voxel_size, detections.ndim)
    codes, names = pd.factorize(detections.table["sequence"], sort=True)
    return scale, detections.positions() * scale, codes.astype(np.int64), list(names)


def _frame_blocks(t: np.ndarray, seq: np.ndarray) -> dict[tuple[int, int], slice]:
    """Rows are sorted by (sequence, t): each frame of a sequence is one contiguous block."""
    if not len(t):
        return {}
    change = np.flatnonzero((np.diff(t) != 0) | (np.diff(seq) != 0)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(t)]])
    return {
        (int(seq[s]), int(t[s])): slice(int(s), int(e)) for s, e in zip(starts, ends, strict=True)
    }


def _knn_edges(
    positions: np.ndarray, t: np.ndarray, seq: np.ndarray, config: LinkConfig
) -> np.ndarray:
    blocks = _frame_blocks(t, seq)
    bound = np.inf if config.max_distance is None else float(config.max_distance)
    parts = []
    for (s, frame), rows in blocks.items():
        for gap in range(1, config.max_gap + 1):
            prev = blocks.get((s, frame - gap))
            if prev is None:
                continue
            k = min(config.k, prev.stop - prev.start)
            tree = cKDTree(positions[prev])
            dist, nn = tree.query(positions[rows], k=k, distance_upper_bound=bound)
            dist, nn = dist.reshape(len(dist), k), nn.reshape(len(nn), k)
            child = np.repeat(np.arange(rows.start, rows.stop), k).reshape(-1, k)
            ok = np.isfinite(dist)
            parts.append(np.stack([nn[ok] + prev.start, child[ok]], axis=1))
    if not parts:
        return np.zeros((0, 2), np.int64)
    edges = np.concatenate(parts).astype(np.int64)
    return edges[np.lexsort((edges[:, 1], edges[:, 0]))]


def _division_pairs(graph: CandidateGraph) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of candidate children (in one frame) of each parent."""
    parent, child = graph.edge_rows[:, 0], graph.edge_rows[:, 1]
    dt = graph.edge_dt
    order = np.lexsort((child, dt, parent))
    key = parent[order] * (int(dt.max(initial=1)) + 1) + dt[order]
    starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]])) if len(key) else key
    sizes = np.diff(np.concatenate([starts, [len(key)]]))
    first, second = [], []
    for size in np.unique(sizes[sizes >= 2]):
        group = starts[sizes == size]
        iu, ju = np.triu_indices(int(size), 1)
        first.append(order[(group[:, None] + iu[None, :]).ravel()])
        second.append(order[(group[:, None] + ju[None, :]).ravel()])
    if not first:
        return np.zeros((0, 3), np.int64), np.zeros((0, 2), np.int64)
    a, b = np.concatenate(first), np.concatenate(second)
    rows = np.stack([parent[a], child[a], child[b]], axis=1)
    return rows, np.stack([a, b], axis=1)


def _informed(
    detections: Detections, seq: np.ndarray, n_sequences: int, associations: Associations | None
) -> np.ndarray | None:
    """Per sequence code: whether any of its detections has an association to a child."""
    if associations is None:
        return None
    informed = np.zeros(n_sequences, bool)
    covered = np.isin(detections.ids, associations.table["source"].to_numpy())
    informed[np.unique(seq[covered])] = True
    return informed


def _append_edges(
    graph: CandidateGraph, new: np.ndarray, associations: Associations | None
) -> CandidateGraph:
    new = np.asarray(new, np.int64).reshape(-1, 2)
    dist = np.linalg.norm(graph.positions[new[:, 0]] - graph.positions[new[:, 1]], axis=1)
    assoc = None
    if associations is not None:
        assoc = associations.lookup(graph.ids[new[:, 0]], graph.ids[new[:, 1]]).astype(np.float64)
        assoc = np.concatenate([graph.edge_association, assoc])
    return replace(
        graph,
        edge_rows=np.concatenate([graph.edge_rows, new]),
        edge_distance=np.concatenate([graph.edge_distance, dist]),
        edge_association=assoc,
    )


def _append_hyper(graph: CandidateGraph, rows: np.ndarray, edges: np.ndarray) -> CandidateGraph:
    rows = np.asarray(rows, np.int64).reshape(-1, 3)
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    pos = graph.positions
    mid = 0.5 * (pos[rows[:, 1]] + pos[rows[:, 2]])
    dist = np.linalg.norm(pos[rows[:, 0]] - mid, axis=1)
    assoc = None
    if graph.edge_association is not None:
        assoc = 0.5 * (graph.edge_association[edges[:, 0]] + graph.edge_association[edges[:, 1]])
        assoc = np.concatenate([graph.hyper_association, assoc])
    return replace(
        graph,
        hyper_rows=np.concatenate([graph.hyper_rows, rows]),
        hyper_edges=np.concatenate([graph.hyper_edges, edges]),
        hyper_distance=np.concatenate([graph.hyper_distance, dist]),
        hyper_association=assoc,
    )


def _find_rows(table: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Index of each row of ``wanted`` in ``table`` (-1 where absent); rows are int tuples."""
    if not len(wanted):
        return np.zeros(0, np.int64)
    if not len(table):
        return np.full(len(wanted), -1, np.int64)
    width = table.shape[1]
    view = np.dtype((np.void, 8 * width))
    keys = np.ascontiguousarray(table, np.int64).view(view).ravel()
    want = np.ascontiguousarray(wanted, np.int64).view(view).ravel()
    sorter = np.argsort(keys, kind="stable")
    pos = np.clip(np.searchsorted(keys, want, sorter=sorter), 0, len(keys) - 1)
    hit = keys[sorter[pos]] == want
    return np.where(hit, sorter[pos], -1)
