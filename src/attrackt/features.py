"""Per-object features: shape and intensity statistics (regionprops) and image crops.

Every function takes one movie: ``images`` of shape ``(T, [Z,] Y, X)``, ``masks`` of the same
shape labelled per frame, and the :class:`~attrackt.data.Detections` of that movie, whose ``t``
indexes the first axis and whose ``label`` names the cell in the mask of its frame. Arrays may be
numpy arrays or anything indexable per frame (memory maps, zarr arrays): one frame is read at a
time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from skimage.measure import regionprops_table

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.voxels import check_voxel_size

logger = logging.getLogger(__name__)

#: Value of the pixels of a crop that lie outside the image (and of masked-out cells): the
#: background level of a movie normalised with :func:`normalise_movie` (its low percentile).
PAD_VALUE = 0.0


# --------------------------------------------------------------------------------------------
# checks shared by the functions below
# --------------------------------------------------------------------------------------------


def _check_movie(images: Any, detections: Detections, what: str = "images") -> int:
    """Validate ``images`` against ``detections``; return the number of frames."""
    if len(images.shape) != detections.ndim + 1:
        raise InputError(
            what,
            f"has shape {tuple(images.shape)}, but {detections.ndim}D detections need a "
            f"(T, {', '.join(a.upper() for a in detections.spatial_axes)}) movie",
        )
    if len(detections.sequences) > 1:
        raise InputError(
            "detections",
            f"hold {len(detections.sequences)} sequences {detections.sequences}; give the "
            "detections of the one movie these images show (Detections.by_sequence)",
        )
    n_frames = images.shape[0]
    if len(detections):
        t = detections.times
        if t.min() < 0 or t.max() >= n_frames:
            bad = int(t[(t < 0) | (t >= n_frames)][0])
            raise InputError(what, f"has {n_frames} frames, but a detection lies in frame {bad}")
    return n_frames


def _finite_frame(images: Any, t: int, dtype: Any = None) -> np.ndarray:
    frame = np.asarray(images[t], dtype=dtype)
    if frame.dtype.kind == "f" and not np.isfinite(frame).all():
        raise InputError("images", f"frame {t} contains NaN or infinite values")
    return frame


def _frame_slices(times: np.ndarray) -> list[tuple[int, slice]]:
    """``(t, rows)`` for each frame of a time vector sorted ascending."""
    if not len(times):
        return []
    frames, starts = np.unique(times, return_index=True)
    ends = np.append(starts[1:], len(times))
    return [(int(t), slice(int(a), int(b))) for t, a, b in zip(frames, starts, ends, strict=True)]


# --------------------------------------------------------------------------------------------
# regionprops
# --------------------------------------------------------------------------------------------


def feature_names(ndim: int) -> list[str]:
    """The columns :func:`regionprops_features` adds, for 2 or 3 spatial dimensions.

    Named as ``skimage.measure.regionprops`` names them where it has them (``area`` is the
    voxel count, or volume, in 3D too).
    """
    axes = ["axis_major_length", "axis_minor_length"]
    if ndim == 3:
        axes.insert(1, "axis_intermediate_length")
    return [
        "area",
        "intensity_mean",
        "intensity_std",
        "intensity_min",
        "intensity_max",
        "equivalent_diameter_area",
        *axes,
        "eccentricity",
        "axis_ratio",
        "gyration_radius",
        "extent",
    ]


#: the columns of :func:`feature_names` that ``skimage.measure.regionprops_table`` computes
_REGIONPROPS = (
    "area",
    "intensity_mean",
    "intensity_std",
    "intensity_min",
    "intensity_max",
    "equivalent_diameter_area",
    "axis_major_length",
    "axis_minor_length",
    "extent",
)


def _label_stats(
    image: np.ndarray, mask: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Features of every label of one frame: ``(labels (L,), features (L, F))``.

    ``regionprops_table`` gives all but four: the 3D intermediate axis (regionprops has the
    major and minor only), eccentricity (2D only there), the axis ratio and the gyration radius.
    Those come from its inertia-tensor eigenvalues ``e`` (descending): the intermediate axis
    as regionprops derives the other two, ``sqrt(10 (e0 - e1 + e2))``; eccentricity as
    ``sqrt(1 - (minor / major)^2)`` (in 2D what regionprops computes); the gyration radius as
    ``sqrt(sum(e) / (ndim - 1))``, the inertia tensor's trace being ``ndim - 1`` times the sum
    of the second central moments.
    """
    ndim = mask.ndim
    props = regionprops_table(
        mask,
        image,
        properties=("label", *_REGIONPROPS, "inertia_tensor_eigvals"),
        spacing=scale,
    )
    columns = {name: np.asarray(props[name], dtype=np.float64) for name in _REGIONPROPS}
    eig = np.stack([props[f"inertia_tensor_eigvals-{i}"] for i in range(ndim)], axis=1)
    if ndim == 3:
        middle = 10 * (eig[:, 0] - eig[:, 1] + eig[:, 2])
        columns["axis_intermediate_length"] = np.sqrt(np.clip(middle, 0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = columns["axis_minor_length"] / columns["axis_major_length"]
    columns["eccentricity"] = np.sqrt(1 - ratio**2)
    columns["axis_ratio"] = ratio
    columns["gyration_radius"] = np.sqrt(eig.sum(axis=1) / (ndim - 1))
    stats = np.stack([columns[name] for name in feature_names(ndim)], axis=1)
    return np.asarray(props["label"]), stats


def regionprops_features(
    images: Any,
    masks: Any,
    detections: Detections,
    *,
    scale: Sequence[float] | None = None,
) -> Detections:
    """Add shape and intensity columns (see :func:`feature_names`) to ``detections``.

    Sizes, diameters, axis lengths and the gyration radius are in pixels, or in the units of
    ``scale`` (the size of a pixel along each spatial axis) when given. Axis lengths are the
    full axes of the ellipse (ellipsoid) with the same second moments, eccentricity is
    ``sqrt(1 - smallest/largest moment)`` and ``axis_ratio`` is minor / major, all invariant to
    orientation; ``extent`` is the share of the bounding box the object fills. Objects too thin
    to have these (a single pixel) get 0 for them, with a warning.
    """
    n_frames = _check_movie(images, detections)
    if tuple(masks.shape) != tuple(images.shape):
        raise InputError("masks", f"have shape {tuple(masks.shape)}, images {tuple(images.shape)}")
    if np.dtype(masks.dtype).kind not in "iu":
        raise InputError("masks", f"must hold integer labels, not {masks.dtype}")
    ndim = detections.ndim
    scale_arr = check_voxel_size(scale, ndim)
    names = feature_names(ndim)
    out = np.zeros((len(detections), len(names)))
    det_labels = detections.labels
    for t, rows in _frame_slices(detections.times):
        image = _finite_frame(images, t)
        labels, stats = _label_stats(image, np.asarray(masks[t]), scale_arr)
        want = det_labels[rows]
        pos = np.clip(np.searchsorted(labels, want), 0, max(len(labels) - 1, 0))
        found = (labels[pos] == want) if len(labels) else np.zeros(len(want), bool)
        if not found.all():
            bad = np.flatnonzero(~found)[0] + rows.start
            raise InputError(
                "masks",
                f"detection {detections.ids[bad]} (t={t}, label {det_labels[bad]}): label "
                f"{det_labels[bad]} does not occur in the mask of frame {t} (of {n_frames})",
            )
        out[rows] = stats[pos]
    degenerate = ~np.isfinite(out)
    if degenerate.any():
        rows = np.flatnonzero(degenerate.any(axis=1))
        cols = sorted({names[c] for c in np.flatnonzero(degenerate.any(axis=0))})
        logger.warning(
            "%d detection(s) are too thin for shape features %s (e.g. id %d at t=%d); set to 0",
            len(rows),
            cols,
            detections.ids[rows[0]],
            detections.times[rows[0]],
        )
        out[degenerate] = 0.0
    return detections.with_columns(**{name: out[:, i] for i, name in enumerate(names)})


# --------------------------------------------------------------------------------------------
# normalisation and crops
# --------------------------------------------------------------------------------------------


def normalise_movie(
    images: Any, low: float = 1.0, high: float = 99.8, *, max_samples: int = 1 << 24
) -> np.ndarray:
    """Map the ``low`` and ``high`` percentiles of the whole movie to 0 and 1 (float32).

    Percentiles come from at most ``max_samples`` evenly strided voxels. A constant movie (the
    two percentiles equal) maps to 0 everywhere. NaN or infinite values are an error.
    """
    if not 0 <= low < high <= 100:
        raise InputError("normalisation", f"needs 0 <= low < high <= 100, got {low}, {high}")
    out = np.array(images, dtype=np.float32)  # a copy: normalised in place below
    for t in range(out.shape[0]):
        if not np.isfinite(out[t]).all():
            raise InputError("images", f"frame {t} contains NaN or infinite values")
    flat = out.reshape(-1)
    stride = max(1, -(-flat.size // max_samples))
    lo, hi = np.percentile(flat[::stride], [low, high])
    span = float(hi - lo)
    if not span > 0:
        logger.warning("the movie is constant between its percentiles; it normalises to 0")
        span = 1.0
    out -= np.float32(lo)
    out /= np.float32(span)
    return out


def _crop_size(size: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    sizes = (size,) * ndim if isinstance(size, (int, np.integer)) else tuple(size)
    if len(sizes) != ndim or any(int(s) < 1 for s in sizes):
        raise InputError("crop size", f"needs {ndim} positive sizes, got {size}")
    return tuple(int(s) for s in sizes)


def extract_crops(
    images: Any,
    detections: Detections,
    size: int | Sequence[int] = 64,
    *,
    masks: Any = None,
    mask_others: bool = False,
    dtype: Any = np.float32,
) -> np.ndarray:
    """Crops of ``size`` (per spatial axis) centred on each detection: ``(N, [Z,] Y, X)``.

    Row ``i`` belongs to row ``i`` of ``detections``. The detection's position, rounded to the
    nearest pixel, lands at index ``size // 2`` of each axis. Where a crop crosses the image
    border it is padded with :data:`PAD_VALUE` (0: the background of a movie normalised by
    :func:`normalise_movie`; normalise first). With ``mask_others`` (needs ``masks``), the
    pixels of other cells are set to :data:`PAD_VALUE` too, keeping the cell's own region and
    the background. ``dtype=np.float16`` halves the memory of normalised crops.
    """
    _check_movie(images, detections)
    if mask_others:
        if masks is None:
            raise InputError("crops", "mask_others needs the masks")
        if tuple(masks.shape) != tuple(images.shape):
            raise InputError(
                "masks", f"have shape {tuple(masks.shape)}, images {tuple(images.shape)}"
            )
    ndim = detections.ndim
    sizes = _crop_size(size, ndim)
    spatial = tuple(images.shape[1:])
    pos = detections.positions()
    centre = np.floor(pos + 0.5).astype(np.int64)
    outside = ((pos < -0.5) | (pos >= np.asarray(spatial) - 0.5)).any(axis=1)
    if outside.any():
        bad = np.flatnonzero(outside)[0]
        raise InputError(
            "detections",
            f"detection {detections.ids[bad]} (t={detections.times[bad]}) at "
            f"{pos[bad].tolist()} lies outside the image of shape {spatial}",
        )
    pad = [(s // 2, s - s // 2) for s in sizes]
    out = np.empty((len(detections), *sizes), dtype=dtype)
    for t, rows in _frame_slices(detections.times):
        frame = np.pad(_finite_frame(images, t), pad, constant_values=PAD_VALUE)
        corner = tuple(centre[rows].T)  # padding shifts the centre to the window's corner
        with np.errstate(over="ignore"):  # an overflowing cast is reported below
            out[rows] = sliding_window_view(frame, sizes)[corner]
        if mask_others:
            own = detections.labels[rows].reshape((-1,) + (1,) * ndim)
            mask = sliding_window_view(np.pad(np.asarray(masks[t]), pad), sizes)[corner]
            out[rows][(mask != 0) & (mask != own)] = PAD_VALUE
    if out.dtype.kind == "f" and not np.isfinite(out).all():
        raise InputError(
            "images", f"values overflow {np.dtype(dtype).name}: normalise the movie first"
        )
    return out
