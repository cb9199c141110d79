"""A cell to proof-read as the viewer shows it (:class:`Cell`), with no Qt and no napari in it:
a ranked cell from the ranking's table, the points to draw for it, the model's other answers,
and the spacing of cells (what clicks snap within, what markers and zoom are scaled by).
:class:`~attrackt.napari.session.ProofreadSession` calls these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from attrackt.data import Associations, Detections

__all__ = [
    "LIKELY_WRONG",
    "Cell",
    "cell_alternatives",
    "cell_highlights",
    "cell_of",
    "half_spacing",
]

LIKELY_WRONG = 0.5  #: a score from which a cell is likely tracked wrong


@dataclass(frozen=True)
class Cell:
    """One cell to proof-read, as the viewer shows it. ``rank`` is its place in the ranking
    (``None`` when reached by id only); ``answer`` its answered children (``None``: not yet)."""

    id: int
    rank: int | None
    sequence: str
    t: int
    position: tuple[float, ...]
    score: float
    solver_children: tuple[int, ...]
    model_children: tuple[int, ...]
    model_scores: tuple[float, ...]
    answer: tuple[int, ...] | None


def cell_of(
    table: pd.DataFrame,
    id: int,
    rank: int | None,
    axes: Sequence[str],
    answer: tuple[int, ...] | None,
) -> Cell:
    """The cell ``id`` of the ranking's ``table`` (indexed by id), at ``rank``, with the
    spatial ``axes`` of its position and its journaled ``answer``."""
    row = table.loc[id]
    return Cell(
        id=id,
        rank=rank,
        sequence=str(row["sequence"]),
        t=int(row["t"]),
        position=tuple(float(row[a]) for a in axes),
        score=float(row["score"]),
        solver_children=tuple(int(c) for c in row["solver_children"]),
        model_children=tuple(int(c) for c in row["model_children"]),
        model_scores=tuple(float(s) for s in row["model_scores"]),
        answer=answer,
    )


def cell_highlights(detections: Detections, cell: Cell | None) -> pd.DataFrame:
    """Points to draw for ``cell``: one row per ``role`` (``cell``; ``solver``, its solver
    children; ``model``, the model's best children; ``answer``, the answered children) with
    ``id``, ``t``, ``[z,] y, x`` and ``score`` (no rows without a cell)."""
    axes = list(detections.spatial_axes)
    columns = ["role", "id", "t", *axes, "score"]
    if cell is None:
        return pd.DataFrame(columns=columns)
    groups = [
        ("cell", (cell.id,), (cell.score,)),
        ("solver", cell.solver_children, (np.nan,) * len(cell.solver_children)),
        ("model", cell.model_children, cell.model_scores),
        ("answer", cell.answer or (), (np.nan,) * len(cell.answer or ())),
    ]
    roles = [r for r, ids, _ in groups for _ in ids]
    ids = np.asarray([i for _, g, _ in groups for i in g], np.int64)
    scores = [s for _, _, g in groups for s in g]
    table = detections.table.iloc[detections.rows_of(ids)]
    out = pd.DataFrame({"role": roles, "id": ids, "t": table["t"].to_numpy()})
    for axis in axes:
        out[axis] = table[axis].to_numpy()
    out["score"] = np.asarray(scores, np.float64)
    return out


def cell_alternatives(
    associations: Associations | None, cell: Cell | None
) -> list[tuple[int, ...]]:
    """The model's answers for ``cell`` that differ from the solver's, most likely first:
    its best children as many as its association mass says (rounded, 0 to 2), then each of
    its best children alone, its best two as a division, and no children (none without
    ``associations``)."""
    if cell is None or associations is None or not cell.model_children:
        return []
    top = list(cell.model_children)
    mass = float(associations.outgoing_mass(np.asarray([cell.id]), dt=1)[0])
    expected = int(np.clip(round(mass), 0, 2))
    options = [tuple(top[:expected]), *[(c,) for c in top], tuple(top[:2]), ()]
    seen = {frozenset(cell.solver_children)}
    out = []
    for option in options:
        if frozenset(option) not in seen:
            seen.add(frozenset(option))
            out.append(option)
    return out


def half_spacing(detections: Detections) -> float:
    """Half the median distance from a cell to its nearest neighbour in the same frame."""
    from scipy.spatial import cKDTree

    pos = detections.positions()
    if len(pos) < 2:
        return float("inf")
    span = float(np.ptp(pos, axis=0).max()) + 1.0
    codes = pd.factorize(detections.table["sequence"])[0]
    far = np.column_stack([codes * 4 * span, detections.times * 4 * span])
    dist = cKDTree(np.column_stack([far, pos])).query(np.column_stack([far, pos]), k=2)[0][:, 1]
    near = dist[dist < span * 2]
    return float(np.median(near)) / 2 if len(near) else float("inf")
