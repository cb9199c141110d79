"""The reference path: the same model built with motile and solved by SCIP (or Gurobi) via ilpy.

motile 1.0 dropped the division hyper-edges the method's reference linker used (motile 0.3), so
they are added back here in motile's own extension style, as a small graph subclass and a
variable subclass; motile's ``MaxParents(1)``, ``MaxChildren(1)``, ``Pin``, ``NodeAppearCost``,
``NodeDisappearCost`` and its appear/disappear variables then see a hyper-edge exactly as motile
0.3 did: one outgoing edge of the parent and one incoming edge of each child. Link costs are the
ones :mod:`attrackt.link.costs` computed, read from an edge attribute, so this path and the fast
solver minimise the same objective (motile keeps costs in float32; the selection it returns is
scored with the shared :func:`~attrackt.link.problem.objective`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Hashable, Iterable, Iterator
from typing import Any

import numpy as np

from attrackt.errors import InputError, SolverError
from attrackt.link.config import LinkConfig
from attrackt.link.problem import (
    OFF,
    ON,
    LinkProblem,
    Selection,
    Solution,
    handle_time_limit,
    objective,
    violations,
)

logger = logging.getLogger(__name__)


def _motile():  # imported lazily: motile and ilpy load SCIP
    import ilpy
    import motile
    from motile.constraints import MaxChildren, MaxParents, Pin
    from motile.costs import Cost, NodeAppearCost, NodeDisappearCost, Weight
    from motile.variables import EdgeSelected, NodeSelected

    class HyperTrackGraph(motile.TrackGraph):
        """A TrackGraph that also holds division hyper-edges ``((parent,), (child1, child2))``."""

        def add_hyper_edge(
            self, parent: Hashable, children: tuple[Hashable, Hashable], data: dict[str, Any]
        ) -> None:
            key = ((parent,), tuple(children))
            self.edges[key] = data
            self.next_edges[parent].append(key)
            for child in children:
                self.prev_edges[child].append(key)

        @staticmethod
        def nodes_of(edge: tuple) -> Iterator[Hashable]:
            for end in edge:
                yield from (end if isinstance(end, tuple) else (end,))

    class HyperEdgeSelected(EdgeSelected):
        """Edge (and hyper-edge) selection; a selected link needs all its nodes selected."""

        @staticmethod
        def instantiate_constraints(solver: motile.Solver) -> Iterable[ilpy.Expression]:
            nodes = solver.get_variables(NodeSelected)
            edges = solver.get_variables(EdgeSelected)
            for edge in solver.graph.edges:
                ends = list(solver.graph.nodes_of(edge))
                yield len(ends) * edges[edge] - sum(nodes[n] for n in ends) <= 0

    class HyperSolver(motile.Solver):
        """motile's solver, with hyper-edge-aware edge variables."""

        def get_variables(self, cls):
            return super().get_variables(HyperEdgeSelected if cls is EdgeSelected else cls)

    class LinkCost(Cost):
        """The precomputed cost of each edge and hyper-edge (edge attribute ``cost``)."""

        def __init__(self, attribute: str = "cost", weight: float = 1.0) -> None:
            self.attribute = attribute
            self.weight = Weight(weight)

        def apply(self, solver: motile.Solver) -> None:
            for key, index in solver.get_variables(EdgeSelected).items():
                solver.add_variable_cost(
                    index, solver.graph.edges[key][self.attribute], self.weight
                )

    return {
        "ilpy": ilpy,
        "HyperTrackGraph": HyperTrackGraph,
        "HyperSolver": HyperSolver,
        "LinkCost": LinkCost,
        "NodeAppearCost": NodeAppearCost,
        "NodeDisappearCost": NodeDisappearCost,
        "MaxParents": MaxParents,
        "MaxChildren": MaxChildren,
        "Pin": Pin,
        "EdgeSelected": EdgeSelected,
        "NodeSelected": NodeSelected,
    }


def track_graph(problem: LinkProblem):
    """The problem as a motile graph with hyper-edges (node and link costs as attributes)."""
    m = _motile()
    g, c = problem.graph, problem.costs
    graph = m["HyperTrackGraph"](frame_attribute="t")
    ids = g.ids.tolist()
    for i, node in enumerate(ids):
        data = {
            "t": int(g.t[i]),
            "appear_cost": float(c.appear[i]),
            "disappear_cost": float(c.disappear[i]),
            "ignore_appear": bool(c.appear_free[i]),
            "ignore_disappear": bool(c.disappear_free[i]),
        }
        if problem.node_pinned[i]:
            data["pinned"] = True
        graph.add_node(node, data)
    for (u, v), cost, pin in zip(g.edges.tolist(), c.edge.tolist(), problem.edge_pin, strict=True):
        graph.add_edge((u, v), _link_data(cost, pin))
    for (u, c1, c2), cost, pin in zip(
        g.hyper.tolist(), c.hyper.tolist(), problem.hyper_pin, strict=True
    ):
        graph.add_hyper_edge(u, (c1, c2), _link_data(cost, pin))
    return graph


def _link_data(cost: float, pin: int) -> dict[str, Any]:
    data: dict[str, Any] = {"cost": cost}
    if pin == ON:
        data["pinned"] = True
    elif pin == OFF:
        data["pinned"] = False
    return data


