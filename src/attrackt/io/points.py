"""Points tables: detections given by position, for movies without a segmentation.

A CSV or parquet table with one row per cell and frame and the columns ``t`` (the frame index,
0 for the movie's first frame), ``y``, ``x`` (pixels, row and column; 3D movies also ``z``), and
optionally ``id`` (unique integers >= 0, kept as the detection ids) and ``label`` or
``track_id`` (an integer kept as the detection's label). Column names are case-insensitive;
other columns are ignored.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.io.images import Frames

log = logging.getLogger(__name__)

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or parquet table; a missing or unreadable file raises :class:`InputError`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such points table")
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InputError(path, f"a points table is a {', '.join(TABLE_SUFFIXES)} file")
    try:
        return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"not a readable table ({type(err).__name__}: {err})") from err


def _column(table: pd.DataFrame, name: str, source: str, integer: bool = False) -> np.ndarray:
    """A numeric column without gaps (whole numbers with ``integer``), or an error naming a row."""
    values = pd.to_numeric(table[name], errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if integer:
        bad |= values != np.round(values)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "an integer" if integer else "a number"
        raise InputError(
            source, f"row {row}: column {name!r} must be {kind}, got {table[name].iloc[row]}"
        )
    return values.astype(np.int64) if integer else values


def points_detections(
    table: pd.DataFrame, images: Frames, source: str = "points", sequence: str = ""
) -> Detections:
    """Detections at the points of ``table`` (see the module docstring), checked against the
    movie ``images``: frames within the movie, positions within its frames."""
    table = table.rename(columns={c: str(c).lower() for c in table.columns})
    spatial = images.shape[1:]
    if len(spatial) not in (2, 3):
        raise InputError(images.source, f"expected a (T, [Z,] Y, X) movie, got {images.shape}")
    axes = ("z", "y", "x")[-len(spatial) :]
    missing = [c for c in ("t", *axes) if c not in table.columns]
    if missing:
        raise InputError(
            source,
            f"lacks the column(s) {missing} for the {images.shape} movie {images.source} "
            f"(it has {list(table.columns)})",
        )
    if len(spatial) == 2 and "z" in table.columns:
        raise InputError(source, f"has a z column but the movie {images.source} is 2D")
    if not len(table):
        raise InputError(source, "holds no points")
    t = _column(table, "t", source, integer=True)
    outside = (t < 0) | (t >= images.shape[0])
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        raise InputError(
            source,
            f"row {row}: frame t={t[row]} is not in the movie {images.source} "
            f"({images.shape[0]} frames, t = 0 ... {images.shape[0] - 1})",
        )
    positions = np.stack([_column(table, a, source) for a in axes], axis=1)
    outside = ((positions < -0.5) | (positions >= np.asarray(spatial) - 0.5)).any(axis=1)
    if outside.any():
        row = int(np.flatnonzero(outside)[0])
        where = ", ".join(f"{a}={v:g}" for a, v in zip(axes, positions[row], strict=True))
        raise InputError(
            source,
            f"row {row}: point ({where}) lies outside the frames of {images.source} "
            f"({' x '.join(map(str, spatial))} pixels, {', '.join(axes)}); positions are in "
            "pixels, y the row and x the column",
        )
    ids = None
    if "id" in table.columns:
        ids = _column(table, "id", source, integer=True)
        if (ids < 0).any() or len(np.unique(ids)) < len(ids):
            raise InputError(source, "column 'id' must hold distinct integers >= 0")
    label = next((c for c in ("label", "track_id") if c in table.columns), None)
    labels = None if label is None else _column(table, label, source, integer=True)
    ignored = sorted(set(table.columns) - {"t", *axes, "id", "label", "track_id"})
    if ignored:
        log.info("%s: ignoring the column(s) %s", source, ignored)
    return Detections.from_arrays(t, positions, ids=ids, labels=labels, sequence=sequence)


def read_points(
    source: str | Path | pd.DataFrame, images: Frames, sequence: str = ""
) -> Detections:
    """Detections from a points table (a file or a data frame), checked against ``images``."""
    if isinstance(source, pd.DataFrame):
        return points_detections(source, images, "points", sequence)
    return points_detections(read_table(source), images, str(source), sequence)
