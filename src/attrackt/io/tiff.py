"""Per-frame TIFF folders: list them in frame order, read them fast (threads), write them.

A frame file is a prefix followed by the frame number: ``t000.tif``, ``man_track012.tif``,
``mask0999.tif``, ``man_seg005.tif``. Frames are ordered by their number, never by the name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import tifffile

from attrackt.errors import InputError

_WORKERS = min(8, 2 * (os.cpu_count() or 1))


def frame_files(folder: str | Path, prefix: str) -> dict[int, list[Path]]:
    """Frame number -> the files ``{prefix}{number}.tif[f]`` in ``folder`` (usually one each).

    A frame with two files (``t1.tif`` and ``t001.tif``) keeps both so that a caller can report it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such folder")
    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.tiff?$")
    frames: dict[int, list[Path]] = {}
    for path in folder.iterdir():
        match = pattern.match(path.name)
        if match and path.is_file():
            frames.setdefault(int(match.group(1)), []).append(path)
    return dict(sorted((t, sorted(paths)) for t, paths in frames.items()))


def frame_name(prefix: str, t: int, n_frames: int) -> str:
    """The CTC file name of frame ``t``: 3 digits, 4 when the movie has 1000 frames or more."""
    width = 4 if n_frames >= 1000 else 3
    return f"{prefix}{t:0{width}d}.tif"


def read_tiff(path: str | Path) -> np.ndarray:
    """Read one TIFF; an unreadable file raises :class:`InputError` naming it."""
    try:
        return tifffile.imread(path)
    except Exception as err:  # tifffile raises many kinds for broken files
        raise InputError(path, f"not a readable TIFF ({type(err).__name__}: {err})") from err


def read_frames(paths: Sequence[str | Path], workers: int = _WORKERS) -> np.ndarray:
    """Stack one TIFF per frame into a ``(T, [Z,] Y, X)`` array, reading in threads.

    Every frame must have the shape of the first; a frame of another dtype is cast when that
    loses nothing. Raises :class:`InputError` naming the first file that is unreadable or differs.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise InputError(None, "no frames to read")
    first = read_tiff(paths[0])
    out = np.empty((len(paths), *first.shape), dtype=first.dtype)
    out[0] = first

    def read_into(i: int) -> None:
        path = paths[i]
        try:
            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                shape, dtype = tuple(series.shape), np.dtype(series.dtype)
                if shape != first.shape:
                    raise InputError(
                        path, f"shape {shape} differs from {paths[0].name}'s {first.shape}"
                    )
                if dtype == out.dtype:
                    tif.asarray(out=out[i])
                elif np.can_cast(dtype, out.dtype, "safe"):
                    out[i] = tif.asarray()
                else:
                    raise InputError(
                        path, f"dtype {dtype} differs from {paths[0].name}'s {out.dtype}"
                    )
        except InputError:
            raise
        except Exception as err:
            raise InputError(path, f"not a readable TIFF ({type(err).__name__}: {err})") from err

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(read_into, range(1, len(paths))))
    return out


def write_frames(
    folder: str | Path,
    prefix: str,
    stack: np.ndarray,
    compression: str | None = "zlib",
    workers: int = _WORKERS,
) -> list[Path]:
    """Write ``stack[t]`` to ``folder/{prefix}{t:03d}.tif`` (CTC names), in threads."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / frame_name(prefix, t, len(stack)) for t in range(len(stack))]

    def write(t: int) -> None:
        tifffile.imwrite(paths[t], stack[t], compression=compression)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(write, range(len(stack))))
    return paths


_FRAME_PREFIXES = ("t", "man_track", "mask", "man_seg")  # images, TRA, RES, SEG


def read_movie(path: str | Path) -> np.ndarray:
    """(T, [Z,] Y, X) from a CTC frame folder (images, TRA, RES or SEG), a .tif or a .npy stack."""
    from attrackt.io.checks import check_frame_files, raise_on_errors

    path = Path(path)
    if path.is_dir():
        for prefix in _FRAME_PREFIXES:
            frames = frame_files(path, prefix)
            if frames:
                raise_on_errors(check_frame_files(frames, path, prefix))
                return read_frames([paths[0] for paths in frames.values()])
        raise InputError(path, f"holds no frame files ({', '.join(_FRAME_PREFIXES)}NNN.tif)")
    if not path.is_file():
        raise InputError(path, "no such file or folder")
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if path.suffix in (".tif", ".tiff"):
        return read_tiff(path)
    raise InputError(path, "expected a CTC frame folder, a .tif stack or a .npy stack")
