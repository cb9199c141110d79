"""From CTC sequences to one compact :class:`~attrackt.store.Store` file.

For each sequence: detections (the GT tracking markers, or the "GT detections" protocol's full
masks), their shape and intensity features (regionprops), the ground-truth edges, and a small
crop of every cell. A crop covers a field of the percentile-normalised movie around the cell and
is resampled (area averaging) to ``crop_pixels`` and stored as ``uint8``, so that big cells fit at
a small cost. The field follows the cells' size: ``crop_cells`` typical cell diameters (the median
equivalent diameter of the first sequence's cells, kept for the store's other sequences), so a
crop shows a cell and its neighbours at one scale whatever the magnification: HeLa nuclei of 26
pixels get a 65-pixel field, DIC HeLa cells of 114 pixels 284. The width was chosen on the
training movies by the AOGM of the unsupervised model, guarded (``bench/crop_field.py`` and
``bench/accuracy.py``: wider crops make the embedding nearer its own parent's, and more like
position alone). ``crop_size`` sets a fixed field in pixels instead. In 3D, with a
voxel size, a crop spans the same length along z as along y-x (fewer planes when they lie
further apart), and ``crop_pixels_3d`` can keep 3D crops small enough for a CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.features import extract_crops, normalise_movie, regionprops_features
from attrackt.store import Store
from attrackt.voxels import check_voxel_size, relative_voxel_size

logger = logging.getLogger(__name__)

_CHUNK = 4096  # detections cropped and resampled at a time
FALLBACK_CROP = 64  # the field (px) of cells without an area (points)


@dataclass(frozen=True)
class PrepareConfig:
    """How sequences become a store.

    ``gt_detections``: use TRA markers painted over the silver truth (full cells) instead of the
    bare markers. ``crop_cells``: the field of view of a crop in typical cell diameters (the
    median equivalent diameter of the cells, from their ``area``: see :meth:`for_cells`; at least
    ``crop_pixels``; :data:`FALLBACK_CROP` pixels where the cells have no area, as points);
    ``crop_size``: a fixed field in pixels instead (per spatial axis, or one number for all);
    ``crop_pixels``: the crops' resolution. ``masks``: keep the label masks in the store.
    ``low``/``high``: the normalisation percentiles of each movie. ``voxel_size``: the movie's
    (:mod:`attrackt.voxels`); shape features are measured in its units, and a field given as
    one number (or in diameters) is the field along the finest axis, the other axes spanning
    the same length (in at most as many pixels as ``crop_pixels``). ``crop_pixels_3d``: the
    resolution of 3D crops (``None``: ``crop_pixels``); a 32^3 crop costs 32 times the compute
    of a 32^2 one.
    """

    gt_detections: bool = False
    crop_size: int | tuple[int, ...] | None = None
    crop_cells: float = 2.5
    crop_pixels: int | tuple[int, ...] = 32
    masks: bool = False
    low: float = 1.0
    high: float = 99.8
    voxel_size: tuple[float, ...] | None = None
    crop_pixels_3d: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.voxel_size is not None:
            object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))
        if not 0 < self.crop_cells < float("inf"):
            raise InputError("prepare", f"crop_cells must be positive, got {self.crop_cells}")

    def _pixels(self, ndim: int) -> int | tuple[int, ...]:
        return self.crop_pixels_3d if ndim == 3 and self.crop_pixels_3d else self.crop_pixels

    def for_cells(self, detections: Detections) -> PrepareConfig:
        """This config with the crops' field fixed: ``crop_size`` where given, else
        ``crop_cells`` times the cells' median equivalent diameter along the finest axis (at
        least ``crop_pixels``; :data:`FALLBACK_CROP` for cells without an area)."""
        if self.crop_size is not None:
            return self
        diameters = detections.diameters()
        if diameters is None or not len(diameters):
            logger.info(
                "the cells have no area (points): crops cover %d px (crop_size changes it)",
                FALLBACK_CROP,
            )
            return replace(self, crop_size=FALLBACK_CROP)
        finest = float(check_voxel_size(self.voxel_size, detections.ndim).min())
        diameter = float(np.median(diameters)) / finest
        field = max(round(self.crop_cells * diameter), int(np.max(self._pixels(detections.ndim))))
        logger.debug("typical cell diameter %.1f px: crops cover %d px", diameter, field)
        return replace(self, crop_size=field)

    def sizes(self, ndim: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(crop_size, crop_pixels)`` as per-axis tuples for ``ndim`` spatial axes (the field
        set: see :meth:`for_cells`)."""
        crop_size = self.crop_size
        if crop_size is None:
            raise InputError("prepare", "the crops' field follows the cells: see for_cells")
        pixels = self._pixels(ndim)
        out = []
        for name, value in (("crop_size", crop_size), ("crop_pixels", pixels)):
            sizes = (value,) * ndim if np.isscalar(value) else tuple(value)
            if len(sizes) != ndim or any(int(s) < 1 for s in sizes):
                raise InputError("prepare", f"{name} needs {ndim} positive sizes, got {value}")
            out.append(tuple(int(s) for s in sizes))
        size, pixels = out
        if any(p > s for s, p in zip(size, pixels, strict=True)):
            raise InputError(
                "prepare", f"crop_pixels {pixels} exceed the field of view crop_size {size}"
            )
        if np.isscalar(crop_size):  # the same length along every axis
            stretch = relative_voxel_size(self.voxel_size, ndim)
            size = tuple(max(1, round(s / k)) for s, k in zip(size, stretch, strict=True))
            pixels = tuple(min(p, s) for s, p in zip(size, pixels, strict=True))
        return size, pixels


