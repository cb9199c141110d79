"""The tiny 3D movies of the 3D tests: a synthetic movie with ground truth, and the same movie
as a microscope sampling z twice as coarsely records it."""

from __future__ import annotations

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
