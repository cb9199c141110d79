"""Answers as a session takes them, with no Qt and no napari in it: the cells under a person's
clicks, the check that answered children can be a cell's (before anything is journaled), and
what undo can take back of a journal, across sessions.
:class:`~attrackt.napari.session.ProofreadSession` calls these."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attrackt.data import Answer, Detections
from attrackt.errors import InputError
from attrackt.napari.cells import Cell

__all__ = ["check_children", "clicked_children", "undo_stack"]


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


def undo_stack(history: Sequence[Answer]) -> list[tuple[int, tuple[int, ...] | None]]:
    """``(id, what it had before)`` of each answer in ``history`` (journal order) that no later
    ``undo`` line took back, oldest first."""
    state: dict[int, tuple[int, ...] | None] = {}
    stack: list[tuple[int, tuple[int, ...] | None]] = []
    for answer in history:
        if answer.undo:
            hit = next((k for k in range(len(stack) - 1, -1, -1) if stack[k][0] == answer.id), None)
            if hit is not None:
                del stack[hit]
        else:
            stack.append((answer.id, state.get(answer.id)))
        state[answer.id] = None if answer.retracted else answer.children
    return stack
