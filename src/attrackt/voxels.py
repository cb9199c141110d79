"""Voxel sizes: how far apart a movie's pixels lie along each spatial axis.

A voxel size is one positive number per spatial axis, in the order of the positions
(``Y, X`` or ``Z, Y, X``), in any unit (µm, or relative: ``2,1,1`` for planes twice as far
apart as the pixels within a plane). Linking compares positions multiplied by it
(:class:`~attrackt.link.LinkConfig`); the association model and the crops, which were tuned in
pixels, use it relative to the finest axis (:func:`relative_voxel_size`), so that their
pixel-sized settings keep their meaning along y-x and z is stretched to match.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from attrackt.errors import InputError

#: how the option is named in errors (``attrackt run`` and ``attrackt link`` take it so)
OPTION = "--voxel-size"


def check_voxel_size(voxel_size: Sequence[float] | None, ndim: int) -> np.ndarray:
    """``voxel_size`` as a float64 array of ``ndim`` positive values (ones when ``None``).

    A wrong count or a value that is not positive is an :class:`InputError` naming the option
    and what a ``ndim``-D movie needs."""
    if voxel_size is None:
        return np.ones(ndim)
    values = np.asarray(voxel_size, dtype=np.float64).reshape(-1)
    axes = "Z,Y,X" if ndim == 3 else "Y,X"
    if len(values) != ndim:
        raise InputError(
            OPTION,
            f"has {len(values)} value(s) {tuple(values.tolist())}, but a {ndim}D movie needs "
            f"{ndim} ({axes})",
        )
    if not (np.isfinite(values) & (values > 0)).all():
        raise InputError(OPTION, f"needs positive values ({axes}), got {tuple(values.tolist())}")
    return values


def relative_voxel_size(voxel_size: Sequence[float] | None, ndim: int) -> np.ndarray:
    """The voxel size divided by its smallest value: 1 along the finest axis (ones without)."""
    values = check_voxel_size(voxel_size, ndim)
    return values / values.min()


def parse_voxel_size(text: str | None) -> tuple[float, ...] | None:
    """``"2,1,1"`` -> ``(2.0, 1.0, 1.0)``; 2 or 3 positive numbers (``None`` stays ``None``)."""
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(OPTION, f"expected Y,X or Z,Y,X numbers, got {text!r}") from err
    if len(values) not in (2, 3):
        raise InputError(OPTION, f"expected 2 (Y,X) or 3 (Z,Y,X) numbers, got {text!r}")
    check_voxel_size(values, len(values))
    return values
