"""A cell to proof-read as the viewer shows it (:class:`Cell`), with no Qt and no napari in it:
a ranked cell from the ranking's table, the points to draw for it, the model's other answers,
the cells under a person's clicks, the check that answered children can be the cell's, and the
snap distance of clicks. :class:`~attrackt.napari.session.ProofreadSession` calls these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from attrackt.data import Associations, Detections
from attrackt.errors import InputError

__all__ = [
    "LIKELY_WRONG",
    "Cell",
    "cell_alternatives",
    "cell_highlights",
    "cell_of",
    "check_children",
    "clicked_children",
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


def clicked_children(
    detections: Detections, cell: Cell, points: np.ndarray, snap: float
) -> list[int]:
    """The cells nearest to the clicked ``points`` (``(k, 1 + ndim)``: ``t, [z,] y, x``) in
    their frames, each within ``snap`` pixels; the frames must follow ``cell``'s."""
    det = detections
    points = np.asarray(points, np.float64).reshape(-1, 1 + det.ndim)
    if not 1 <= len(points) <= 2:
        raise InputError(
            "clicks", f"click one or two children (got {len(points)}), or answer no children"
        )
    same = det.table["sequence"].to_numpy() == cell.sequence
    ids = []
    for point in points:
        frame = int(np.rint(point[0]))
        where = ", ".join(f"{v:.0f}" for v in point[1:])
        if frame <= cell.t:
            raise InputError(
                "clicks", f"a child must be in a later frame than the cell's ({cell.t}); "
                f"the click at ({where}) is in frame {frame}",
            )  # fmt: skip
        rows = np.flatnonzero(same & (det.times == frame))
        dist = np.linalg.norm(det.positions()[rows] - point[1:], axis=1)
        if not len(rows) or dist.min() > snap:
            raise InputError(
                "clicks", f"no cell within {snap:.1f} px of the click at ({where}) in frame "
                f"{frame}",
            )  # fmt: skip
        ids.append(int(det.ids[rows[np.argmin(dist)]]))
    if len(set(ids)) < len(ids):
        raise InputError("clicks", f"both clicks pick the cell {ids[0]}")
    return ids


def check_children(detections: Detections, cell: Cell, children: tuple[int, ...]) -> None:
    """Refuse, before anything is written, a child that does not exist or is not later in
    the cell's sequence (what the journal can never hold)."""
    det = detections
    known = det.has_ids(children)
    if not known.all():
        bad = [c for c, k in zip(children, known, strict=True) if not k]
        raise InputError("answer", f"there is no detection {bad[0]}")
    rows = det.rows_of(children)
    bad = (det.times[rows] <= cell.t) | (det.table["sequence"].to_numpy()[rows] != cell.sequence)
    if bad.any():
        raise InputError(
            "answer",
            f"detection {children[int(np.argmax(bad))]} is not in a later frame of the "
            f"sequence of cell {cell.id}",
        )


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
