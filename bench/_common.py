"""What every benchmark records beside its figures, and how it writes them.

A result file is written whole by the script that measured it: :func:`provenance` (the command
line, the commit, the machine, the time) plus the figures, through :func:`write_results`
(strict JSON: NaN becomes null), and nothing is edited by hand afterwards.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"


def commit() -> str:
    """The checked-out commit, with ``-dirty`` when ``src/`` or ``bench/`` (its results aside)
    have changes; where the caller states it in ``$ATTRACKT_COMMIT``, that (the GPU machine gets
    a copy of the working tree, and its ``.git``, if any, is not this tree's history)."""
    stated = os.environ.get("ATTRACKT_COMMIT")
    if stated:
        return stated
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src", "bench", ":!bench/results"],
        capture_output=True, text=True, cwd=REPO, check=False,
    ).stdout.strip()  # fmt: skip
    return (head or "unknown") + ("-dirty" if dirty else "")


def machine() -> dict[str, Any]:
    """Platform, CPU count, Python and torch versions, GPUs."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        if torch.cuda.is_available():
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def provenance(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """The command line that ran, the commit, the machine and the date."""
    argv = list(sys.argv if argv is None else argv)
    return {
        "command": "python " + " ".join(shlex.quote(a) for a in argv),
        "commit": commit(),
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def clean(value: Any) -> Any:
    """Plain JSON types; NaN and infinities become ``None``."""
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_results(path: Path, results: Mapping[str, Any]) -> None:
    """Write ``results`` whole and atomically as strict JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(clean(results), indent=1, allow_nan=False) + "\n"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def choose_by_geometric_mean(
    table: Mapping[str, Mapping[str, Sequence[float]]],
) -> tuple[str, dict[str, float]]:
    """The option with the lowest geometric mean, over datasets, of its mean over seeds, and
    every option's score; ``table``: dataset -> option -> one value per seed (how settings are
    chosen on the training movies)."""
    options = list(next(iter(table.values())))
    scores = {
        option: float(np.exp(np.mean([np.log(np.mean(per[option])) for per in table.values()])))
        for option in options
    }
    return min(scores, key=scores.get), scores


def mean_sd(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the finite values (``None`` where there are none;
    sd ``0.0`` for one value)."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return float(np.mean(finite)), sd
