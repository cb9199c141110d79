"""Curves: training logs (loss against step) and active-learning results (a metric against the
number of proof-read cells)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from attrackt.errors import InputError
from attrackt.plots.figures import _figure_and_axes, _finish

log = logging.getLogger(__name__)


def read_training_log(path: str | Path) -> list[dict[str, float]]:
    """The records of a training ``log.jsonl`` (or of the ``log.jsonl`` in a training folder)."""
    from attrackt.trainlog import LOG, read_log

    path = Path(path)
    if path.is_dir():
        path = path / LOG
    if not path.is_file():
        raise InputError(path, "no such training log")
    records = read_log(path, up_to_step=math.inf)
    if not records:
        raise InputError(path, "holds no training records")
    return records


def _ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average starting at the first value."""
    from scipy.signal import lfilter

    zi = [smoothing * values[0]]
    return lfilter([1 - smoothing], [1, -smoothing], values, zi=zi)[0]


def plot_learning_curves(
    logs: Mapping[str, str | Path | Sequence[Mapping[str, float]]],
    keys: Sequence[str] = ("loss",),
    *,
    smoothing: float = 0.0,
    log_y: bool = False,
    ax: Any = None,
    out: str | Path | None = None,
) -> Figure:
    """Loss (or any logged value) against the training step, one line per run and key.

    ``logs`` maps a run name to its ``log.jsonl`` (or training folder) or to its records, as
    :func:`attrackt.train.fit` writes them. A key a run does not log is left out (with a log
    message); none at all is an :class:`InputError`. ``smoothing`` in [0, 1) draws an
    exponential moving average over the faded raw curve.
    """
    if not 0 <= smoothing < 1:
        raise InputError("smoothing", f"must lie in [0, 1), got {smoothing}")
    fig, ax = _figure_and_axes(ax, (7, 4.5))
    drawn = 0
    for name, source in logs.items():
        records = read_training_log(source) if isinstance(source, (str, Path)) else list(source)
        for key in keys:
            points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
            if not points:
                log.info("%s logs no %r", name, key)
                continue
            steps, values = np.asarray(points, float).T
            label = key if len(logs) == 1 else f"{name}: {key}"
            marker = "o" if len(points) < 30 else None
            if smoothing:
                (raw,) = ax.plot(steps, values, alpha=0.3, lw=0.8)
                ax.plot(steps, _ema(values, smoothing), color=raw.get_color(), label=label)
            else:
                ax.plot(steps, values, marker=marker, ms=3, label=label)
            drawn += 1
    if not drawn:
        raise InputError(", ".join(map(str, logs)), f"no run logs any of {list(keys)}")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(keys[0] if len(keys) == 1 else "value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _finish(fig, out)


def plot_budget_curves(
    results: Mapping[str, Mapping[Any, float | Mapping[str, float]]],
    metric: str = "AOGM",
    reference: Mapping[str, float] | None = None,
    *,
    ax: Any = None,
    out: str | Path | None = None,
) -> Figure:
    """A metric against the number of proof-read cells, one line per active-learning strategy.

    ``results`` is ``{strategy: {budget: value}}`` (budgets may be JSON strings; a value may be
    a dict of metrics, of which ``metric`` is drawn). The x axis is logarithmic (linear below
    1 when a budget is 0). ``reference`` draws horizontal lines, e.g. ``{"supervised": 12.0}``.
    """
    fig, ax = _figure_and_axes(ax, (6.5, 4.5))
    smallest = math.inf
    for strategy, by_budget in results.items():
        points = []
        for budget, value in by_budget.items():
            try:
                b = float(budget)
            except ValueError as err:
                raise InputError(strategy, f"budget {budget!r} is not a number") from err
            v = value[metric] if isinstance(value, Mapping) else value
            points.append((b, math.nan if v is None else float(v)))
        if not points:
            continue
        x, y = np.asarray(sorted(points), float).T
        smallest = min(smallest, x.min())
        ax.plot(x, y, marker="o", ms=4, label=strategy)
    for i, (name, value) in enumerate((reference or {}).items()):
        ax.axhline(value, color=f"C{len(results) + i}", ls="--", lw=1, label=name)
    if smallest <= 0:
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xlim(left=smallest)
    elif math.isfinite(smallest):
        ax.set_xscale("log")
    ax.set_xlabel("proof-read cells")
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return _finish(fig, out)