def resample_crops(crops: np.ndarray, pixels: Sequence[int]) -> np.ndarray:
    """Area-average ``(N, *size)`` float crops down to ``(N, *pixels)`` (float32)."""
    import torch
    import torch.nn.functional as F

    pixels = tuple(int(p) for p in pixels)
    if tuple(crops.shape[1:]) == pixels:
        return crops.astype(np.float32)
    pool = F.adaptive_avg_pool2d if len(pixels) == 2 else F.adaptive_avg_pool3d
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(crops, dtype=np.float32))[:, None]
        return pool(x, pixels)[:, 0].numpy()


def to_uint8(crops: np.ndarray) -> np.ndarray:
    """Normalised crops (0..1) as uint8 (0..255), values outside clipped."""
    return np.clip(np.rint(crops * 255.0), 0, 255).astype(np.uint8)


def crop_cells(images: np.ndarray, detections: Detections, config: PrepareConfig) -> np.ndarray:
    """``uint8`` crops ``(N, *crop_pixels)`` of every detection of one movie (table order)."""
    size, pixels = config.for_cells(detections).sizes(detections.ndim)
    how = "" if config.crop_size is not None else f" ({config.crop_cells:g} cell diameters)"
    logger.info(
        "crops of %d cells: a field of %s px%s at %s voxels (voxel size %s)",
        len(detections), " x ".join(map(str, size)), how, " x ".join(map(str, pixels)),
        config.voxel_size or "not given: pixels",
    )  # fmt: skip
    movie = normalise_movie(images, config.low, config.high)
    out = np.empty((len(detections), *pixels), np.uint8)
    for start in range(0, len(detections), _CHUNK):
        rows = np.arange(start, min(start + _CHUNK, len(detections)))
        raw = extract_crops(movie, detections.take(rows), size, dtype=np.float32)
        out[rows] = to_uint8(resample_crops(raw, pixels))
    return out


def _sequences(source: str | Path) -> list:
    """The CTC sequences a source names: a dataset folder (all), a sequence or a GT folder."""
    from attrackt.io.ctc import find_sequences

    return find_sequences(source)


def prepare_sequence(sequence, config: PrepareConfig) -> Store:
    """One CTC sequence (a :class:`~attrackt.io.ctc.CTCSequence`) as a store (ids from 0)."""
    from attrackt.io.ctc import gt_detections, load_ctc

    if config.gt_detections:
        data = gt_detections(sequence.root, sequence.name)
    else:
        data = load_ctc(sequence.root, sequence.name)
    if data.images is None:
        raise InputError(sequence.images, "no images: crops and features need them")
    detections = regionprops_features(
        data.images, data.masks, data.tracks.detections, scale=config.voxel_size
    )
    shape = [int(s) for s in data.images.shape[1:]]
    detections.meta = _detections_meta({sequence.label: shape}, config)
    crops = crop_cells(data.images, detections, config)
    tracks = {sequence.label: Tracks(detections, data.tracks.edges)}
    masks = {sequence.label: data.masks} if config.masks else {}
    logger.info(
        "%s: %d detections, %d GT edges, %d frames of %s",
        sequence.label,
        len(detections),
        len(data.tracks.edges),
        len(data.images),
        shape,
    )
    return Store(detections, tracks, crops, masks)


