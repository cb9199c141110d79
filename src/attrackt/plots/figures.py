"""The figure helpers every plot shares: a new figure or the caller's axes, and atomic files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

log = logging.getLogger(__name__)


def _figure_and_axes(ax: Any, size: tuple[float, float]) -> tuple[Figure, Any]:
    """``ax`` and its figure, or a new figure of ``size`` inches and its one axes."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def save_figure(fig: Figure, path: str | Path, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` atomically (the format follows the suffix, e.g. ``.png``)."""
    path = Path(path)
    if not path.suffix:
        raise InputError(path, "give the figure file a suffix such as .png, .pdf or .svg")
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    log.info("wrote %s", path)
    return path


def _finish(fig: Figure, out: str | Path | None) -> Figure:
    """``fig``, written to ``out`` first when given."""
    if out is not None:
        save_figure(fig, out)
    return fig
