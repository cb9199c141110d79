"""The linking problem every solver solves, its solutions, and the one objective function.

The model is the method's (motile with division hyper-edges): choose edges and hyper-edges so
that each node has at most one selected incoming link (a hyper-edge counts for both children)
and at most one selected outgoing link (a hyper-edge counts once, so a division happens only
through a hyper-edge); a node that is selected and has no incoming link *appears*, one with no
outgoing link *disappears*. The objective is the sum of the selected links' costs plus the appear
and disappear costs, with no constant: exactly what motile's solver minimises.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attrackt.errors import SolverError
from attrackt.link.candidates import CandidateGraph
from attrackt.link.config import LinkConfig
from attrackt.link.costs import Costs

logger = logging.getLogger(__name__)

FREE, OFF, ON = -1, 0, 1


@dataclass
class LinkProblem:
    """A candidate graph, its costs, and what is fixed in advance.

    ``edge_pin`` / ``hyper_pin`` hold -1 (free), 0 (forced out) or 1 (forced in);
    ``node_pinned`` marks nodes that must be selected.
    """

    graph: CandidateGraph
    costs: Costs
    edge_pin: np.ndarray
    hyper_pin: np.ndarray
    node_pinned: np.ndarray

    @classmethod
    def free(cls, graph: CandidateGraph, costs: Costs, pin_nodes: bool = True) -> LinkProblem:
        """Nothing fixed but (optionally) every node."""
        return cls(
            graph,
            costs,
            np.full(graph.num_edges, FREE, np.int8),
            np.full(graph.num_hyper, FREE, np.int8),
            np.full(graph.num_nodes, pin_nodes, bool),
        )


@dataclass
class Selection:
    """Which nodes, edges and hyper-edges a solution keeps."""

    nodes: np.ndarray  # (N,) bool
    edges: np.ndarray  # (E,) bool
    hyper: np.ndarray  # (H,) bool

    def links(self, graph: CandidateGraph) -> np.ndarray:
        """``(M, 2)`` parent -> child detection ids (a hyper-edge gives two links)."""
        h = graph.hyper_rows[self.hyper]
        rows = np.concatenate([graph.edge_rows[self.edges], h[:, [0, 1]], h[:, [0, 2]]])
        return graph.ids[rows]


@dataclass
class Solution:
    """A solver's answer: the selection, its objective, a proven lower bound and how long."""

    selection: Selection
    objective: float
    bound: float
    status: str  # "optimal", "time_limit", "heuristic", ...
    solver: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Relative optimality gap ``(objective - bound) / |objective|`` (0 when proven optimal;
        ``nan`` without a bound)."""
        if not math.isfinite(self.bound):
            return math.nan
        scale = max(abs(self.objective), 1e-10)
        diff = self.objective - self.bound
        return diff / scale if diff > 1e-9 * max(scale, 1.0) else 0.0  # not summation noise


def handle_time_limit(solution: Solution, config: LinkConfig) -> None:
    """A solution not proven optimal: raise :class:`SolverError` or warn, as configured."""
    message = (
        f"{solution.solver}: time limit of {config.time_limit} s reached before proving "
        f"optimality: objective {solution.objective:.6g}, bound {solution.bound:.6g}, "
        f"gap {solution.gap:.3%}"
    )
    if config.on_time_limit == "raise":
        raise SolverError(message)
    logger.warning("%s; returning the best solution found", message)


def degrees(graph: CandidateGraph, selection: Selection) -> tuple[np.ndarray, np.ndarray]:
    """Selected incoming and outgoing links per node (a hyper-edge counts once as outgoing)."""
    n = graph.num_nodes
    e = graph.edge_rows[selection.edges]
    h = graph.hyper_rows[selection.hyper]
    indeg = np.bincount(np.concatenate([e[:, 1], h[:, 1], h[:, 2]]), minlength=n)
    outdeg = np.bincount(np.concatenate([e[:, 0], h[:, 0]]), minlength=n)
    return indeg, outdeg


def objective(graph: CandidateGraph, costs: Costs, selection: Selection) -> float:
    """The objective of any selection, exactly as motile sums it (no constant term)."""
    indeg, outdeg = degrees(graph, selection)
    nodes = selection.nodes
    total = costs.edge[selection.edges].sum() + costs.hyper[selection.hyper].sum()
    total += costs.appear[nodes & (indeg == 0)].sum()
    total += costs.disappear[nodes & (outdeg == 0)].sum()
    return float(total)


def violations(problem: LinkProblem, selection: Selection) -> list[str]:
    """Every constraint a selection breaks (empty for a feasible one)."""
    graph = problem.graph
    indeg, outdeg = degrees(graph, selection)
    out = []
    if (indeg > 1).any():
        out.append(f"{int((indeg > 1).sum())} node(s) with more than one parent")
    if (outdeg > 1).any():
        out.append(f"{int((outdeg > 1).sum())} node(s) with more than one outgoing link")
    touched = (indeg + outdeg) > 0
    if (touched & ~selection.nodes).any():
        out.append("links to unselected nodes")
    if (problem.node_pinned & ~selection.nodes).any():
        out.append("pinned nodes left out")
    for name, pin, chosen in (
        ("edge", problem.edge_pin, selection.edges),
        ("hyper-edge", problem.hyper_pin, selection.hyper),
    ):
        if (chosen[pin == OFF]).any() or (~chosen[pin == ON]).any():
            out.append(f"a pinned {name} not respected")
    return out


def reduced_weights(problem: LinkProblem) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The objective rewritten over links and node selections.

    For a selected node, ``appear = 1 - indeg`` and ``disappear = 1 - outdeg`` (degrees are at
    most 1), so the objective equals ``sum(node_cost * selected) + sum(w * chosen links)`` with
    ``node_cost = appear + disappear`` and ``w = cost - disappear(parent) - appear(children)``.
    """
    g, c = problem.graph, problem.costs
    w_edge = c.edge - c.disappear[g.edge_rows[:, 0]] - c.appear[g.edge_rows[:, 1]]
    h = g.hyper_rows
    w_hyper = c.hyper - c.disappear[h[:, 0]] - c.appear[h[:, 1]] - c.appear[h[:, 2]]
    return w_edge, w_hyper, c.appear + c.disappear