def prepare_segmentation(
    images: str | Path | Any,
    masks: str | Path | Any | None = None,
    name: str = "01",
    config: PrepareConfig | None = None,
    *,
    points: str | Path | pd.DataFrame | None = None,
) -> Store:
    """A movie and its cells, without tracking, as a store (no ground truth).

    The cells come from ``masks``, an instance segmentation (a folder of label images, a label
    stack, a zarr array, or a label array or napari Labels layer: :mod:`attrackt.io.masks`), or
    from ``points``, a table of positions (a CSV/parquet file or a data frame with ``t, [z,] y,
    x``: :mod:`attrackt.io.points`); give one. ``images`` is a frame folder, a stack, a zarr
    array, or an array or napari Image layer (:mod:`attrackt.io.images`). A cell of the masks
    gets its shape and intensity features (regionprops); a point has no mask and gets none:
    its appearance is the crop around it (what the auto-encoder embeds).
    """
    from attrackt.io.ctc import detections_from_masks
    from attrackt.io.images import read_images
    from attrackt.io.masks import read_masks
    from attrackt.io.points import read_points

    if (masks is None) == (points is None):
        raise InputError("prepare", "give the cells either as masks or as points")
    config = config or PrepareConfig()
    movie = read_images(images)
    if len(movie.shape) not in (3, 4):
        raise InputError(movie.source, f"expected a (T, [Z,] Y, X) movie, got {movie.shape}")
    labels = None
    if masks is not None:
        labels = read_masks(masks, movie)
        detections = detections_from_masks(labels, name)
        detections = regionprops_features(movie.array, labels, detections, scale=config.voxel_size)
    else:
        detections = read_points(points, movie, name)
    if not len(detections):
        raise InputError(masks, "holds no labelled cell in any frame")
    detections.meta = _detections_meta({name: list(movie.shape[1:])}, config)
    crops = crop_cells(movie.array, detections, config)
    meta = _store_meta(config.for_cells(detections), detections.ndim, {name: movie.source})
    meta["cells"] = "masks" if labels is not None else "points"
    logger.info(
        "%s: %d cells (%s) in %d frames of %s",
        movie.source, len(detections), meta["cells"], movie.shape[0], list(movie.shape[1:]),
    )  # fmt: skip
    kept = {name: labels} if labels is not None and config.masks else {}
    return Store(detections, {}, crops, kept, meta)


def merge_stores(parts: Sequence[Store], meta: dict | None = None) -> Store:
    """One store from several; ids are shifted so that they stay unique (in order)."""
    if not parts:
        raise InputError("prepare", "no sequences to prepare")
    names = [n for p in parts for n in p.sequences]
    if len(set(names)) != len(names):
        raise InputError("prepare", f"a sequence is given twice: {names}")
    shifted, tracks, masks, image_shape = [], {}, {}, {}
    offset = 0
    for part in parts:
        det = part.detections
        moved = Detections(det.table.assign(id=det.ids + offset), det.vectors, det.meta)
        shifted.append(moved)
        for name, track in part.tracks.items():
            rows = moved.table["sequence"].to_numpy() == name
            tracks[name] = Tracks(moved.take(rows), track.edges + offset)
        masks.update(part.masks)
        image_shape.update(det.meta.get("image_shape", {}))
        offset = int(moved.ids.max()) + 1 if len(moved) else offset
    detections = Detections.concat(shifted)
    detections.meta = {"image_shape": image_shape}
    scales = [p.detections.meta["scale"] for p in parts if "scale" in p.detections.meta]
    if scales:  # one prepare call, one voxel size
        detections.meta["scale"] = scales[0]
    crops = None
    if all(p.crops is not None for p in parts):
        crops = np.concatenate([p.crops for p in parts])
    return Store(detections, tracks, crops, masks, dict(meta or {}))


def prepare(sources: Sequence[str | Path], config: PrepareConfig | None = None) -> Store:
    """Every CTC sequence named by ``sources`` in one store (see the module docstring)."""
    config = config or PrepareConfig()
    sequences = [s for source in sources for s in _sequences(source)]
    parts = []
    for sequence in sequences:  # the first sequence's cells set the field for all
        parts.append(prepare_sequence(sequence, config))
        config = config.for_cells(parts[0].detections)  # one scale for the whole store
    ndim = parts[0].detections.ndim if parts else 2
    sources_of = {s.label: str(s.root / s.name) for s in sequences}
    return merge_stores(parts, _store_meta(config, ndim, sources_of))


def _detections_meta(image_shape: dict[str, list[int]], config: PrepareConfig) -> dict:
    """The detections' ``meta``: each sequence's image shape and, where known, the voxel size
    (``scale``, which geff exports and napari layers take)."""
    if config.voxel_size is None:
        return {"image_shape": image_shape}
    return {"image_shape": image_shape, "scale": list(config.voxel_size)}


def _store_meta(config: PrepareConfig, ndim: int, sources: dict[str, str]) -> dict:
    size, pixels = config.sizes(ndim)
    return {
        "crop_size": list(size),
        "crop_pixels": list(pixels),
        "normalisation": [config.low, config.high],
        "gt_detections": config.gt_detections,
        "voxel_size": None if config.voxel_size is None else list(config.voxel_size),
        "sources": sources,
    }
