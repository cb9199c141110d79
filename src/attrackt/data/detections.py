"""Detections: one row per cell and frame (id, t, [z,] y, x, label, sequence, features) and
vector blocks (embeddings)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data._files import read_parquet, write_parquet
from attrackt.errors import InputError

SPATIAL_2D = ("y", "x")
SPATIAL_3D = ("z", "y", "x")
_CORE = ("id", "t", "label", "sequence")


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

    def diameters(self) -> np.ndarray | None:
        """Each detection's equivalent diameter: that of the disc (2D) or ball (3D) of its
        ``area``, in the area's units (``None`` without an ``area`` column)."""
        if "area" not in self.table.columns:
            return None
        area = self.table["area"].to_numpy(np.float64)
        return (2 * self.ndim * np.clip(area, 0, None) / np.pi) ** (1 / self.ndim)

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
        write_parquet(path, self.to_arrow(), {"kind": "detections", "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> Detections:
        """Read a file written by :meth:`save`."""
        table, meta = read_parquet(path)
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
