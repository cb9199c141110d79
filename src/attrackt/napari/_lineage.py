"""A small tree drawing of the current cell's lineage (:meth:`ProofreadSession.lineage`): time
runs left to right, branches one above the other; the current cell is yellow, answered cells
green, cells likely tracked wrong red. Clicking a cell goes to it."""

from __future__ import annotations

import pandas as pd
from qtpy.QtCore import QPointF, Qt, Signal
from qtpy.QtGui import QColor, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

COLOURS = {"current": "#ffd700", "answered": "#32cd32", "suspect": "#ff4d4d", "plain": "#9aa0a6"}


class LineageView(QWidget):
    """The lineage tree; emits ``picked(id)`` when a cell is clicked."""

    picked = Signal(int)

    def __init__(self) -> None:
        super().__init__()
        self.lineage = pd.DataFrame(columns=["id", "t", "parent", "lane", "suspect", "answered"])
        self.current = -1
        self.setMinimumHeight(70)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(
            "The cell's lineage in the solver's tracks (±15 frames): yellow the cell, green "
            "answered, red likely wrong (score ≥ 0.5). Click a cell to go to it."
        )

    def set_lineage(self, lineage: pd.DataFrame, current: int) -> None:
        self.lineage = lineage
        self.current = current
        lanes = int(lineage["lane"].max()) + 1 if len(lineage) else 1
        self.setFixedHeight(min(30 + 14 * lanes, 160))
        self.update()

    def _layout(self) -> dict[int, QPointF]:
        table = self.lineage
        if not len(table):
            return {}
        t0, t1 = int(table["t"].min()), int(table["t"].max())
        lanes = int(table["lane"].max()) + 1
        width, height = self.width() - 20, self.height() - 20
        dx = width / max(t1 - t0, 1)
        dy = height / max(lanes, 1)
        return {
            int(row.id): QPointF(10 + (row.t - t0) * dx, 10 + (row.lane + 0.5) * dy)
            for row in table.itertuples()
        }

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#262930"))
        points = self._layout()
        painter.setPen(QPen(QColor(COLOURS["plain"]), 1.5))
        for row in self.lineage.itertuples():
            if row.parent >= 0 and int(row.parent) in points:
                a, b = points[int(row.parent)], points[int(row.id)]
                painter.drawLine(a, QPointF(a.x(), b.y()))
                painter.drawLine(QPointF(a.x(), b.y()), b)
        for row in self.lineage.itertuples():
            kind = (
                "current"
                if row.id == self.current
                else "answered"
                if row.answered
                else "suspect"
                if row.suspect
                else "plain"
            )
            radius = 5.0 if kind == "current" else 3.5 if kind != "plain" else 2.0
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(COLOURS[kind]))
            painter.drawEllipse(points[int(row.id)], radius, radius)
        painter.end()

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        points = self._layout()
        if not points:
            return
        where = event.position() if hasattr(event, "position") else QPointF(event.pos())

        def distance(id: int) -> float:
            return (points[id].x() - where.x()) ** 2 + (points[id].y() - where.y()) ** 2

        self.picked.emit(int(min(points, key=distance)))
