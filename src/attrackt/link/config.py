"""The one configuration object of the linking stage."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any, Literal

from attrackt.errors import InputError

SOLVERS = ("fast", "motile", "greedy")
_COSTS = (
    "distance_weight",
    "association_weight",
    "edge_bias",
    "hyper_distance_weight",
    "hyper_association_weight",
    "hyper_bias",
    "daughter_size_weight",
    "gap_weight",
    "appear",
    "disappear",
)


@dataclass(frozen=True)
class LinkConfig:
    """How to build the candidate graph, price it and solve it.

    The candidate graph and the form of the costs follow the method: the 10 nearest neighbours
    backwards in time, division hyper-edges, features normalised per sequence (mean/std, regular
    and hyper-edges apart), distance weight 1, bias 0, every detection pinned (kept in the
    result). The weights the method sets to -1 (association: an affinity lowers the cost) and 1
    (appear, disappear) are those chosen on the training movies of the accuracy benchmark
    (``bench/link_weights.py``): association weight -0.5, appear and disappear 0.75.

    An edge costs ``distance_weight * norm(distance) + association_weight * norm(association)
    + edge_bias + gap_weight * (dt - 1)``; a division hyper-edge (parent; two children) has its
    own ``hyper_*`` weights over the distance from the parent to the children's midpoint and the
    mean of the two association scores, plus ``daughter_size_weight * |ln(d1 / d2)|`` over its
    daughters' equivalent diameters (from ``area``; a cell divides into two of about its half,
    so a parent "dividing" into a cell of its own size and a small one entering the view is
    priced up; chosen on the training movies, ``bench/link_weights.py``). Appearing costs
    ``appear`` except where the previous frame of the sequence is empty (the first frame, for
    one) or near the image border, where cells come into view; disappearing likewise with the
    next frame, and where they leave it.
    Near the border means within ``border_cells`` typical cell diameters (the median
    equivalent diameter of the sequence's detections, from their ``area``) or, where
    ``border_margin`` is given, within that distance; ``border_cells = None`` and no
    ``border_margin``: nowhere. The default border, one cell diameter, was chosen on the
    training movies of the accuracy benchmark (``bench/link_weights.py``); without an ``area``
    column or ``meta["image_shape"]`` it is left out (logged). A sequence that links on position
    alone (no associations given for it, or the guard turned them off) pays ``position_appear``
    and ``position_disappear`` instead (``None``: ``appear``, ``disappear``): 0.5, chosen there
    too, where appear 1 left cells without a parent rather than start a track; and it prices
    unequal daughters at ``position_daughter_size_weight`` (``None``: ``daughter_size_weight``),
    chosen there as well. With ``guard`` (the default) associations count only in the sequences
    where the label-free guard passes them (:mod:`attrackt.link.guard`); elsewhere those
    sequences link on position alone.

    Every cost setting must be finite, and ``appear``/``disappear`` non-negative: motile 1.0.1
    (the ``"motile"`` solver) lets a cell with a parent among two or more candidates count as
    appearing too (its constraint is ``s - a >= 0``, not ``s - |in| a >= 0``), and likewise
    for disappearing. A positive cost never takes that; a negative one does, and motile then
    reports a wrong optimum (on 50 of 50 random problems with appear in (-2, 0)).

    ``voxel_size`` (``Z,Y,X`` or ``Y,X``, any unit: :mod:`attrackt.voxels`) multiplies the
    positions before any distance is taken (neighbours, costs, the guard); ``max_distance`` and
    ``border_margin`` are in its units.
    """

    # candidate graph
    k: int = 10
    max_distance: float | None = None
    max_gap: int = 1
    divisions: bool = True
    voxel_size: tuple[float, ...] | None = None
    # costs
    distance_weight: float = 1.0
    association_weight: float = -0.5
    edge_bias: float = 0.0
    hyper_distance_weight: float = 1.0
    hyper_association_weight: float = -0.5
    hyper_bias: float = 0.0
    daughter_size_weight: float = 1.0
    position_daughter_size_weight: float | None = 1.0
    gap_weight: float = 0.0
    appear: float = 0.75
    disappear: float = 0.75
    position_appear: float | None = 0.5
    position_disappear: float | None = 0.5
    normalise: bool = True
    border_cells: float | None = 1.0
    border_margin: float | None = None
    # solving
    pin_nodes: bool = True
    guard: bool = True
    solver: Literal["fast", "motile", "greedy"] = "fast"
    time_limit: float | None = None
    mip_gap: float = 0.0
    threads: int = 1
    on_time_limit: Literal["raise", "warn"] = "raise"
    backend: Literal["auto", "scip", "gurobi"] = "auto"

    def __post_init__(self) -> None:
        def bad(problem: str) -> InputError:
            return InputError("link config", problem)

        optional = [
            n for n in ("position_appear", "position_disappear") if getattr(self, n) is not None
        ]
        sizes = ["daughter_size_weight"] + [
            n for n in ("position_daughter_size_weight",) if getattr(self, n) is not None
        ]
        infinite = [
            name for name in (*_COSTS, *optional, *sizes) if not math.isfinite(getattr(self, name))
        ]
        if infinite:
            raise bad(f"costs must be finite numbers: {', '.join(infinite)}")
        starts = ("appear", "disappear", *optional)
        negative = [name for name in starts if getattr(self, name) < 0]
        if negative:
            raise bad(
                f"{' and '.join(negative)} must be >= 0 (a track's start or end cannot earn a "
                "reward; motile's solver would report a wrong optimum), got "
                + ", ".join(f"{name}={getattr(self, name)}" for name in negative)
            )
        sizes = [name for name in sizes if getattr(self, name) < 0]
        if sizes:
            raise bad(
                f"{' and '.join(sizes)} must be >= 0 (unequal daughters cannot earn a reward), "
                "got " + ", ".join(f"{name}={getattr(self, name)}" for name in sizes)
            )
        if self.k < 1:
            raise bad(f"k must be at least 1, got {self.k}")
        if self.max_gap < 1:
            raise bad(f"max_gap must be at least 1, got {self.max_gap}")
        if self.max_distance is not None and not self.max_distance > 0:
            raise bad(f"max_distance must be positive, got {self.max_distance}")
        if self.voxel_size is not None:
            if any(not 0 < s < math.inf for s in self.voxel_size):
                raise bad(f"voxel_size must be positive, got {self.voxel_size}")
            object.__setattr__(self, "voxel_size", tuple(float(s) for s in self.voxel_size))
        if self.border_cells is not None and not 0 <= self.border_cells < math.inf:
            raise bad(f"border_cells must be >= 0, got {self.border_cells}")
        if self.border_margin is not None and not 0 <= self.border_margin < math.inf:
            raise bad(f"border_margin must be >= 0, got {self.border_margin}")
        if self.solver not in SOLVERS:
            raise bad(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        if self.time_limit is not None and not self.time_limit > 0:
            raise bad(f"time_limit must be positive seconds, got {self.time_limit}")
        if not 0 <= self.mip_gap < 1:
            raise bad(f"mip_gap must be in [0, 1), got {self.mip_gap}")
        if self.threads < 1:
            raise bad(f"threads must be at least 1, got {self.threads}")
        if self.on_time_limit not in ("raise", "warn"):
            raise bad(f"on_time_limit must be 'raise' or 'warn', got {self.on_time_limit!r}")
        if self.backend not in ("auto", "scip", "gurobi"):
            raise bad(f"backend must be 'auto', 'scip' or 'gurobi', got {self.backend!r}")

    def with_position_costs(self) -> LinkConfig:
        """The same costs with ``position_appear``/``position_disappear`` and
        ``position_daughter_size_weight`` spelled out (``None`` becomes ``appear``/``disappear``
        and ``daughter_size_weight``)."""
        sizes = self.position_daughter_size_weight
        return replace(
            self,
            position_appear=self.appear if self.position_appear is None else self.position_appear,
            position_disappear=(
                self.disappear if self.position_disappear is None else self.position_disappear
            ),
            position_daughter_size_weight=self.daughter_size_weight if sizes is None else sizes,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
