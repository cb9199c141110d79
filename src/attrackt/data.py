"""The core types every stage passes on: Detections, Tracks, Associations, Annotations.

Each is plain columnar data (numpy / pandas) with a ``save``/``load`` pair that round-trips
losslessly. Coordinates are in pixels, in ``(t, [z,] y, x)`` order; node ids are stable ints,
unique within a :class:`Detections` table.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path
from attrackt.io.jsonfile import strict_json

SPATIAL_2D = ("y", "x")
SPATIAL_3D = ("z", "y", "x")
_CORE = ("id", "t", "label", "sequence")
_META_KEY = b"attrackt"


def _read_parquet(path: str | Path):  # -> tuple[pyarrow.Table, dict]
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as err:
        raise InputError(path, f"not a readable parquet file ({err})") from err
    raw = (table.schema.metadata or {}).get(_META_KEY)
    meta = json.loads(raw) if raw else {}
    return table, meta


def _write_parquet(path: str | Path, table, meta: dict[str, Any]) -> None:
    import pyarrow.parquet as pq

    schema_meta = dict(table.schema.metadata or {})
    schema_meta[_META_KEY] = json.dumps(meta).encode()
    table = table.replace_schema_metadata(schema_meta)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


# --------------------------------------------------------------------------------------------
# Detections
# --------------------------------------------------------------------------------------------


@dataclass
class Detections:
    """One row per cell and frame.

    ``table`` has the columns ``id`` (int64, unique), ``t`` (int64), ``z`` (3D only), ``y``, ``x``
    (float64, pixels), ``label`` (int64, the mask label in its frame), ``sequence`` (str) and any
    number of scalar feature columns. ``vectors`` holds per-detection feature vectors (for example
    ``"embedding"``), each an ``(N, D)`` float32 array aligned with the rows of ``table``.
    ``meta`` holds free JSON-able facts such as ``image_shape`` (per sequence) or ``scale``.
    Rows are kept sorted by ``(sequence, t, id)``.
    """

    table: pd.DataFrame
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = self.table
        missing = [c for c in ("id", "t", "y", "x") if c not in table.columns]
        if missing:
            raise InputError(None, f"detections lack the column(s) {missing}")
        table = table.copy()
        if "label" not in table.columns:
            table["label"] = 0
        if "sequence" not in table.columns:
            table["sequence"] = ""
        table["id"] = table["id"].astype(np.int64)
        table["t"] = table["t"].astype(np.int64)
        table["label"] = table["label"].astype(np.int64)
        table["sequence"] = table["sequence"].astype(str)
        for axis in self.spatial_axes_of(table):
            table[axis] = table[axis].astype(np.float64)
        if table["id"].duplicated().any():
            dup = table.loc[table["id"].duplicated(), "id"].iloc[0]
            raise InputError(None, f"detection id {dup} occurs more than once")
        pos = table[list(self.spatial_axes_of(table))].to_numpy()
        if not np.isfinite(pos).all():
            bad = table.loc[~np.isfinite(pos).all(axis=1)].iloc[0]
            raise InputError(
                None, f"detection {int(bad['id'])} (t={int(bad['t'])}) has a NaN/inf position"
            )
        order = np.lexsort((table["id"].to_numpy(), table["t"].to_numpy(), table["sequence"]))
        if not np.array_equal(order, np.arange(len(table))):
            table = table.iloc[order]
            self.vectors = {k: np.asarray(v)[order] for k, v in self.vectors.items()}
        self.table = table.reset_index(drop=True)
        for name, vec in self.vectors.items():
            vec = np.asarray(vec, dtype=np.float32)
            if vec.ndim == 1:
                vec = vec[:, None]
            if vec.shape[0] != len(self.table):
                raise InputError(
                    None, f"vector block {name!r} has {vec.shape[0]} rows, table {len(self.table)}"
                )
            self.vectors[name] = vec
        self._id_sorter: np.ndarray | None = None

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        t: Sequence[int] | np.ndarray,
        positions: np.ndarray,
        *,
        ids: Sequence[int] | np.ndarray | None = None,
        labels: Sequence[int] | np.ndarray | None = None,
        sequence: str = "",
        vectors: dict[str, np.ndarray] | None = None,
        meta: dict[str, Any] | None = None,
        **columns: np.ndarray,
    ) -> Detections:
        """Build detections from a time vector and an ``(N, 2|3)`` position array."""
        positions = np.asarray(positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] not in (2, 3):
            raise InputError(None, f"positions must be (N, 2) or (N, 3), got {positions.shape}")
        axes = SPATIAL_2D if positions.shape[1] == 2 else SPATIAL_3D
        n = len(positions)
        data: dict[str, Any] = {
            "id": np.arange(n) if ids is None else np.asarray(ids),
            "t": np.asarray(t),
            **{a: positions[:, i] for i, a in enumerate(axes)},
            "label": np.zeros(n, np.int64) if labels is None else np.asarray(labels),
            "sequence": [sequence] * n,
            **columns,
        }
        return cls(pd.DataFrame(data), dict(vectors or {}), dict(meta or {}))

    @staticmethod
    def spatial_axes_of(table: pd.DataFrame) -> tuple[str, ...]:
        return SPATIAL_3D if "z" in table.columns else SPATIAL_2D

    # ---- basic views -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.table)

    @property
    def spatial_axes(self) -> tuple[str, ...]:
        """``("y", "x")`` in 2D, ``("z", "y", "x")`` in 3D."""
        return self.spatial_axes_of(self.table)

    @property
    def ndim(self) -> int:
        """Number of spatial dimensions (2 or 3)."""
        return len(self.spatial_axes)

    @property
    def ids(self) -> np.ndarray:
        return self.table["id"].to_numpy()

    @property
    def times(self) -> np.ndarray:
        return self.table["t"].to_numpy()

    @property
    def labels(self) -> np.ndarray:
        return self.table["label"].to_numpy()

    @property
    def sequences(self) -> list[str]:
        """The sequence names, in table order."""
        return list(pd.unique(self.table["sequence"]))

    @property
    def feature_columns(self) -> list[str]:
        """Scalar feature columns (every column beyond the core ones)."""
        core = set(_CORE) | set(self.spatial_axes)
        return [c for c in self.table.columns if c not in core]

    def positions(self, scale: Sequence[float] | None = None) -> np.ndarray:
        """``(N, ndim)`` positions, multiplied by ``scale`` (per axis) when given."""
        pos = self.table[list(self.spatial_axes)].to_numpy(dtype=np.float64)
        return pos if scale is None else pos * np.asarray(scale, dtype=np.float64)

    def frames(self) -> np.ndarray:
        """Sorted distinct frame indices."""
        return np.unique(self.times)

    def rows_of(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Row indices of the given ids; raises ``KeyError`` for an unknown id."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._id_sorter is None:
            self._id_sorter = np.argsort(self.ids, kind="stable")
        own = self.ids
        pos = np.searchsorted(own, ids, sorter=self._id_sorter)
        pos = np.clip(pos, 0, len(own) - 1) if len(own) else pos
        rows = self._id_sorter[pos] if len(own) else pos
        if len(ids) and (not len(own) or not np.array_equal(own[rows], ids)):
            unknown = ids[~np.isin(ids, own)]
            raise KeyError(f"unknown detection id(s): {unknown[:5].tolist()}")
        return rows

    def has_ids(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """Boolean mask: which of ``ids`` are detections here."""
        return np.isin(np.asarray(ids, dtype=np.int64), self.ids)

    def take(self, rows: np.ndarray | Sequence[int]) -> Detections:
        """A new table with the given rows (boolean mask or indices), vectors included."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return Detections(
            self.table.iloc[rows].reset_index(drop=True),
            {k: v[rows] for k, v in self.vectors.items()},
            dict(self.meta),
        )

    def frame(self, t: int, sequence: str | None = None) -> Detections:
        """The detections of one frame."""
        mask = self.times == t
        if sequence is not None:
            mask &= self.table["sequence"].to_numpy() == sequence
        return self.take(mask)

    def by_sequence(self) -> Iterator[tuple[str, Detections]]:
        """Iterate ``(name, detections)`` per sequence."""
        seq = self.table["sequence"].to_numpy()
        for name in self.sequences:
            yield name, self.take(seq == name)

    def with_vectors(self, **vectors: np.ndarray) -> Detections:
        """A copy with extra (or replaced) vector blocks."""
        return Detections(self.table, {**self.vectors, **vectors}, dict(self.meta))

    def with_columns(self, **columns: np.ndarray) -> Detections:
        """A copy with extra (or replaced) scalar columns."""
        table = self.table.copy()
        for name, values in columns.items():
            table[name] = values
        return Detections(table, dict(self.vectors), dict(self.meta))

    @staticmethod
    def concat(parts: Sequence[Detections]) -> Detections:
        """Stack several tables; their ids must not collide, and vector blocks must agree."""
        if not parts:
            raise InputError(None, "nothing to concatenate")
        names = set(parts[0].vectors)
        if any(set(p.vectors) != names for p in parts):
            raise InputError(None, "detections to concatenate carry different vector blocks")
        meta: dict[str, Any] = {}
        for p in parts:
            meta.update(p.meta)
        return Detections(
            pd.concat([p.table for p in parts], ignore_index=True),
            {k: np.concatenate([p.vectors[k] for p in parts]) for k in names},
            meta,
        )

    # ---- disk ------------------------------------------------------------------------------
    def to_arrow(self):  # -> pyarrow.Table
        import pyarrow as pa

        table = pa.Table.from_pandas(self.table, preserve_index=False)
        for name, vec in self.vectors.items():
            flat = pa.array(np.ascontiguousarray(vec, dtype=np.float32).reshape(-1))
            table = table.append_column(
                f"vec:{name}", pa.FixedSizeListArray.from_arrays(flat, vec.shape[1])
            )
        return table

    @classmethod
    def from_arrow(cls, table, meta: dict[str, Any] | None = None) -> Detections:
        vec_cols = [c for c in table.column_names if c.startswith("vec:")]
        vectors = {}
        for col in vec_cols:
            arr = table.column(col).combine_chunks()
            width = arr.type.list_size
            vectors[col[4:]] = arr.flatten().to_numpy().reshape(-1, width).astype(np.float32)
        plain = table.drop_columns(vec_cols).to_pandas()
        return cls(plain, vectors, dict(meta or {}))

    def save(self, path: str | Path) -> None:
        """Write one parquet file (atomically); vectors become fixed-size list columns."""
        _write_parquet(path, self.to_arrow(), {"kind": "detections", "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> Detections:
        """Read a file written by :meth:`save`."""
        table, meta = _read_parquet(path)
        if meta.get("kind") != "detections":
            raise InputError(path, "not an attrackt detections file")
        try:
            return cls.from_arrow(table, meta.get("meta"))
        except InputError as err:
            raise InputError(path, err.problem) from err

    def equals(self, other: Detections) -> bool:
        """Same rows, columns, vectors and meta (exact)."""
        if set(self.vectors) != set(other.vectors) or self.meta != other.meta:
            return False
        if list(self.table.columns) != list(other.table.columns):
            return False
        try:
            pd.testing.assert_frame_equal(self.table, other.table, check_dtype=False)
        except AssertionError:
            return False
        return all(np.array_equal(v, other.vectors[k]) for k, v in self.vectors.items())


# --------------------------------------------------------------------------------------------
# Tracks
# --------------------------------------------------------------------------------------------


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
            _write_parquet(tmp / "edges.parquet", edges, {"kind": "edges"})

    @classmethod
    def load(cls, path: str | Path) -> Tracks:
        """Read a folder written by :meth:`save`."""
        path = Path(path)
        if not path.is_dir():
            raise InputError(
                path, "not a tracks folder (expected detections.parquet + edges.parquet)"
            )
        det = Detections.load(path / "detections.parquet")
        edges, meta = _read_parquet(path / "edges.parquet")
        if meta.get("kind") != "edges":
            raise InputError(path / "edges.parquet", "not an attrackt edges file")
        arr = np.stack([edges.column("parent").to_numpy(), edges.column("child").to_numpy()], 1)
        try:
            return cls(det, arr)
        except InputError as err:
            raise InputError(path, err.problem) from err

    def equals(self, other: Tracks) -> bool:
        return self.detections.equals(other.detections) and np.array_equal(self.edges, other.edges)


# --------------------------------------------------------------------------------------------
# Associations
# --------------------------------------------------------------------------------------------


@dataclass
class Associations:
    """Sparse scored links from a detection to a later one (``source`` at t, ``target`` at t+dt).

    ``table`` has the columns ``source``, ``target`` (int64 ids), ``dt`` (int64 >= 1) and
    ``score`` (float32, in [0, 1] for model predictions).
    """

    table: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(
            {
                "source": np.zeros(0, np.int64),
                "target": np.zeros(0, np.int64),
                "dt": np.zeros(0, np.int64),
                "score": np.zeros(0, np.float32),
            }
        )
    )
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in ("source", "target", "dt", "score") if c not in self.table.columns]
        if missing:
            raise InputError(None, f"associations lack the column(s) {missing}")
        table = self.table[["source", "target", "dt", "score"]].copy()
        table = table.astype({"source": np.int64, "target": np.int64, "dt": np.int64})
        table["score"] = table["score"].astype(np.float32)
        if not np.isfinite(table["score"].to_numpy()).all():
            raise InputError(None, "associations contain NaN/inf scores")
        if (table["dt"] < 1).any():
            raise InputError(None, "associations must point forward in time (dt >= 1)")
        if table.duplicated(["source", "target"]).any():
            raise InputError(None, "associations contain a (source, target) pair twice")
        self.table = table.sort_values(["source", "target"], kind="stable").reset_index(drop=True)

    @classmethod
    def from_arrays(
        cls,
        source: np.ndarray,
        target: np.ndarray,
        score: np.ndarray,
        dt: np.ndarray | int = 1,
        meta: dict[str, Any] | None = None,
    ) -> Associations:
        n = len(source)
        dt_arr = np.full(n, dt, np.int64) if np.isscalar(dt) else np.asarray(dt)
        frame = pd.DataFrame({"source": source, "target": target, "dt": dt_arr, "score": score})
        return cls(frame, dict(meta or {}))

    def __len__(self) -> int:
        return len(self.table)

    def lookup(self, source: np.ndarray, target: np.ndarray, default: float = 0.0) -> np.ndarray:
        """Scores of the given pairs (``default`` where a pair is absent)."""
        source = np.asarray(source, np.int64)
        target = np.asarray(target, np.int64)
        keys = pd.MultiIndex.from_arrays([self.table["source"], self.table["target"]])
        want = pd.MultiIndex.from_arrays([source, target])
        idx = keys.get_indexer(want)
        out = np.full(len(source), default, dtype=np.float32)
        hit = idx >= 0
        out[hit] = self.table["score"].to_numpy()[idx[hit]]
        return out

    def between(self, pairs: np.ndarray) -> Associations:
        """Only the rows whose ``(source, target)`` is one of the ``(E, 2)`` id ``pairs``."""
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        wanted = pd.MultiIndex.from_arrays([pairs[:, 0], pairs[:, 1]])
        have = pd.MultiIndex.from_arrays([self.table["source"], self.table["target"]])
        return Associations(self.table[have.isin(wanted)], self.meta)

    def outgoing_mass(self, ids: np.ndarray, dt: int = 1) -> np.ndarray:
        """Sum of scores leaving each of ``ids`` towards ``t + dt``."""
        sub = self.table[self.table["dt"] == dt]
        sums = sub.groupby("source")["score"].sum()
        return sums.reindex(np.asarray(ids, np.int64), fill_value=0.0).to_numpy(np.float32)

    def save(self, path: str | Path) -> None:
        """Write one parquet file (atomically)."""
        import pyarrow as pa

        table = pa.Table.from_pandas(self.table, preserve_index=False)
        _write_parquet(path, table, {"kind": "associations", "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> Associations:
        """Read a file written by :meth:`save`."""
        table, meta = _read_parquet(path)
        if meta.get("kind") != "associations":
            raise InputError(path, "not an attrackt associations file")
        try:
            return cls(table.to_pandas(), meta.get("meta", {}))
        except InputError as err:
            raise InputError(path, err.problem) from err

    def equals(self, other: Associations) -> bool:
        return self.meta == other.meta and self.table.equals(other.table)


# --------------------------------------------------------------------------------------------
# Annotations
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A person's answer for one detection: its true children (none, one or two).

    A ``retracted`` answer withdraws the detection's earlier answers: it is unanswered again.
    An ``undo`` answer takes back the latest answer not yet undone (a proof-reader's undo; it
    restores what the detection had before), so undo goes on across sessions.
    """

    id: int
    children: tuple[int, ...]
    time: float = field(default_factory=time.time)
    author: str = ""
    retracted: bool = False
    undo: bool = False

    def to_json(self) -> str:
        raw = {
            "id": self.id,
            "children": list(self.children),
            "time": self.time,
            "author": self.author,
        }
        if self.retracted:
            raw["retracted"] = True
        if self.undo:
            raw["undo"] = True
        return json.dumps(raw, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Answer:
        """The answer on one journal line; a ``ValueError`` says what is wrong with it."""
        raw = json.loads(line)
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        missing = [key for key in ("id", "children", "time") if key not in raw]
        if missing:
            raise ValueError(f"no {' or '.join(repr(k) for k in missing)}")
        children = raw["children"]
        if not _is_int(raw["id"]):
            raise ValueError(f"'id' must be an integer, got {raw['id']!r}")
        if not isinstance(children, list) or not all(_is_int(c) for c in children):
            raise ValueError(f"'children' must be a list of integers, got {children!r}")
        stamp = raw["time"]
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool) or stamp != stamp:
            raise ValueError(f"'time' must be a number, got {stamp!r}")
        if abs(stamp) == float("inf"):
            raise ValueError(f"'time' must be finite, got {stamp!r}")
        if not isinstance(raw.get("author", ""), str):
            raise ValueError(f"'author' must be a string, got {raw['author']!r}")
        for flag in ("retracted", "undo"):
            if not isinstance(raw.get(flag, False), bool):
                raise ValueError(f"'{flag}' must be true or false, got {raw[flag]!r}")
        answer = cls(
            raw["id"],
            tuple(children),
            float(stamp),
            raw.get("author", ""),
            raw.get("retracted", False),
            raw.get("undo", False),
        )
        problem = answer.problem()
        if problem is not None:
            raise ValueError(problem)
        return answer

    def problem(self) -> str | None:
        """What is wrong with the answer on its own (``None``: nothing): more than two
        children, a child named twice, or the cell as its own child."""
        if len(self.children) > 2:
            return f"detection {self.id} given {len(self.children)} children; at most 2"
        if len(set(self.children)) != len(self.children) or self.id in self.children:
            return f"detection {self.id} given the children {list(self.children)}"
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _drop_cut_line(fh, path: Path) -> None:
    """End a journal opened ``a+b`` with a complete line before appending to it.

    A crash mid-write leaves a last line without its end that does not parse; its answer was
    never acknowledged, so it is dropped (with a warning). A last line that parses (written by
    hand without the final newline) is kept and ended.
    """
    size = fh.seek(0, os.SEEK_END)
    if not size:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    text = fh.read()
    start = text.rfind(b"\n") + 1
    try:
        json.loads(text[start:])
    except ValueError:
        logging.getLogger(__name__).warning(
            "%s: dropping a cut-off last line (a write that never finished)", path
        )
        fh.truncate(start)
    else:
        fh.write(b"\n")


_FIX = "correct or delete that line (to change an answer, answer the cell again)"


class Annotations:
    """An append-only journal of answers (JSON lines, each flushed and fsync'ed).

    The latest answer for a detection wins; the whole history stays on disk. A crash can at
    worst cut the last line short (no newline at its end, not parseable), which :meth:`load`
    skips with a warning and the next :meth:`add` removes; any other line that is not a valid
    answer is an error naming the line. :meth:`edit` replaces an answer, :meth:`export` writes a
    table, :meth:`validate` checks the answers against the detections.
    """

    def __init__(self, path: str | Path | None = None, answers: Iterable[Answer] = ()) -> None:
        self.path = None if path is None else Path(path)
        self.history: list[Answer] = list(answers)

    @classmethod
    def load(cls, path: str | Path) -> Annotations:
        """Replay the journal at ``path`` (an absent file is an empty journal).

        Every line must be a valid answer (blank lines are skipped), except a cut-off last line
        (see the class doc); a bad line is an :class:`InputError` naming it.
        """
        path = Path(path)
        answers: list[Answer] = []
        if not path.exists():
            return cls(path, answers)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(path, f"not a readable answers journal ({err})") from err
        lines = text.split("\n")  # the last item is "" unless the last line has no end
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                answers.append(Answer.from_json(line))
            except json.JSONDecodeError as err:
                if number == len(lines):  # no newline after it: a write that never finished
                    logging.getLogger(__name__).warning(
                        "%s: ignoring a cut-off last line %d (%s)", path, number, err
                    )
                    continue
                raise InputError(path, f"line {number} is not JSON ({err}); {_FIX}") from err
            except ValueError as err:
                raise InputError(
                    path, f"line {number} is not a valid answer: {err}; {_FIX}"
                ) from err
        return cls(path, answers)

    def add(self, answer: Answer) -> None:
        """Record an answer; with a journal path it is on disk when this returns."""
        problem = answer.problem()
        if problem is not None:
            raise InputError(self.path, problem)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                _drop_cut_line(fh, self.path)
                fh.write((answer.to_json() + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        self.history.append(answer)

    def latest(self) -> dict[int, tuple[int, ...]]:
        """detection id -> its children, by the latest answer (retracted answers left out)."""
        final = {a.id: a for a in sorted(self.history, key=lambda a: a.time)}
        return {i: a.children for i, a in final.items() if not a.retracted}

    def links(self) -> np.ndarray:
        """``(E, 2)`` parent -> child links of the latest answers."""
        pairs = [(p, c) for p, kids in self.latest().items() for c in kids]
        return np.asarray(pairs, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.latest())

    def save(self, path: str | Path) -> None:
        """Write the whole history to a new journal file (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text("".join(a.to_json() + "\n" for a in self.history), encoding="utf-8")

    def edit(self, id: int, children: Sequence[int], author: str = "") -> Answer:
        """Replace the answer for ``id`` by a new one (the old one stays in the history)."""
        if id not in self.latest():
            raise InputError(self.path, f"detection {id} has no answer to edit; add one instead")
        answer = Answer(int(id), tuple(int(c) for c in children), author=author)
        self.add(answer)
        return answer

    def retract(self, id: int, author: str = "") -> Answer:
        """Withdraw the answer for ``id`` (it is unanswered again; the history keeps all)."""
        if id not in self.latest():
            raise InputError(self.path, f"detection {id} has no answer to retract")
        answer = Answer(int(id), (), author=author, retracted=True)
        self.add(answer)
        return answer

    def answers_of(self, id: int) -> list[Answer]:
        """Every answer given for ``id``, oldest first."""
        return sorted((a for a in self.history if a.id == id), key=lambda a: a.time)

    def to_frame(self, history: bool = False) -> pd.DataFrame:
        """The latest answers (or, with ``history``, every answer with ``latest`` and
        ``retracted`` flags) as a table ``id, children, time, author[, latest, retracted]``;
        children as a list per row."""
        ordered = sorted(self.history, key=lambda a: a.time)
        final = {a.id: k for k, a in enumerate(ordered)}  # the index of each id's latest answer
        live = sorted(k for k in final.values() if not ordered[k].retracted)
        keep = range(len(ordered)) if history else live
        frame = pd.DataFrame(
            {
                "id": pd.Series([ordered[k].id for k in keep], dtype=np.int64),
                "children": [list(ordered[k].children) for k in keep],
                "time": pd.Series([ordered[k].time for k in keep], dtype=np.float64),
                "author": pd.Series([ordered[k].author for k in keep], dtype=str),
            }
        )
        if history:
            frame["latest"] = [final[ordered[k].id] == k for k in keep]
            frame["retracted"] = [ordered[k].retracted for k in keep]
        return frame

    def export(self, path: str | Path, history: bool = False) -> None:
        """Write :meth:`to_frame` as ``.csv`` (children joined by ``;``) or ``.json`` (records),
        atomically."""
        path = Path(path)
        frame = self.to_frame(history)
        if path.suffix == ".json":
            text = strict_json(frame.to_dict("records"), indent=1)
        elif path.suffix == ".csv":
            frame["children"] = [";".join(map(str, c)) for c in frame["children"]]
            text = frame.to_csv(index=False)
        else:
            raise InputError(path, "export to .csv or .json")
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def validate(self, detections: Detections, max_gap: int | None = None) -> list[Conflict]:
        """Check the latest answers against ``detections``.

        An answer naming a detection that does not exist is an :class:`InputError` (naming the
        journal and the ids). What a person must resolve by answering again is returned as
        :class:`Conflict` s: a child claimed by two answered parents, a child that is not later
        in the same sequence (or more than ``max_gap`` frames later), two children in different
        frames.
        """
        source = self.path if self.path is not None else "annotations"
        latest = self.latest()
        parents = np.fromiter(latest, np.int64, len(latest))
        links = self.links()
        named = np.concatenate([parents, links[:, 1]])
        unknown = np.unique(named[~detections.has_ids(named)])
        if len(unknown):
            raise InputError(
                source,
                f"answers name {len(unknown)} detection(s) that do not exist: "
                f"{unknown[:10].tolist()}",
            )
        conflicts: list[Conflict] = []
        rows = detections.rows_of(links.ravel()).reshape(-1, 2)
        t, seq = detections.times, detections.table["sequence"].to_numpy()
        dt = t[rows[:, 1]] - t[rows[:, 0]]
        bad = (seq[rows[:, 1]] != seq[rows[:, 0]]) | (dt < 1)
        if max_gap is not None:
            bad |= dt > max_gap
        later = f"later (by at most {max_gap} frames)" if max_gap else "later"
        for (p, c), d in zip(links[bad].tolist(), dt[bad].tolist(), strict=True):
            conflicts.append(
                Conflict(
                    "not-later",
                    (p,),
                    c,
                    f"detection {c} cannot be a child of {p}: it is {d:+d} frame(s) away, "
                    f"not {later} in the same sequence",
                )
            )
        claimed = pd.Series(links[:, 0]).groupby(links[:, 1]).agg(list)
        for c, owners in claimed[claimed.map(len) > 1].items():
            conflicts.append(
                Conflict(
                    "shared-child",
                    tuple(owners),
                    int(c),
                    f"detection {c} is answered as a child of each of {owners}",
                )
            )
        pairs = pd.DataFrame({"p": links[:, 0], "t": t[rows[:, 1]]}).groupby("p")["t"].nunique()
        for p in pairs[pairs > 1].index:
            conflicts.append(
                Conflict(
                    "split-frames",
                    (int(p),),
                    int(latest[p][1]),
                    f"the two children {list(latest[p])} of detection {p} are in different frames",
                )
            )
        return conflicts

    def check(self, detections: Detections, max_gap: int | None = None) -> None:
        """:meth:`validate`, raising an :class:`InputError` that lists every conflict."""
        conflicts = self.validate(detections, max_gap)
        if conflicts:
            source = self.path if self.path is not None else "annotations"
            listed = "; ".join(c.message for c in conflicts[:10])
            more = f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""
            raise InputError(
                source,
                f"{len(conflicts)} contradictory answer(s): {listed}{more}; answer the cells "
                "again (a new answer replaces the old one)",
            )


@dataclass(frozen=True)
class Conflict:
    """A contradiction among the latest answers, resolved by answering one of ``parents`` again.

    ``kind``: ``"shared-child"`` (``child`` claimed by several parents), ``"not-later"`` (the
    child is not later in the same sequence) or ``"split-frames"`` (two children in different
    frames).
    """

    kind: str
    parents: tuple[int, ...]
    child: int
    message: str
