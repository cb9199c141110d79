"""An exact solver for the linking ILP that splits it into independent pieces.

After :func:`~attrackt.link.reduced.reduce_problem`, every constraint is a slot of one node
(its "in" or its "out"), and a link touches the out slot of its parent and the in slot of each
child. Two variables interact only through a shared slot, so the connected components of the
slot graph are independent ILPs whose optima add up to the global optimum. With every node pinned
and links between consecutive frames only, a node's in slot and out slot never meet, so a
component never spans more than one frame pair (typically it is a small cluster of cells).
Unpinned nodes (whose selection joins their two slots) and frame gaps make components larger;
the answer stays exact.

Each component is solved by the cheapest exact method that fits it: a single link by its sign,
a plain bipartite matching (no hyper-edge, no node variable) by
:func:`scipy.optimize.linear_sum_assignment`, anything else by its LP relaxation with HiGHS,
and by HiGHS's branch and bound only where that LP optimum is fractional (rare: on a million
synthetic detections, 31 of ~90,000 components). With ``threads > 1`` the components are shared
among worker processes. A time limit leaves the components not reached to the greedy choice and
reports the gap to a proven bound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from attrackt.errors import SolverError
from attrackt.link.config import LinkConfig
from attrackt.link.greedy import greedy_items
from attrackt.link.problem import LinkProblem, Solution, handle_time_limit, objective
from attrackt.link.reduced import Reduced, reduce_problem

logger = logging.getLogger(__name__)

_DENSE_SLOTS = 4_000  # matchings with more slots than this go to HiGHS (dense matrix size)


@dataclass
class Piece:
    """One component as a small ILP: minimise ``cost @ x`` s.t. ``A x <= upper``, x binary.

    Columns are the component's items, then its node variables; rows its slots; ``A`` is in
    compressed-column form (an item's first entry is its parent's out slot).
    ``matching`` marks a pure bipartite matching (every column one out slot and one in slot).
    """

    items: np.ndarray  # the reduced problem's items in this piece
    var: np.ndarray  # and its node variables
    cost: np.ndarray
    start: np.ndarray  # (C + 1,) column starts
    index: np.ndarray  # (nnz,) row of each entry
    value: np.ndarray  # (nnz,)
    upper: np.ndarray  # (R,)
    matching: bool


@dataclass
class PieceResult:
    x: np.ndarray  # bool per column
    value: float
    bound: float
    optimal: bool
    method: str  # "matching", "lp", "mip" or "greedy" (what the deadline left)


def solve_fast(problem: LinkProblem, config: LinkConfig | None = None) -> Solution:
    """The optimal selection (same objective as motile with the same model), component-wise."""
    config = config or LinkConfig()
    start = time.perf_counter()
    deadline = None if config.time_limit is None else start + config.time_limit
    red = reduce_problem(problem)
    comps, todo, trivial = _decompose(red)
    items = trivial.copy()
    var_on = np.zeros(len(red.var_nodes), bool)
    bound = red.constant + float(red.item_w[trivial].sum())
    logger.info(
        "fast solver: %d free links, %d node variables, %d single links, %d components to solve",
        red.num_items,
        len(red.var_nodes),
        int(trivial.sum()),
        len(todo),
    )
    all_optimal = True
    methods = {"single": int(trivial.sum()), "matching": 0, "lp": 0, "mip": 0, "greedy": 0}
    for c, result in _solve_components(red, comps, todo, config, deadline):
        cols, var = comps.columns(c)
        items[cols] = result.x[: len(cols)]
        var_on[var] = result.x[len(cols) :]
        bound += result.bound
        all_optimal &= result.optimal
        methods[result.method] += 1
    selection = red.selection(items, var_on)
    value = objective(problem.graph, problem.costs, selection)
    seconds = time.perf_counter() - start
    status = "optimal" if all_optimal else "time_limit"
    solution = Solution(selection, value, bound, status, "fast", seconds, {"components": methods})
    if not all_optimal:
        handle_time_limit(solution, config)
    return solution


# ---- decomposition ----------------------------------------------------------------------------


@dataclass
class _Components:
    """Items and node variables grouped by component, slots numbered within components."""

    item_order: np.ndarray
    item_offset: np.ndarray
    var_order: np.ndarray
    var_offset: np.ndarray
    local: np.ndarray  # slot -> its index within its component
    vertex_order: np.ndarray
    vertex_offset: np.ndarray
    matching: np.ndarray  # per component: only regular edges and pinned nodes
    is_var_slot: np.ndarray  # per slot: belongs to an unpinned node

    def columns(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """Component ``c``'s items and node variables (indices into the reduced problem)."""
        items = self.item_order[self.item_offset[c] : self.item_offset[c + 1]]
        var = self.var_order[self.var_offset[c] : self.var_offset[c + 1]]
        return items, var

    def piece(self, red: Reduced, c: int) -> Piece:
        """Component ``c`` as a small ILP."""
        items, var = self.columns(c)
        res = red.item_res[items]
        ok = res >= 0
        node = red.var_nodes[var]
        slots_v = np.stack([node, red.num_nodes + node], axis=1).ravel()  # in, out per variable
        index = self.local[np.concatenate([res[ok], slots_v])]
        value = np.concatenate([np.ones(int(ok.sum())), -np.ones(len(slots_v))])
        counts = np.concatenate([ok.sum(axis=1), np.full(len(var), 2)])
        start = np.concatenate([[0], np.cumsum(counts)])
        vertices = self.vertex_order[self.vertex_offset[c] : self.vertex_offset[c + 1]]
        upper = np.where(self.is_var_slot[vertices], 0, red.capacity[vertices]).astype(float)
        cost = np.concatenate([red.item_w[items], red.var_cost[var]])
        return Piece(items, var, cost, start, index, value, upper, bool(self.matching[c]))


