"""A tiny CTC movie (2D or 3D) with a division and a gap, written with tifffile alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

# label, start, end, parent: 1 divides into 4 and 5; 3 vanishes for frame 2 and returns as 6.
# Labels are numbered by (start, label), as Tracks.tracklets numbers tracks.
TABLE = pd.DataFrame(
    [(1, 0, 2, 0), (2, 0, 5, 0), (3, 0, 1, 0), (4, 3, 5, 1), (5, 3, 5, 1), (6, 3, 5, 3)],
    columns=["label", "start", "end", "parent"],
)
N_FRAMES = 6


def box(label: int, t: int, ndim: int) -> tuple[slice, ...]:
    """Where track ``label`` is in frame ``t``: a 2x3 (x2 in z) box in its own row band."""
    y, x = 4 * (label - 1) + 1, 2 + 5 * t
    yx = (slice(y, y + 2), slice(x, x + 3))
    return yx if ndim == 2 else (slice(label % 3, label % 3 + 2), *yx)


def tiny_movie(ndim: int = 2, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """``(images uint16, masks uint16 labelled by track, track table)``."""
    shape = (24, 40) if ndim == 2 else (5, 24, 40)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 100, (N_FRAMES, *shape)).astype(np.uint16)
    masks = np.zeros((N_FRAMES, *shape), np.uint16)
    for label, start, end, _ in TABLE.itertuples(index=False):
        for t in range(start, end + 1):
            masks[t][box(label, t, ndim)] = label
            images[t][box(label, t, ndim)] += 1000
    return images, masks, TABLE.copy()


def write_raw_ctc(
    root: Path, images: np.ndarray, masks: np.ndarray, table: pd.DataFrame, name: str = "01"
) -> Path:
    """Write a CTC sequence with tifffile (independent of attrackt's writer); return ``root``."""
    (root / name).mkdir(parents=True)
    tra = root / f"{name}_GT" / "TRA"
    tra.mkdir(parents=True)
    for t in range(len(images)):
        tifffile.imwrite(root / name / f"t{t:03d}.tif", images[t])
        tifffile.imwrite(tra / f"man_track{t:03d}.tif", masks[t])
    lines = [" ".join(map(str, row)) for row in table.itertuples(index=False)]
    (tra / "man_track.txt").write_text("\n".join(lines) + "\n")
    return root
