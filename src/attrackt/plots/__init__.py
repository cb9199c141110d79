"""Figures: tracking errors over the image, lineage trees, learning and active-learning curves.

Every ``plot_*`` function draws into ``ax`` (a new figure when ``None``), returns the
:class:`matplotlib.figure.Figure` and, with ``out``, also writes it (PNG, or any format
matplotlib knows from the suffix) atomically. Figures are made without ``pyplot``, so no window
opens and the caller's matplotlib backend is left alone.

One module per kind of figure: :mod:`.errors` (``track_errors`` and ``plot_track_errors``: the
same matching and counts as :func:`attrackt.evaluate.evaluate`), :mod:`.lineage` (lineage
trees), :mod:`.curves` (training and active-learning curves), over :mod:`.figures` (a new
figure or the caller's axes; ``save_figure``).
"""

from __future__ import annotations

from attrackt.plots.curves import plot_budget_curves, plot_learning_curves, read_training_log
from attrackt.plots.errors import (
    DIVISION_KINDS,
    EDGE_KINDS,
    ErrorSet,
    plot_track_errors,
    track_errors,
)
from attrackt.plots.figures import save_figure
from attrackt.plots.lineage import lineage_layout, plot_lineage

__all__ = [
    "DIVISION_KINDS",
    "EDGE_KINDS",
    "ErrorSet",
    "lineage_layout",
    "plot_budget_curves",
    "plot_learning_curves",
    "plot_lineage",
    "plot_track_errors",
    "read_training_log",
    "save_figure",
    "track_errors",
]
