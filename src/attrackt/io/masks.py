"""Instance segmentations as people have them, matched to their movie and checked.

A segmentation is one label image per frame (0 = background, one positive integer per cell):

- a folder of label images: CTC ``maskNNN.tif`` / ``man_segNNN.tif``, Cellpose ``NAME_masks.tif``
  / ``NAME_cp_masks.png`` (possibly beside the images), StarDist label TIFFs named like the
  images. Files are matched to the movie's frame files by name (the image's stem, plus a
  ``_cp_masks``, ``_masks``, ``_mask``, ``_labels`` or ``_label`` suffix), else by frame number
  (the last number in the name: ``t012.tif`` <-> ``mask012.tif``); to a single-stack movie in
  natural order;
- a single stack, a zarr array or a napari Labels layer (see :mod:`attrackt.io.images`).

Every frame needs a label image (an empty one for a frame without cells); labels must be
integers >= 0 of the movie's shape. Whole-number float images are read as labels, with a
warning; a binary mask is an error (it needs labelling first).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.errors import InputError
from attrackt.io.images import Frames, image_files, read_files, read_images, zarr_location

log = logging.getLogger(__name__)

MASK_SUFFIXES = ("_cp_masks", "_masks", "_mask", "_labels", "_label")


def _base(path: Path) -> str:
    """The stem of a label image without its mask suffix (``img_cp_masks.png`` -> ``img``)."""
    stem = path.stem
    for suffix in MASK_SUFFIXES:
        if stem.lower().endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _number(stem: str) -> int | None:
    """The last number in a file stem (``man_seg012`` -> 12), ``None`` without one."""
    numbers = re.findall(r"\d+", stem)
    return int(numbers[-1]) if numbers else None


def mask_files(folder: Path, images: Frames) -> list[Path]:
    """The label images of ``folder``: its ``*_masks``-style files if it has any, else all."""
    files = image_files(folder)
    tagged = [p for p in files if _base(p) != p.stem]
    if tagged:
        return tagged
    if images.path is not None and images.path.resolve() == folder.resolve():
        raise InputError(
            folder, "holds the images but no label images (NAME_masks.tif); give the masks folder"
        )
    if not files:
        raise InputError(folder, "holds no label images (.tif, .tiff or .png files)")
    return files


def _index(paths: list[Path], key: Callable[[Path], Hashable]) -> dict[Hashable, Path]:
    index: dict[Hashable, Path] = {}
    for path in paths:
        k = key(path)
        if k is not None and k in index:
            raise InputError(path, f"and {index[k].name} both match frame {k!r}; keep one")
        index[k] = path
    return index


def match_frames(masks: list[Path], images: Frames, folder: Path) -> list[Path]:
    """The label image of each frame of ``images`` (see the module docstring)."""
    if images.files is None:
        if len(masks) != len(images.array):
            raise InputError(
                folder,
                f"holds {len(masks)} label images ({masks[0].name} ... {masks[-1].name}) for "
                f"the {len(images.array)} frames of {images.source}",
            )
        return masks
    by_name = _index(masks, _base)
    if any(p.stem in by_name for p in images.files):
        how, keys, index = "name", [p.stem for p in images.files], by_name
    else:
        how, keys = "frame number", [_number(p.stem) for p in images.files]
        _index(list(images.files), lambda p: _number(p.stem))  # an image number taken twice
        index = _index(masks, lambda p: _number(_base(p)))
    matched = [index.get(k) for k in keys]
    used = set(matched)
    extra = [p for p in masks if p not in used]
    if extra:
        raise InputError(
            extra[0],
            f"matches no image of {images.source} by {how} (images {images.files[0].name} ... "
            f"{images.files[-1].name}); name label images after their image (IMAGE_masks.tif) "
            "or number them like the images",
        )
    for image, mask in zip(images.files, matched, strict=True):
        if mask is None:
            raise InputError(
                image,
                f"has no label image in {folder} (matched by {how}); every frame needs one, "
                "an empty one for a frame without cells",
            )
    return [m for m in matched if m is not None]


def _pieces(labels: np.ndarray) -> bool:
    """Whether some frame of a 0/1 stack has label 1 in several pieces (a binary mask)."""
    from skimage.measure import label

    return any(label(frame, background=0).max() > 1 for frame in labels)


def _describe(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} frames of {' x '.join(map(str, shape[1:]))} pixels"


def check_labels(labels: np.ndarray, source: str, images: Frames) -> np.ndarray:
    """``labels`` as an integer ``(T, [Z,] Y, X)`` stack of the movie's shape, or an error."""
    if labels.shape != images.shape and np.squeeze(labels).shape == np.squeeze(images.array).shape:
        labels = labels.reshape(images.shape)  # a singleton axis more or less (TZCYX stacks)
    if labels.shape != images.shape:
        raise InputError(
            source,
            f"masks of shape {labels.shape} ({_describe(labels.shape)}) do not match the images "
            f"{images.source} of shape {images.shape} ({_describe(images.shape)})",
        )
    kind = labels.dtype.kind
    if kind == "b" or (kind in "iu" and labels.size and labels.max() == 1 and _pieces(labels)):
        raise InputError(
            source,
            "is a binary mask (0/1), not instance labels: give each cell its own number "
            "(e.g. skimage.measure.label per frame)",
        )
    if kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise InputError(
                source, f"holds non-integer values ({labels.dtype}): masks must be label images"
            )
        log.warning("%s: %s labels read as integers", source, labels.dtype)
        labels = labels.astype(np.int64)
    elif kind not in "iu":
        raise InputError(source, f"must hold integer labels, found {labels.dtype} pixels")
    if labels.dtype.kind == "i" and labels.size and labels.min() < 0:
        t = int(np.flatnonzero((labels.reshape(len(labels), -1) < 0).any(axis=1))[0])
        raise InputError(source, f"holds negative labels (frame {t}); labels must be >= 0")
    return labels


def read_masks(source: str | Path | Any, images: Frames) -> np.ndarray:
    """The segmentation ``source`` as a checked label stack aligned with ``images``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir() and zarr_location(path) is None:
            files = match_frames(mask_files(path, images), images, path)
            return check_labels(read_files(files), str(path), images)
    masks = read_images(source)
    return check_labels(masks.array, masks.source, images)
