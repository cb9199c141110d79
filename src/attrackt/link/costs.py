"""Costs of the linking problem, one small class per term (in the spirit of ``motile.costs``).

Each term adds itself to a :class:`Costs` holder: per-edge, per-hyper-edge, per-node appear and
per-node disappear costs. :func:`compute_costs` assembles the terms a :class:`LinkConfig` asks for.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from attrackt.errors import InputError
from attrackt.link.candidates import CandidateGraph
from attrackt.link.config import LinkConfig

logger = logging.getLogger(__name__)


@dataclass
class Costs:
    """Costs of selecting each edge / hyper-edge, and of each node starting or ending a track.

    ``appear_free`` / ``disappear_free`` mark nodes where that event is free (their cost is 0).
    """

    edge: np.ndarray  # (E,)
    hyper: np.ndarray  # (H,)
    appear: np.ndarray  # (N,)
    disappear: np.ndarray  # (N,)
    appear_free: np.ndarray  # (N,) bool
    disappear_free: np.ndarray  # (N,) bool

    @classmethod
    def zeros(cls, graph: CandidateGraph) -> Costs:
        n = graph.num_nodes
        return cls(
            np.zeros(graph.num_edges),
            np.zeros(graph.num_hyper),
            np.zeros(n),
            np.zeros(n),
            np.zeros(n, bool),
            np.zeros(n, bool),
        )


class Cost(ABC):
    """A term of the objective: :meth:`apply` adds it to ``costs``."""

    @abstractmethod
    def apply(self, graph: CandidateGraph, costs: Costs) -> None: ...


def normalise(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """``(v - mean) / std`` within each group (population std; a group with std 0 is only
    centred)."""
    out = np.zeros(len(values))
    for g in np.unique(groups):
        sel = groups == g
        v = values[sel]
        std = v.std()
        out[sel] = (v - v.mean()) / (std if std > 0 else 1.0)
    return out


@dataclass
class EdgeFeature(Cost):
    """``weight * feature`` on regular edges (``hyper=False``) or hyper-edges (``hyper=True``);
    ``feature`` is ``"distance"`` or ``"association"``; optionally normalised per sequence."""

    feature: str
    weight: float
    hyper: bool = False
    normalised: bool = True

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        kind = "hyper" if self.hyper else "edge"
        values = getattr(graph, f"{kind}_{self.feature}")
        if values is None or self.weight == 0:
            return
        if self.normalised:
            rows = graph.hyper_rows if self.hyper else graph.edge_rows
            values = normalise(values, graph.sequence[rows[:, 0]])
        getattr(costs, kind)[:] += self.weight * values


@dataclass
class EdgeBias(Cost):
    """A constant on every regular edge or every hyper-edge."""

    value: float
    hyper: bool = False

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        (costs.hyper if self.hyper else costs.edge)[:] += self.value


@dataclass
class DaughterSize(Cost):
    """``weight * |ln(d1 / d2)|`` on each division hyper-edge, ``d1`` and ``d2`` its two
    daughters' equivalent diameters: a cell divides into two of about its half, so a "division"
    into a cell of the parent's size and a small one (a cell coming into view beside it, a
    fragment) costs more. Never a reward, and not normalised: equal daughters cost nothing.
    Left out, and logged, where the detections have no ``area`` column. ``on_position``: the
    weight in the sequences that link on position alone."""

    weight: float
    on_position: float

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        if not (self.weight or self.on_position) or not graph.num_hyper:
            return
        if graph.diameter is None:
            logger.info("the detections have no area column: divisions are not priced by size")
            return
        weight = np.where(
            graph.on_position()[graph.hyper_rows[:, 0]], self.on_position, self.weight
        )
        daughters = np.maximum(graph.diameter[graph.hyper_rows[:, 1:]], 1e-9)
        costs.hyper[:] += weight * np.abs(np.log(daughters[:, 0] / daughters[:, 1]))


@dataclass
class FrameGap(Cost):
    """``weight`` per frame skipped by an edge or hyper-edge (``dt - 1``)."""

    weight: float

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        if self.weight:
            costs.edge += self.weight * (graph.edge_dt - 1)
            costs.hyper += self.weight * (graph.hyper_dt - 1)


def _neighbour_frame_empty(graph: CandidateGraph, step: int) -> np.ndarray:
    """Nodes whose frame ``t + step`` (same sequence) holds no detection."""
    t = graph.t - graph.t.min(initial=0)
    key = graph.sequence * (int(t.max(initial=0)) + 3) + t + 1
    present = np.unique(key)
    want = key + step
    pos = np.clip(np.searchsorted(present, want), 0, max(len(present) - 1, 0))
    return present[pos] != want if len(present) else np.ones(0, bool)


def near_border(
    graph: CandidateGraph,
    image_shape: Mapping[str, Sequence[int]] | Sequence[int],
    margin: float | Mapping[str, float],
) -> np.ndarray:
    """Nodes closer than ``margin`` (one, or one per sequence name) to the image border of their
    sequence, in the units of the graph's voxel size (pixels without one): in a thin 3D stack,
    the z border only counts as near as its planes are far apart."""
    pix = graph.pixel_positions()
    out = np.zeros(graph.num_nodes, bool)
    for code, name in enumerate(graph.sequence_names):
        shape = image_shape.get(name) if isinstance(image_shape, Mapping) else image_shape
        if shape is None:
            raise InputError("detections meta", f"no image_shape for sequence {name!r}")
        shape = np.asarray(shape, np.float64)[-pix.shape[1] :]
        sel = graph.sequence == code
        p = pix[sel]
        dist = (np.minimum(p, shape - 1 - p) * graph.scale).min(axis=1)
        out[sel] = dist < (margin[name] if isinstance(margin, Mapping) else margin)
    return out


def border_nodes(
    graph: CandidateGraph, config: LinkConfig, meta: Mapping[str, Any] | None = None
) -> np.ndarray | None:
    """The nodes whose track may start or end for free at the image border (``None``: none):
    within ``config.border_margin`` of it or, without one, within ``config.border_cells``
    median cell diameters of their sequence (left out, and logged, where the detections have
    no ``area`` or ``meta`` no ``image_shape``)."""
    shape = (meta or {}).get("image_shape")
    if config.border_margin is not None:
        if shape is None:
            raise InputError(
                "detections meta", "border_margin needs meta['image_shape'] (per sequence or one)"
            )
        return near_border(graph, shape, config.border_margin)
    if not config.border_cells:
        return None
    if shape is None or graph.diameter is None:
        missing = "an image_shape in their meta" if shape is None else "an area column"
        logger.info("the detections have no %s: no free track starts at the border", missing)
        return None
    margin = {
        name: config.border_cells * float(np.median(graph.diameter[graph.sequence == code]))
        for code, name in enumerate(graph.sequence_names)
    }
    return near_border(graph, shape, margin)


@dataclass
class Appear(Cost):
    """``constant`` (one, or one per node) for each node that starts a track, free where the
    previous frame of its sequence is empty (the first frame, for one) and on ``border`` nodes."""

    constant: float | np.ndarray
    border: np.ndarray | None = None

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        free = _neighbour_frame_empty(graph, -1)
        if self.border is not None:
            free |= self.border
        costs.appear_free[:] = free
        costs.appear[:] = np.where(free, 0.0, self.constant)


@dataclass
class Disappear(Cost):
    """``constant`` (one, or one per node) for each node that ends a track, free where the next
    frame of its sequence is empty (the last frame, for one) and on ``border`` nodes."""

    constant: float | np.ndarray
    border: np.ndarray | None = None

    def apply(self, graph: CandidateGraph, costs: Costs) -> None:
        free = _neighbour_frame_empty(graph, +1)
        if self.border is not None:
            free |= self.border
        costs.disappear_free[:] = free
        costs.disappear[:] = np.where(free, 0.0, self.constant)


def _start_or_end(graph: CandidateGraph, cost: float, on_position: float) -> float | np.ndarray:
    """``cost`` per node, ``on_position`` on the nodes of sequences that link on position alone
    (one number where that makes no difference)."""
    if on_position == cost:
        return cost
    return np.where(graph.on_position(), on_position, cost)


def cost_terms(
    graph: CandidateGraph, config: LinkConfig, meta: Mapping[str, Any] | None = None
) -> list[Cost]:
    """The terms ``config`` asks for (``meta["image_shape"]`` is needed with ``border_margin``)."""
    border = border_nodes(graph, config, meta)
    norm = config.normalise
    config = config.with_position_costs()
    return [
        EdgeFeature("distance", config.distance_weight, hyper=False, normalised=norm),
        EdgeFeature("association", config.association_weight, hyper=False, normalised=norm),
        EdgeBias(config.edge_bias, hyper=False),
        EdgeFeature("distance", config.hyper_distance_weight, hyper=True, normalised=norm),
        EdgeFeature("association", config.hyper_association_weight, hyper=True, normalised=norm),
        EdgeBias(config.hyper_bias, hyper=True),
        DaughterSize(config.daughter_size_weight, config.position_daughter_size_weight),
        FrameGap(config.gap_weight),
        Appear(_start_or_end(graph, config.appear, config.position_appear), border),
        Disappear(_start_or_end(graph, config.disappear, config.position_disappear), border),
    ]


def compute_costs(
    graph: CandidateGraph, config: LinkConfig, meta: Mapping[str, Any] | None = None
) -> Costs:
    """All costs of ``graph`` under ``config``."""
    costs = Costs.zeros(graph)
    for term in cost_terms(graph, config, meta):
        term.apply(graph, costs)
    return costs


# The weights of :class:`LinkConfig` that the costs are linear in (and that can be learned).
WEIGHTS = (
    "distance_weight",
    "association_weight",
    "edge_bias",
    "hyper_distance_weight",
    "hyper_association_weight",
    "hyper_bias",
    "daughter_size_weight",
    "position_daughter_size_weight",
    "appear",
    "disappear",
    "position_appear",
    "position_disappear",
)


def cost_basis(
    graph: CandidateGraph,
    config: LinkConfig,
    names: Sequence[str] = WEIGHTS,
    meta: Mapping[str, Any] | None = None,
) -> tuple[Costs, list[Costs]]:
    """The costs as a linear function of the weights ``names``: ``(base, units)`` such that
    ``compute_costs(graph, config)`` equals ``base + sum(getattr(config, n) * units[i])``.

    ``base`` holds the costs with those weights at 0; ``units[i]`` the costs with weight
    ``names[i]`` at 1 and every other term off (its feature per edge, hyper-edge or node);
    ``appear`` prices the starts of sequences with associations, ``position_appear`` those of
    sequences on position alone (spelled out first where ``None``), and likewise the ends and
    the price of unequal daughters.
    """
    unknown = sorted(set(names) - set(WEIGHTS))
    if unknown:
        raise InputError("link config", f"no such cost weight(s) {unknown}; known: {WEIGHTS}")
    config = config.with_position_costs()
    base = compute_costs(graph, replace(config, **dict.fromkeys(names, 0.0)), meta)
    off = replace(config, **dict.fromkeys(WEIGHTS, 0.0), gap_weight=0.0)
    units = [compute_costs(graph, replace(off, **{name: 1.0}), meta) for name in names]
    return base, units