def _decompose(red: Reduced) -> tuple[_Components, np.ndarray, np.ndarray]:
    """Components of the slot graph, those that need solving, and the single links (taken)."""
    nv = len(red.capacity)
    n = red.num_nodes
    res = red.item_res
    a = np.concatenate([res[:, 0], res[:, 0], red.var_nodes])
    b = np.concatenate([res[:, 1], res[:, 2], n + red.var_nodes])
    keep = b >= 0
    graph = coo_matrix((np.ones(int(keep.sum()), np.int8), (a[keep], b[keep])), shape=(nv, nv))
    ncomp, labels = connected_components(graph, directed=False)

    item_comp = labels[res[:, 0]] if len(res) else np.zeros(0, np.int64)
    var_comp = labels[red.var_nodes]
    n_items = np.bincount(item_comp, minlength=ncomp)
    n_vars = np.bincount(var_comp, minlength=ncomp)
    n_hyper = np.bincount(item_comp[res[:, 2] >= 0], minlength=ncomp)
    is_var_slot = np.zeros(nv, bool)
    is_var_slot[red.var_nodes] = True
    is_var_slot[n + red.var_nodes] = True
    comps = _Components(
        item_order=np.argsort(item_comp, kind="stable"),
        item_offset=np.concatenate([[0], np.cumsum(n_items)]),
        var_order=np.argsort(var_comp, kind="stable"),
        var_offset=np.concatenate([[0], np.cumsum(n_vars)]),
        local=np.zeros(nv, np.int64),
        vertex_order=np.argsort(labels, kind="stable"),
        vertex_offset=np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=ncomp))]),
        matching=(n_hyper == 0) & (n_vars == 0),
        is_var_slot=is_var_slot,
    )
    sorted_labels = labels[comps.vertex_order]
    comps.local[comps.vertex_order] = np.arange(nv) - comps.vertex_offset[sorted_labels]
    single = (n_items == 1) & (n_vars == 0)  # a lone link (w < 0) is taken
    todo = np.flatnonzero((n_items >= 2) | ((n_items >= 1) & (n_vars >= 1)))
    return comps, todo, single[item_comp]


# ---- solving components -----------------------------------------------------------------------

_WORKER: dict = {}  # a worker process's reduced problem and components (set once per worker)


def _init_worker(red: Reduced, comps: _Components) -> None:
    _WORKER["red"], _WORKER["comps"] = red, comps


def _solve_list(todo: np.ndarray, gap: float, deadline: float | None) -> list:
    """Solve the given components (in a worker: from the state its initialiser left)."""
    red, comps = _WORKER["red"], _WORKER["comps"]
    solver = _Highs()
    return [(int(c), _solve_piece(comps.piece(red, int(c)), solver, gap, deadline)) for c in todo]


def _solve_components(
    red: Reduced,
    comps: _Components,
    todo: np.ndarray,
    config: LinkConfig,
    deadline: float | None,
) -> Iterator[tuple[int, PieceResult]]:
    """Yield ``(component, result)``; in ``config.threads`` worker processes when above 1
    (each receives the reduced problem once, then only component numbers)."""
    fallback: np.ndarray | None = None

    def late(c: int) -> PieceResult:
        nonlocal fallback
        if fallback is None:  # the greedy choice, computed once, for what time did not allow
            fallback = greedy_items(red)
        return _greedy_piece(comps.piece(red, c), fallback, red)

    workers = min(config.threads, len(todo))
    if workers > 1:
        chunks = [todo[i::workers] for i in range(workers)]
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(red, comps)) as pool:
            futures = [pool.submit(_solve_list, ch, config.mip_gap, deadline) for ch in chunks]
            for future in futures:
                for c, result in future.result():
                    yield c, result if result is not None else late(c)
        return
    _init_worker(red, comps)
    try:
        for c, result in _solve_list(todo, config.mip_gap, deadline):
            yield c, result if result is not None else late(c)
    finally:
        _WORKER.clear()


