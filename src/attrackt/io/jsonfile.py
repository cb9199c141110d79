"""Strict JSON out: NaN and infinities become ``null``, so every reader can parse what we write.

Python's ``json`` writes a bare ``NaN`` (not JSON) by default; :func:`strict_json` never does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.io.atomic import atomic_write_text


def plain(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays made Python values, tuples made lists, and
    non-finite floats made ``None``, through dicts and lists."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def strict_json(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of :func:`plain` ``(value)`` with ``allow_nan=False``."""
    return json.dumps(plain(value), allow_nan=False, **kwargs)


def write_json(path: str | Path, value: Any, indent: int | None = 1) -> None:
    """Write ``value`` as strict JSON (see :func:`strict_json`) to ``path``, atomically."""
    atomic_write_text(path, strict_json(value, indent=indent) + "\n")