def build_solver(problem: LinkProblem):
    """A motile solver with the model of :mod:`attrackt.link.problem`.

    Negative appear or disappear costs are refused: motile 1.0.1 bounds its appear/disappear
    indicators only from below and would count a linked cell as a start or end to earn them
    (see :class:`~attrackt.link.config.LinkConfig`).
    """
    c = problem.costs
    if (c.appear[~c.appear_free] < 0).any() or (c.disappear[~c.disappear_free] < 0).any():
        raise InputError(
            "link problem",
            "has negative appear or disappear costs, which motile's solver does not model "
            "exactly; solve it with the fast solver",
        )
    m = _motile()
    solver = m["HyperSolver"](track_graph(problem))
    solver.add_cost(m["LinkCost"]())
    solver.add_cost(
        m["NodeAppearCost"](weight=1.0, attribute="appear_cost", ignore_attribute="ignore_appear")
    )
    solver.add_cost(
        m["NodeDisappearCost"](
            weight=1.0, attribute="disappear_cost", ignore_attribute="ignore_disappear"
        )
    )
    solver.add_constraint(m["MaxParents"](1))
    solver.add_constraint(m["MaxChildren"](1))
    solver.add_constraint(m["Pin"]("pinned"))
    return solver


def solve_motile(problem: LinkProblem, config: LinkConfig | None = None) -> Solution:
    """Solve with motile + ilpy (Gurobi when fully licensed and allowed, else SCIP)."""
    config = config or LinkConfig()
    m = _motile()
    ilpy = m["ilpy"]
    start = time.perf_counter()
    solver = build_solver(problem)
    built = time.perf_counter()
    preference = {"auto": ilpy.Preference.Any, "scip": ilpy.Preference.Scip}.get(
        config.backend, ilpy.Preference.Gurobi
    )
    ilp = ilpy.Solver(
        solver.num_variables,
        ilpy.VariableType.Binary,
        variable_types=solver.variable_types,
        preference=preference,
    )
    objective_ = ilpy.Objective(solver.num_variables)
    for i, cost in enumerate(solver.costs):
        objective_.set_coefficient(i, cost)
    ilp.set_objective(objective_)
    ilp.set_constraints(solver.constraints)
    ilp.set_num_threads(config.threads)
    ilp.set_optimality_gap(config.mip_gap)
    if config.time_limit is not None:
        ilp.set_timeout(max(config.time_limit - (built - start), 1e-3))
    watcher = _BoundWatcher.attach(ilp.native_model())
    result = ilp.solve()
    solved = time.perf_counter()  # ilpy's own solve time reads 0 once it has freed SCIP's data
    status = result.status.name.lower()
    logger.info(
        "motile: built in %.1f s, solved in %.1f s (%s)", built - start, solved - built, status
    )
    if status not in ("optimal", "timelimit", "time_limit"):
        raise SolverError(f"motile/ilpy stopped with status {result.status.name}")

    values = np.asarray(result) > 0.5
    selection = _selection(problem, solver, values, m)
    if violations(problem, selection):
        raise SolverError(f"motile/ilpy found no feasible solution ({result.status.name})")
    value = objective(problem.graph, problem.costs, selection)
    optimal = status == "optimal"
    bound = value if optimal and config.mip_gap == 0 else watcher.bound(ilp.native_model())
    solution = Solution(
        selection,
        value,
        bound,
        "optimal" if optimal else "time_limit",
        "motile",
        time.perf_counter() - start,
        {
            "build_seconds": built - start,
            "solve_seconds": solved - built,
            "reported_objective": float(result.get_value()),
            "variables": solver.num_variables,
        },
    )
    if not optimal:
        handle_time_limit(solution, config)
    return solution


def _selection(problem: LinkProblem, solver, values: np.ndarray, m: dict) -> Selection:
    g = problem.graph
    nodes = solver.get_variables(m["NodeSelected"])
    edges = solver.get_variables(m["EdgeSelected"])
    node_idx = [nodes[n].index for n in g.ids.tolist()]
    edge_idx = [edges[(u, v)].index for u, v in g.edges.tolist()]
    hyper_idx = [edges[((u,), (a, b))].index for u, a, b in g.hyper.tolist()]
    return Selection(
        values[np.asarray(node_idx, np.int64)],
        values[np.asarray(edge_idx, np.int64)],
        values[np.asarray(hyper_idx, np.int64)],
    )


class _BoundWatcher:
    """Keeps the latest dual bound SCIP reports (ilpy frees SCIP's solving data after solving)."""

    def __init__(self) -> None:
        self.dual = -math.inf

    @classmethod
    def attach(cls, native: Any) -> _BoundWatcher:
        watcher = cls()
        try:
            import pyscipopt
        except ImportError:
            return watcher
        if isinstance(native, pyscipopt.Model):

            class Handler(pyscipopt.Eventhdlr):
                def eventinit(self) -> None:
                    self.model.catchEvent(pyscipopt.SCIP_EVENTTYPE.NODESOLVED, self)

                def eventexit(self) -> None:
                    self.model.dropEvent(pyscipopt.SCIP_EVENTTYPE.NODESOLVED, self)

                def eventexec(self, event: Any) -> None:
                    watcher.dual = max(watcher.dual, self.model.getDualbound())

            native.includeEventhdlr(Handler(), "attrackt_bound", "tracks the dual bound")
        return watcher

    def bound(self, native: Any) -> float:
        """The best proven lower bound (Gurobi: its ``ObjBound``)."""
        gurobi_bound = getattr(native, "ObjBound", None)
        return float(gurobi_bound) if gurobi_bound is not None else self.dual
