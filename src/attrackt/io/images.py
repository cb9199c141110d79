"""Movies and label stacks as people have them: frame folders, single stacks, zarr, napari layers.

A source is one of

- a folder of one image per frame: CTC ``tNNN.tif``, or any ``.tif``/``.tiff``/``.png`` names,
  ordered naturally (``img2`` before ``img10``);
- a single ``(T, [Z,] Y, X)`` stack: ``.tif``/``.tiff``, ``.npy``, or a zarr array (v2 or v3),
  given as ``store.zarr`` or ``store.zarr/path/to/array`` (an OME-Zarr image or labels group
  reads its full-resolution level);
- an array in memory, or a napari layer (its ``data``; a multiscale layer's first level).

:func:`read_images` keeps the frame files of a folder so that label images can be matched to
them (:mod:`attrackt.io.masks`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.errors import InputError
from attrackt.io.tiff import frame_files, read_frames, read_movie, read_tiff

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".tif", ".tiff", ".png")
#: the stems of files Cellpose writes beside the images: never frames of the movie
CELLPOSE_OUTPUTS = ("_cp_masks", "_masks", "_cp_outlines", "_outlines", "_flows", "_cp_output")


@dataclass(frozen=True)
class Frames:
    """A movie ``(T, [Z,] Y, X)``, what it was read from, and its frame files (folders only)."""

    array: np.ndarray
    source: str
    files: tuple[Path, ...] | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape)

    @property
    def path(self) -> Path | None:
        """The file or folder the movie was read from (``None`` for an array in memory)."""
        return None if self.source.startswith("<") else Path(self.source)


def natural_key(path: Path) -> list:
    """Sort key of a file name with its numbers compared as numbers (``t2`` < ``t10``)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def image_files(folder: Path) -> list[Path]:
    """The ``.tif``/``.tiff``/``.png`` files of ``folder``, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    return sorted(files, key=natural_key)


def read_image(path: Path) -> np.ndarray:
    """One TIFF or PNG; an unreadable file raises :class:`InputError` naming it."""
    if path.suffix.lower() != ".png":
        return read_tiff(path)
    import imageio.v3 as iio

    try:
        return np.asarray(iio.imread(path))
    except Exception as err:  # imageio raises many kinds for broken files
        raise InputError(path, f"not a readable PNG ({type(err).__name__}: {err})") from err


def read_files(paths: list[Path]) -> np.ndarray:
    """One image per path stacked along a new first axis; every frame must have one shape."""
    if all(p.suffix.lower() != ".png" for p in paths):
        return read_frames(paths)
    first = read_image(paths[0])
    out = np.empty((len(paths), *first.shape), first.dtype)
    out[0] = first
    for i, path in enumerate(paths[1:], 1):
        frame = read_image(path)
        if frame.shape != first.shape:
            problem = f"shape {frame.shape} differs from {paths[0].name}'s {first.shape}"
            raise InputError(path, problem)
        out[i] = frame
    return out


def as_array(data: Any) -> np.ndarray:
    """An array from an array-like or a napari layer (its ``data``; multiscale: level 0)."""
    if hasattr(data, "data") and not isinstance(data, np.ndarray):
        data = data.data
    if isinstance(data, (list, tuple)) and data and hasattr(data[0], "shape"):
        data = data[0]  # a multiscale pyramid: full resolution first
    array = np.asarray(data)
    if array.dtype == object:
        raise InputError("<array>", f"expected a numeric array or napari layer, got {type(data)}")
    return array


def zarr_location(path: Path) -> tuple[Path, str] | None:
    """``(store, path inside it)`` when ``path`` is or lies inside a zarr store, else ``None``."""
    parts = path.parts
    for i, part in enumerate(parts):
        if part.lower().endswith(".zarr"):
            return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])
    markers = ("zarr.json", ".zarray", ".zgroup")
    if path.is_dir() and any((path / m).is_file() for m in markers):
        return path, ""
    return None


def read_zarr(store: Path, inner: str = "") -> np.ndarray:
    """The array at ``inner`` of the zarr store ``store`` (v2 or v3), read into memory.

    A group holding one array, or an OME-Zarr multiscale group, stands for that array (the
    full-resolution level); another group is an error listing its arrays.
    """
    import zarr

    where = f"{store}/{inner}" if inner else str(store)
    if not store.is_dir():
        raise InputError(store, "no such zarr store")
    try:
        node = zarr.open(str(store), mode="r", path=inner or None)
    except Exception as err:  # zarr raises its own kinds for a missing path or bad metadata
        raise InputError(where, f"not a readable zarr array ({type(err).__name__}: {err})") from err
    if hasattr(node, "array_keys"):  # a group
        multiscales = node.attrs.get("multiscales")
        arrays = sorted(node.array_keys())
        if multiscales:
            level = multiscales[0]["datasets"][0]["path"]
        elif len(arrays) == 1:
            level = arrays[0]
        else:
            inside = ", ".join(arrays) if arrays else "none"
            raise InputError(
                where, f"is a zarr group; name one of its arrays ({inside}) as {where}/NAME"
            )
        return read_zarr(store, f"{inner}/{level}".strip("/"))
    return np.asarray(node[...])


def read_stack(path: Path) -> np.ndarray:
    """A single ``(T, [Z,] Y, X)`` stack: ``.tif``/``.tiff``, ``.npy`` or a zarr array."""
    zarr_parts = zarr_location(path)
    if zarr_parts is not None:
        return read_zarr(*zarr_parts)
    if not path.exists():
        raise InputError(path, "no such file or folder")
    if path.suffix.lower() in (".tif", ".tiff", ".npy"):
        return np.asarray(read_movie(path))
    raise InputError(path, "expected a frame folder, a .tif or .npy stack, or a zarr array")


def read_images(source: str | Path | Any) -> Frames:
    """A movie from a folder, a stack or an array (see the module docstring)."""
    if not isinstance(source, (str, Path)):
        return Frames(as_array(source), f"<{type(source).__name__}>")
    path = Path(source)
    if not path.is_dir() or zarr_location(path) is not None:
        return Frames(read_stack(path), str(path))
    ctc = frame_files(path, "t")
    if ctc:  # read_movie checks the CTC numbering
        return Frames(np.asarray(read_movie(path)), str(path), tuple(p[0] for p in ctc.values()))
    files = [
        p
        for p in image_files(path)
        if not any(p.stem.lower().endswith(s) for s in CELLPOSE_OUTPUTS)
    ]
    if not files:
        raise InputError(path, f"holds no images ({', '.join(IMAGE_SUFFIXES)} files)")
    return Frames(read_files(files), str(path), tuple(files))
