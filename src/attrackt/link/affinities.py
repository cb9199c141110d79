"""Association scores that need no trained model: from positions, or from the appearance
embedding's distance. They are the baselines a learned model is compared with.

Both score exactly the linker's candidate links (:func:`~attrackt.link.candidates.
candidate_links`: each detection and its ``k`` nearest neighbours in earlier frames).
"""

from __future__ import annotations

import numpy as np

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link.candidates import candidate_links
from attrackt.link.config import LinkConfig


def _rows(detections: Detections, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    index = detections.rows_of(pairs.reshape(-1)).reshape(pairs.shape)
    return index[:, 0], index[:, 1]


def candidate_softmax(child: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """``exp(logits)`` normalised over the candidates of each child (rows grouped by ``child``)."""
    if not len(child):
        return np.zeros(0)
    order = np.argsort(child, kind="stable")
    sorted_child = child[order]
    starts = np.flatnonzero(np.concatenate([[True], sorted_child[1:] != sorted_child[:-1]]))
    top = np.maximum.reduceat(logits[order], starts)
    sizes = np.diff(np.concatenate([starts, [len(order)]]))
    shifted = np.exp(logits[order] - np.repeat(top, sizes))
    total = np.add.reduceat(shifted, starts)
    out = np.empty_like(shifted)
    out[order] = shifted / np.repeat(total, sizes)
    return out


def position_associations(
    detections: Detections, config: LinkConfig | None = None, scale: float = 1.0
) -> Associations:
    """Position only: ``softmax(-d / (scale * m))`` over each detection's candidate parents,
    where ``d`` is the distance and ``m`` the median distance of a detection to its nearest
    candidate parent (so ``scale`` is in units of the typical step)."""
    config = config or LinkConfig()
    pairs = candidate_links(detections, config)
    if not len(pairs):
        return Associations()
    parent, child = _rows(detections, pairs)
    pos = detections.positions(config.voxel_size)
    dist = np.linalg.norm(pos[parent] - pos[child], axis=1)
    nearest = np.full(len(detections), np.inf)
    np.minimum.at(nearest, child, dist)
    typical = float(np.median(nearest[np.isfinite(nearest)]))
    width = max(scale * typical, 1e-6)
    score = candidate_softmax(child, -dist / width)
    dt = detections.times[child] - detections.times[parent]
    return Associations.from_arrays(
        pairs[:, 0], pairs[:, 1], score, dt, meta={"source": "position", "scale": scale}
    )


def embedding_associations(
    detections: Detections,
    config: LinkConfig | None = None,
    embedding: str = "embedding",
    kind: str = "distance",
) -> Associations:
    """The appearance embedding on the candidate links.

    ``kind="distance"``: the raw Euclidean embedding distance (the method's "+ AE embedding"
    baseline: link with ``association_weight=+1``, a distance adds cost); ``"affinity"``:
    ``exp(-d / median d)`` in (0, 1] (link with the usual negative weight).
    """
    if kind not in ("distance", "affinity"):
        raise InputError("embedding associations", f"kind must be distance or affinity: {kind!r}")
    if embedding not in detections.vectors:
        raise InputError(
            "detections",
            f"carry no {embedding!r} vectors (they have {sorted(detections.vectors)}); "
            "run `attrackt embed` first",
        )
    config = config or LinkConfig()
    pairs = candidate_links(detections, config)
    if not len(pairs):
        return Associations()
    parent, child = _rows(detections, pairs)
    z = detections.vectors[embedding].astype(np.float64)
    dist = np.linalg.norm(z[parent] - z[child], axis=1)
    score = dist if kind == "distance" else np.exp(-dist / max(float(np.median(dist)), 1e-12))
    dt = detections.times[child] - detections.times[parent]
    return Associations.from_arrays(
        pairs[:, 0], pairs[:, 1], score, dt, meta={"source": f"embedding {kind}"}
    )
