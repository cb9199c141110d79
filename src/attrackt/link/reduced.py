"""The linking problem over its free variables only (shared by the fast and greedy solvers).

With the objective rewritten as in :func:`~attrackt.link.problem.reduced_weights`, every
constraint is a *capacity*: each node has an "in" slot and an "out" slot (constraint vertices
``n`` and ``N + n``); a link uses the out slot of its parent and the in slot of each child; a
pinned node offers each slot once, an unpinned one only when it is selected. Fixed links use up
slots in advance and links that can never pay off are dropped:

- a free link with ``w >= 0`` (leaving it out is never worse);
- a hyper-edge no cheaper than one of its own two regular edges (that edge uses a subset of the
  hyper-edge's slots, so swapping it in is never worse);
- an unpinned node with a non-positive node cost is selected for sure (it only frees slots).

None of this changes the optimal objective.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attrackt.errors import SolverError
from attrackt.link.problem import ON, LinkProblem, Selection, reduced_weights


@dataclass
class Reduced:
    """Free links as "items" over constraint vertices, plus the fixed part.

    ``item_res`` holds each item's constraint vertices (parent out slot, child in slot(s);
    -1 pads a regular edge), ``item_edge`` the edge index of a regular item (-1 for hyper) and
    ``item_hyper`` the hyper-edge index (-1 for regular). ``var_nodes`` are unpinned nodes whose
    selection is a variable with cost ``var_cost``. ``capacity`` is the slots left per vertex.
    """

    num_nodes: int
    item_res: np.ndarray  # (M, 3) int64
    item_w: np.ndarray  # (M,)
    item_edge: np.ndarray  # (M,)
    item_hyper: np.ndarray  # (M,)
    num_edges: int
    hyper_pairs: np.ndarray  # (H, 2) the graph's regular edges of each hyper-edge
    var_nodes: np.ndarray  # (K,) node rows
    var_cost: np.ndarray  # (K,)
    capacity: np.ndarray  # (2N,) int64
    base: Selection  # what is selected for sure (fixed links, sure nodes)
    constant: float  # objective of ``base`` in the reduced form

    @property
    def num_items(self) -> int:
        return len(self.item_w)

    def selection(self, items: np.ndarray, var_on: np.ndarray) -> Selection:
        """The full selection given chosen items and selected variable nodes."""
        edges = self.base.edges.copy()
        hyper = self.base.hyper.copy()
        nodes = self.base.nodes.copy()
        chosen = np.flatnonzero(items)
        e, h = self.item_edge[chosen], self.item_hyper[chosen]
        edges[e[e >= 0]] = True
        hyper[h[h >= 0]] = True
        nodes[self.var_nodes[var_on]] = True
        return Selection(nodes, edges, hyper)


def reduce_problem(problem: LinkProblem) -> Reduced:
    """Fix what is fixed, drop what can never pay off, and list the rest as items."""
    g = problem.graph
    n = g.num_nodes
    w_edge, w_hyper, node_cost = reduced_weights(problem)
    e_rows, h_rows = g.edge_rows, g.hyper_rows
    e_on = problem.edge_pin == ON
    h_on = problem.hyper_pin == ON

    used = np.bincount(
        np.concatenate([e_rows[e_on, 1], h_rows[h_on, 1], h_rows[h_on, 2]]), minlength=n
    )
    used_out = np.bincount(np.concatenate([e_rows[e_on, 0], h_rows[h_on, 0]]), minlength=n)
    capacity = 1 - np.concatenate([used, used_out]).astype(np.int64)
    if (capacity < 0).any():
        v = int(np.flatnonzero(capacity < 0)[0])
        slot = "parents" if v < n else "outgoing links"
        raise SolverError(f"fixed links give detection {int(g.ids[v % n])} two {slot}")

    sure = problem.node_pinned | (node_cost <= 0) | (used > 0) | (used_out > 0)
    var_nodes = np.flatnonzero(~sure)

    e_res = np.stack([n + e_rows[:, 0], e_rows[:, 1], np.full(len(e_rows), -1)], axis=1)
    h_res = np.stack([n + h_rows[:, 0], h_rows[:, 1], h_rows[:, 2]], axis=1)
    e_ok = (problem.edge_pin < 0) & (w_edge < 0) & _fits(capacity, e_res)
    h_ok = (problem.hyper_pin < 0) & (w_hyper < 0) & _fits(capacity, h_res)
    if len(h_rows):  # dominated by one of its own regular edges
        pair = g.hyper_edges
        alt = np.where(e_ok[pair], w_edge[pair], np.inf).min(axis=1)
        h_ok &= w_hyper < alt

    e_idx, h_idx = np.flatnonzero(e_ok), np.flatnonzero(h_ok)
    base = Selection(sure.copy(), e_on.copy(), h_on.copy())
    constant = float(node_cost[sure].sum() + w_edge[e_on].sum() + w_hyper[h_on].sum())
    return Reduced(
        num_nodes=n,
        item_res=np.concatenate([e_res[e_idx], h_res[h_idx]]),
        item_w=np.concatenate([w_edge[e_idx], w_hyper[h_idx]]),
        item_edge=np.concatenate([e_idx, np.full(len(h_idx), -1)]).astype(np.int64),
        item_hyper=np.concatenate([np.full(len(e_idx), -1), h_idx]).astype(np.int64),
        num_edges=g.num_edges,
        hyper_pairs=g.hyper_edges,
        var_nodes=var_nodes,
        var_cost=node_cost[var_nodes],
        capacity=capacity,
        base=base,
        constant=constant,
    )


def _fits(capacity: np.ndarray, res: np.ndarray) -> np.ndarray:
    cap = np.where(res >= 0, capacity[np.maximum(res, 0)], 1)
    return (cap >= 1).all(axis=1)