def _solve_piece(
    piece: Piece, solver: _Highs, gap: float, deadline: float | None
) -> PieceResult | None:
    """The piece's optimum (``None`` when the deadline left no solution)."""
    left = None if deadline is None else deadline - time.perf_counter()
    if left is not None and left <= 0:
        return None
    if piece.matching and len(piece.upper) <= _DENSE_SLOTS:
        return _matching(piece)
    return solver.solve(piece, gap, left)


def _matching(piece: Piece) -> PieceResult:
    """Min-weight bipartite matching (not necessarily perfect) of a piece of regular edges."""
    m = len(piece.cost)
    ends = piece.index.reshape(m, 2)  # each column: its parent's out slot, its child's in slot
    out_u, out_i = np.unique(ends[:, 0], return_inverse=True)
    in_u, in_i = np.unique(ends[:, 1], return_inverse=True)
    weights = np.zeros((len(out_u), len(in_u)))
    weights[out_i, in_i] = piece.cost
    index = np.full(weights.shape, -1, np.int64)
    index[out_i, in_i] = np.arange(m)
    r, c = linear_sum_assignment(weights)
    take = index[r, c][(weights[r, c] < 0) & (index[r, c] >= 0)]
    x = np.zeros(m, bool)
    x[take] = True
    value = float(piece.cost[x].sum())
    return PieceResult(x, value, value, True, "matching")


def _greedy_piece(piece: Piece, greedy: np.ndarray, red: Reduced) -> PieceResult:
    """The greedy choice on a piece the deadline left unsolved, with the trivial bound (every
    negative column taken)."""
    items = greedy[piece.items]
    res = red.item_res[piece.items][items]
    touched = np.isin(red.var_nodes[piece.var], res[res >= 0] % red.num_nodes)
    x = np.concatenate([items, touched])
    value = float(piece.cost[x].sum())
    return PieceResult(x, value, float(np.minimum(piece.cost, 0).sum()), False, "greedy")


class _Highs:
    """One reusable HiGHS instance: the LP relaxation first, branch and bound only where the LP
    optimum is fractional (for these problems it rarely is, and an LP is ~20x cheaper to solve
    than HiGHS's MIP machinery on a small problem)."""

    def __init__(self) -> None:
        import highspy

        self._hs = highspy
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("threads", 1)
        self.h.setOptionValue("mip_abs_gap", 1e-9)

    def solve(self, piece: Piece, gap: float, time_limit: float | None) -> PieceResult | None:
        """The piece's optimum, or the best found in time (``None`` if none was)."""
        hs = self._hs
        ncol, nrow = len(piece.cost), len(piece.upper)
        lp = hs.HighsLp()
        lp.num_col_, lp.num_row_ = ncol, nrow
        lp.col_cost_ = piece.cost
        lp.col_lower_ = np.zeros(ncol)
        lp.col_upper_ = np.ones(ncol)
        lp.row_lower_ = np.full(nrow, -hs.kHighsInf)
        lp.row_upper_ = piece.upper
        lp.a_matrix_.format_ = hs.MatrixFormat.kColwise
        lp.a_matrix_.start_ = piece.start
        lp.a_matrix_.index_ = piece.index
        lp.a_matrix_.value_ = piece.value
        start = time.perf_counter()
        status, x = self._run(lp, "off", time_limit)
        if status == hs.HighsModelStatus.kOptimal and np.all(np.minimum(x, 1 - x) < 1e-7):
            take = x > 0.5
            value = float(piece.cost[take].sum())
            return PieceResult(take, value, value, True, "lp")
        lp.integrality_ = [hs.HighsVarType.kInteger] * ncol
        self.h.setOptionValue("mip_rel_gap", gap)
        left = None if time_limit is None else time_limit - (time.perf_counter() - start)
        status, x = self._run(lp, "choose", left)
        optimal = status == hs.HighsModelStatus.kOptimal
        if not optimal and status != hs.HighsModelStatus.kTimeLimit:
            raise SolverError(f"HiGHS failed on a component: {self.h.modelStatusToString(status)}")
        if not self.h.getSolution().value_valid:
            return None
        take = x > 0.5
        value = float(piece.cost[take].sum())
        bound = value if optimal and gap == 0 else float(self.h.getInfo().mip_dual_bound)
        return PieceResult(take, value, min(bound, value), optimal, "mip")

    def _run(self, lp, presolve: str, time_limit: float | None):
        self.h.setOptionValue("presolve", presolve)
        self.h.setOptionValue("time_limit", np.inf if time_limit is None else max(time_limit, 0))
        self.h.passModel(lp)
        self.h.run()
        return self.h.getModelStatus(), np.asarray(self.h.getSolution().col_value)
