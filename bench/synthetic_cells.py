"""Random cell positions over time (small motion, divisions), for linking benchmarks."""

from __future__ import annotations

import numpy as np

from attrackt.data import Detections


def simulate_cells(
    num_detections: int,
    cells_per_frame: int = 300,
    shape: tuple[float, float] = (700.0, 1100.0),
    step: float = 4.0,
    division_rate: float = 0.02,
    daughter_offset: float = 8.0,
    seed: int = 0,
) -> Detections:
    """``num_detections`` 2D detections of about ``cells_per_frame`` cells per frame: each cell
    moves by a Gaussian step per frame, divides at ``division_rate`` (daughters
    ``daughter_offset`` apart), dies at a rate that holds the population near
    ``cells_per_frame``, or leaves the field; new cells enter at random places."""
    rng = np.random.default_rng(seed)
    size = np.asarray(shape)
    pos = rng.uniform(0, 1, (cells_per_frame, 2)) * size
    frames_t, frames_p = [], []
    t = 0
    total = 0
    while total < num_detections:
        frames_t.append(np.full(len(pos), t))
        frames_p.append(pos)
        total += len(pos)
        t += 1
        fate = rng.uniform(size=len(pos))
        death_rate = division_rate * len(pos) / cells_per_frame
        divide = fate < division_rate
        alive = fate >= division_rate + death_rate
        angle = rng.uniform(0, 2 * np.pi, int(divide.sum()))
        offset = daughter_offset / 2 * np.stack([np.sin(angle), np.cos(angle)], axis=1)
        parents = pos[divide]
        nxt = np.concatenate([pos[alive], parents + offset, parents - offset])
        nxt = nxt + rng.normal(0, step, nxt.shape)
        inside = ((nxt >= 0) & (nxt < size)).all(axis=1)
        nxt = nxt[inside]
        missing = max(cells_per_frame - len(nxt), 0)
        enter = rng.poisson(0.2 * missing)
        pos = np.concatenate([nxt, rng.uniform(0, 1, (enter, 2)) * size])
    t_all = np.concatenate(frames_t)[:num_detections]
    p_all = np.concatenate(frames_p)[:num_detections]
    return Detections.from_arrays(
        t_all, p_all, sequence="synthetic", meta={"image_shape": {"synthetic": list(shape)}}
    )
