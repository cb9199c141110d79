"""Associations: sparse scored links from a detection to a later one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data._files import read_parquet, write_parquet
from attrackt.errors import InputError


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

    @classmethod
    def mean(
        cls, parts: Sequence[Associations], weights: Sequence[float] | None = None
    ) -> Associations:
        """The mean score of each pair over ``parts`` (a pair absent from a part counts 0),
        weighted by ``weights`` (summing to 1; equal by default): the associations of an
        ensemble of models. ``meta`` is the first part's, with ``ensemble`` (how many parts)
        added."""
        if not parts:
            raise InputError(None, "the mean of no associations is undefined")
        weights = [1 / len(parts)] * len(parts) if weights is None else list(weights)
        if len(weights) != len(parts) or not np.isclose(sum(weights), 1.0):
            raise InputError(None, f"weights {weights} must be one per part and sum to 1")
        scaled = [
            p.table.assign(score=p.table["score"] * w) for p, w in zip(parts, weights, strict=True)
        ]
        table = pd.concat(scaled).groupby(["source", "target", "dt"], sort=False)
        summed = table["score"].sum().reset_index()
        return cls(summed, dict(parts[0].meta, ensemble=len(parts)))

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
        write_parquet(path, table, {"kind": "associations", "meta": self.meta})

    @classmethod
    def load(cls, path: str | Path) -> Associations:
        """Read a file written by :meth:`save`."""
        table, meta = read_parquet(path)
        if meta.get("kind") != "associations":
            raise InputError(path, "not an attrackt associations file")
        try:
            return cls(table.to_pandas(), meta.get("meta", {}))
        except InputError as err:
            raise InputError(path, err.problem) from err

    def equals(self, other: Associations) -> bool:
        return self.meta == other.meta and self.table.equals(other.table)
