"""The report's cells to proof-read first (``ranking.csv``), each pictured in its frame and the
next: from the movie when it can be read again, else from the store's crops."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.figure import Figure

from attrackt.report.markup import _esc, _Html, _note, _table, png_uri
from attrackt.report.project import _Project
from attrackt.store import Store

_GREY = colormaps["gray"].with_extremes(bad="#dce6f0")  # beyond the image: pale blue


def _window(frame: np.ndarray, centre: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``2 half + 1`` square around ``centre`` of a 2D frame (3D: the slice at the centre's
    z) as float32, NaN beyond the frame's border; and the window's corner in the frame."""
    if frame.ndim == 3:
        z = int(np.clip(round(centre[0]), 0, frame.shape[0] - 1))
        frame, centre = frame[z], centre[1:]
    lo = np.round(centre).astype(int) - half
    a, b = np.maximum(lo, 0), np.minimum(lo + 2 * half + 1, frame.shape)
    out = np.full((2 * half + 1, 2 * half + 1), np.nan, np.float32)
    out[a[0] - lo[0] : b[0] - lo[0], a[1] - lo[1] : b[1] - lo[1]] = frame[a[0] : b[0], a[1] : b[1]]
    return out, lo


def _thumbnail(
    movie: np.ndarray,
    masks: np.ndarray | None,
    cell: pd.Series,
    axes: Sequence[str],
    children: dict[str, list[np.ndarray]],
    half: int,
) -> Figure:
    """Frame t and t+1 around a cell: its outline and position, its children's positions."""
    t = int(cell["t"])
    centre = cell[list(axes)].to_numpy(float)
    fig = Figure(figsize=(3.2, 1.7), layout="constrained")
    panels = fig.subplots(1, 2)
    for ax, dt in zip(panels, (0, 1), strict=True):
        ax.set_axis_off()
        if t + dt >= len(movie):
            continue
        crop, corner = _window(np.asarray(movie[t + dt]), centre, half)
        lo, hi = np.nanpercentile(crop, [1, 99.8])
        ax.imshow(crop, cmap=_GREY, vmin=lo, vmax=max(hi, lo + 1e-9), interpolation="nearest")
        if masks is not None and dt == 0:
            own = _window(np.asarray(masks[t]), centre, half)[0] == cell["label"]
            if own.any():
                ax.contour(own, levels=[0.5], colors="yellow", linewidths=0.8)
        points = [(centre, "yellow", "+")] if dt == 0 else []
        if dt == 1:
            points += [(c, "cyan", "o") for c in children["solver"]]
            points += [(c, "magenta", "x") for c in children["model"]]
        for position, colour, marker in points:  # beyond the window: on its border
            y, x = np.clip(position[-2:] - corner, 0, 2 * half)
            ax.plot(x, y, marker=marker, color=colour, mfc="none", ms=5, mew=1)
        ax.set_xlim(-0.5, 2 * half + 0.5)
        ax.set_ylim(2 * half + 0.5, -0.5)
        ax.set_title(f"t={t + dt}", fontsize=7, pad=2)
    return fig


def _stored_crops(store: Store, ids: list[int]) -> Figure:
    """The store's crops of a cell and its first child, each centred on its cell (the
    movie itself is gone)."""
    rows = store.detections.rows_of(ids)
    fig = Figure(figsize=(3.2, 1.7), layout="constrained")
    for ax, row in zip(fig.subplots(1, 2), rows, strict=False):
        crop = store.crops[row]
        ax.imshow(crop if crop.ndim == 2 else crop.max(axis=0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"t={store.detections.times[row]} (stored crop)", fontsize=7, pad=2)
    for ax in fig.axes:
        ax.set_axis_off()
    return fig


def _ids(text: Any) -> list[int]:
    """Detection ids from a list or a ``;``-separated text."""
    if isinstance(text, (list, tuple, np.ndarray)):
        return [int(v) for v in text]
    return [int(v) for v in str(text).split(";") if v.strip()]


def _at(table: pd.DataFrame, ids: list[int], axes: Sequence[str]) -> list[np.ndarray]:
    """The positions of the detections ``ids`` (``table`` indexed by id) that it holds."""
    return [table.loc[i, list(axes)].to_numpy(float) for i in ids if i in table.index]


def _proofread(p: _Project, top: int) -> str:
    """The ranking's ``top`` cells, each with its picture."""
    from attrackt.active import load_ranking

    path = p.root / "ranking.csv"
    if not path.is_file() or p.store is None:
        return ""
    ranking = load_ranking(path).head(top)
    if not len(ranking):
        return _note("No cell is left to proof-read.")
    detections = p.store.detections
    axes = detections.spatial_axes
    table = detections.table.set_index("id")
    size = p.store.meta.get("crop_size") or [32] * len(axes)
    half = int(max(size[-2:]))  # twice the crop's field of view: room for the next frame's moves
    rows = []
    for _, cell in ranking.iterrows():
        solver, model = _ids(cell["solver_children"]), _ids(cell["model_children"])
        movie = p.movies.get(cell["sequence"])
        if movie is not None:
            children = {"solver": _at(table, solver, axes), "model": _at(table, model[:1], axes)}
            masks = p.store.masks.get(cell["sequence"])
            fig = _thumbnail(movie, masks, table.loc[int(cell["id"])], axes, children, half)
        elif p.store.crops is not None:
            fig = _stored_crops(p.store, [int(cell["id"]), *solver[:1]])
        else:
            fig = None
        picture = "(no images)" if fig is None else _Html(f'<img src="{png_uri(fig)}" alt="cell">')
        where = ", ".join(f"{a}={float(cell[a]):.0f}" for a in axes)
        rows.append(
            (
                int(cell["rank"]),
                int(cell["id"]),
                f"t={int(cell['t'])}, {where}",
                float(cell["score"]),
                " ".join(map(str, solver)) or "none",
                " ".join(map(str, model)) or "none",
                picture,
            )
        )
    intro = (
        f"<p>The {len(ranking)} cells where the learned associations and the linking disagree "
        "most: check them first (in napari: <code>attrackt napari "
        f"{_esc(p.root)}</code>). Each picture shows the cell in its frame (yellow: its outline "
        "or position) and the next frame (cyan circles: the children the linking gave it; "
        "magenta cross: the model's most likely child; on the border when it lies beyond).</p>"
    )
    header = ("rank", "cell id", "where", "score", "linked to", "model's choices", "t and t+1")
    return intro + _table(header, rows, "thumbs")
