"""Greedy linking: take links from the cheapest up while their slots are free.

Two passes, as tracking greedies do (divisions are rarer than continuations):

1. regular edges, cheapest reduced weight first (an edge's cost minus the appear and disappear
   costs it saves), each taken while its parent's out slot and its child's in slot are free and
   its weight is negative;
2. division hyper-edges, best improvement first: a hyper-edge replaces the regular edge its
   parent already took to one of its two children when the other child is still free and that
   lowers the objective (or is taken outright where all three slots are free and it pays off).

Instead of a Python loop over millions of sorted links, each pass takes, in rounds, every
candidate that is the best among all candidates sharing a slot with it; in pass 1 that set is
exactly what the sequential greedy takes (the best candidate sharing a slot with another decides
first), so pass 1 is the sequential greedy in ``O(E log E)`` with a few vectorised rounds.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from attrackt.link.problem import LinkProblem, Solution, objective
from attrackt.link.reduced import Reduced, reduce_problem

logger = logging.getLogger(__name__)


def _dominant(score: np.ndarray, res: np.ndarray, num_slots: int) -> np.ndarray:
    """Candidates (rows of ``res``: slots, -1 for none) that score lowest on each of their
    slots; ties go to the earlier candidate."""
    m = len(score)
    rank = np.empty(m, np.int64)
    rank[np.argsort(score, kind="stable")] = np.arange(m)
    slots = np.where(res >= 0, res, num_slots)
    best = np.full(num_slots + 1, m, np.int64)
    for col in range(res.shape[1]):
        np.minimum.at(best, slots[:, col], rank)
    best[num_slots] = m
    win = np.ones(m, bool)
    for col in range(res.shape[1]):
        win &= (best[slots[:, col]] == rank) | (res[:, col] < 0)
    return win


def greedy_items(reduced: Reduced) -> np.ndarray:
    """Boolean mask over ``reduced``'s items: the two-pass greedy choice."""
    chosen = np.zeros(reduced.num_items, bool)
    res, w = reduced.item_res, reduced.item_w
    nv = len(reduced.capacity)
    used = np.zeros(nv, bool)  # reduce_problem keeps only items whose slots are free

    regular = np.flatnonzero(res[:, 2] < 0)
    alive = regular
    while len(alive):  # pass 1
        win = _dominant(w[alive], res[alive, :2], nv)
        taken = alive[win]
        chosen[taken] = True
        used[res[taken, :2].ravel()] = True
        alive = alive[~win]
        alive = alive[~used[res[alive, :2]].any(axis=1)]

    hyper = np.flatnonzero(res[:, 2] >= 0)
    item_of_edge = np.full(reduced.num_edges, -1, np.int64)
    item_of_edge[reduced.item_edge[regular]] = regular
    # the regular items parent -> child 1 and parent -> child 2 of each hyper item (-1: none)
    pair_item = item_of_edge[reduced.hyper_pairs[reduced.item_hyper[hyper]]].reshape(-1, 2)
    alive = np.arange(len(hyper))
    while len(alive):  # pass 2
        h, pairs = hyper[alive], pair_item[alive]
        held = (pairs >= 0) & chosen[np.maximum(pairs, 0)]
        gain = w[h] - np.where(held, w[np.maximum(pairs, 0)], 0.0).sum(axis=1)
        # a slot is usable when free or held by the regular edge this hyper-edge replaces
        own = np.stack([held.any(axis=1), held[:, 0], held[:, 1]], axis=1)
        ok = (~used[res[h]] | own).all(axis=1) & (gain < 0)
        alive, h, gain, held, pairs = alive[ok], h[ok], gain[ok], held[ok], pairs[ok]
        if not len(alive):
            break
        win = _dominant(gain, res[h], nv)
        chosen[h[win]] = True
        chosen[pairs[win][held[win]]] = False
        used[res[h[win]].ravel()] = True
        alive = alive[~win]
    logger.debug("greedy: %d links", int(chosen.sum()))
    return chosen


def solve_greedy(problem: LinkProblem) -> Solution:
    """Greedy linking under the same constraints and pins as the exact solvers.

    Unpinned nodes are treated as selected while choosing and dropped afterwards when no link
    touches them and keeping them costs more than leaving them out.
    """
    start = time.perf_counter()
    reduced = reduce_problem(problem)
    items = greedy_items(reduced)
    touched = np.zeros(reduced.num_nodes, bool)
    res = reduced.item_res[items]
    touched[res[res >= 0] % reduced.num_nodes] = True
    selection = reduced.selection(items, touched[reduced.var_nodes])
    value = objective(problem.graph, problem.costs, selection)
    return Solution(
        selection, value, float("nan"), "heuristic", "greedy", time.perf_counter() - start
    )
