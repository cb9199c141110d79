"""Linking weights learned from a person's answers: a structured SVM on the fast solver.

The cost of every link and node is linear in the weights of :class:`LinkConfig`
(:func:`~attrackt.link.costs.cost_basis`), so the objective of a selection ``y`` is
``E_w(y) = c(y) + <w, phi(y)>``. The answers fix the outgoing choice of the answered cells; every
answered cell has a 0/1 loss ``D_p(y)`` (1 when ``y`` gives the cell other children than the
answer), linear in ``y`` because a cell has at most one outgoing link. The weights minimise the
margin-rescaled structured hinge loss, regularised towards the starting weights ``w0``::

    L(w) = lam/2 |w - w0|^2 + min_{y consistent with the answers} E_w(y)
                             - min_y [E_w(y) - D(y)]

with appear and disappear kept >= 0 and the distance weights >= ``min_distance_weight``. The
answers say nothing about the other cells' links, so the consistent ``y`` is a latent
completion: ``L`` is minimised by CCCP (as a latent structured SVM): fix the completion at the
current weights, minimise the convex upper bound by a bundle method (BMRM, as motile's
``Solver.fit_weights`` does through structsvm, here with bounds and a QP in HiGHS), then
complete again, until the completion no longer changes. Both minimisations over ``y`` are the
fast exact solver; the loss-augmented one only shifts the costs of the answered cells' links.

**The sub-graph** (``subgraph=True``, the default). Only the answered cells and their
*rivals* (the other candidate parents of their candidate children) choose freely; every other
cell keeps its links of the solution at ``w0`` without the answers: the solution the person
corrected. A solve then touches a few components instead of the whole movie. It is an
approximation (a correction can ripple further than the rivals), and the context is not the
pinned solution on purpose: that one already made room for the answers, so the free sub-problem
would hardly ever get an answered cell wrong. ``subgraph=False`` learns on the whole problem.

**The check** (``check_fraction``, a quarter by default). Answers are not a sample of the movie:
a person answers the cells the ranking finds ambiguous, and weights that suit those can break
the links of the rest (on the benchmark movies, weights learned from 100 confidence-ranked
answers of HeLa 02 got as many of the answered cells right as the starting weights and linked
the other cells far worse). So a share of the answered cells is held out: weights are learned
from the other answers, and the whole movie is linked with those answers pinned, once at the
starting weights and once at the learned ones. Only where the learned weights get at least
:data:`~attrackt.link.held_out.MIN_GAIN` fewer of the held-out cells wrong are they kept,
learned again from every answer; otherwise the starting weights stay (also where fewer than
``min_check`` cells would be held out). Pseudo-labels are never held out: they only join the
learning.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from attrackt.data import Annotations, Answer, Associations, Detections
from attrackt.errors import InputError, SolverError
from attrackt.link.candidates import CandidateGraph
from attrackt.link.config import LinkConfig
from attrackt.link.costs import WEIGHTS, Costs, cost_basis
from attrackt.link.fast_solver import solve_fast
from attrackt.link.held_out import MIN_CHECK, MIN_GAIN, learned_is_better
from attrackt.link.problem import FREE, OFF, ON, LinkProblem, Selection, degrees, objective

logger = logging.getLogger(__name__)

_NON_NEGATIVE = (
    "appear", "disappear", "position_appear", "position_disappear", "daughter_size_weight",
    "position_daughter_size_weight",
)  # fmt: skip
_POSITIVE = ("distance_weight", "hyper_distance_weight")


@dataclass(frozen=True)
class LearnConfig:
    """How to learn: which ``weights`` (fields of :class:`LinkConfig`), the ``regularizer``
    ``lam`` towards the starting weights (larger: the answers move the weights less), the
    relative gap ``eps`` that ends a bundle phase, at most ``max_iterations`` loss-augmented
    solves and ``max_rounds`` completions in all, the smallest distance weight, whether to
    learn on the answers' sub-graph or the whole problem, the check (the share of answered
    cells held out, 0: none; the fewest held-out cells that can decide; the seed that picks
    them; see the module text), and ``max_seconds``, the wall-clock bound of the learning
    (``None``: none): counted from the start of :func:`learn_weights`, the check's learning
    stops at half of it and the final one at all of it, each with the best weights so far,
    not converged. The preparation and the single solves that count wrong cells are not
    bounded."""

    weights: tuple[str, ...] = WEIGHTS
    regularizer: float = 10.0
    eps: float = 1e-3
    max_iterations: int = 200
    max_rounds: int = 10
    min_distance_weight: float = 0.01
    subgraph: bool = True
    check_fraction: float = 0.25
    min_check: int = MIN_CHECK
    seed: int = 0
    max_seconds: float | None = 60.0

    def __post_init__(self) -> None:
        def bad(problem: str) -> InputError:
            return InputError("learn config", problem)

        object.__setattr__(self, "weights", tuple(self.weights))
        unknown = sorted(set(self.weights) - set(WEIGHTS))
        if unknown or not self.weights or len(set(self.weights)) != len(self.weights):
            raise bad(f"weights must be distinct names out of {WEIGHTS}, got {self.weights}")
        if not self.regularizer > 0:
            raise bad(f"regularizer must be positive, got {self.regularizer}")
        if not self.eps > 0:
            raise bad(f"eps must be positive, got {self.eps}")
        if self.max_iterations < 1 or self.max_rounds < 1:
            raise bad("max_iterations and max_rounds must be at least 1")
        if not self.min_distance_weight > 0:
            raise bad(f"min_distance_weight must be positive, got {self.min_distance_weight}")
        if not 0 <= self.check_fraction < 1:
            raise bad(f"check_fraction must lie in [0, 1), got {self.check_fraction}")
        if self.min_check < 1:
            raise bad(f"min_check must be at least 1, got {self.min_check}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise bad(f"max_seconds must be positive or None, got {self.max_seconds}")


@dataclass
class LearnResult:
    """The learned weights as a :class:`LinkConfig`, and how the learning went.

    ``record`` has one entry per bundle iteration: ``round`` (completion), ``iteration``,
    ``objective`` (the round's convex upper bound at that iteration's weights), ``best``
    (lowest so far), ``lower`` (the bundle's lower bound), ``gap``, ``weights`` (those of
    ``best``) and ``seconds`` (since the start).
    ``rounds`` has one per completion: the latent objective ``L`` at the round's start. ``wrong``
    counts the answered cells the unpinned solution on the sub-graph gets wrong, before and after.
    ``check``: the held-out answers' verdict (module text): ``held_out`` cells, how many of them
    the linking gets wrong at the starting (``wrong_start``) and the learned weights
    (``wrong_learned``), ``kept`` (``"learned"`` or ``"start"``) and the ``reason``; empty
    without a check. Where the start is kept, ``record`` and ``rounds`` are those of the
    learning from the other answers, and ``weights`` are the starting ones. ``timed_out``: the
    time bound (:attr:`LearnConfig.max_seconds`) stopped a learning (then not ``converged``).
    """

    config: LinkConfig
    initial: dict[str, float]
    weights: dict[str, float]
    record: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    converged: bool
    iterations: int
    seconds: float
    sizes: dict[str, int] = field(default_factory=dict)
    wrong: dict[str, int] = field(default_factory=dict)
    check: dict[str, Any] = field(default_factory=dict)
    timed_out: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able fields (the learned config as its dict)."""
        return {
            "config": self.config.to_dict(),
            "initial": self.initial,
            "weights": self.weights,
            "converged": self.converged,
            "timed_out": self.timed_out,
            "iterations": self.iterations,
            "seconds": self.seconds,
            "sizes": self.sizes,
            "wrong": self.wrong,
            "check": self.check,
            "rounds": self.rounds,
            "record": self.record,
        }


def with_pseudo_answers(
    annotations: Annotations, parents: np.ndarray, links: np.ndarray
) -> Annotations:
    """``annotations`` and, for each of ``parents`` nobody answered, its ``links`` as an answer
    (in memory; nothing is written). A parent whose link reaches a child an answer gives to
    another cell is left out: the answer wins."""
    out = Annotations(answers=annotations.history)
    latest = annotations.latest()
    claimed = {child for kids in latest.values() for child in kids}
    children: dict[int, list[int]] = {}
    for parent, child in np.asarray(links, np.int64).reshape(-1, 2).tolist():
        children.setdefault(parent, []).append(child)
    for parent in np.asarray(parents, np.int64).tolist():
        kids = tuple(children.get(parent, ()))
        if parent not in latest and not claimed.intersection(kids):
            out.add(Answer(parent, kids, author="pseudo-label"))
    return out


def learn_weights(
    detections: Detections,
    annotations: Annotations,
    associations: Associations | None = None,
    config: LinkConfig | None = None,
    learn: LearnConfig | None = None,
    pseudo: tuple[np.ndarray, np.ndarray] | None = None,
) -> LearnResult:
    """Weights of ``config`` learned from the answers in ``annotations`` (see the module text).

    ``pseudo``: ``(parents, links)`` of cells whose current links count as answers too (the
    least ambiguous cells, :func:`attrackt.active.pseudo_labels`, as in fine-tuning), a
    counterweight to answers that are mostly divisions. On the training movies (HeLa 01, DIC
    01; 10, 100 and 250 confidence-ranked answers) they did not help and cost 3-15 times the
    time, so they are not the default; ``bench/interactive.py`` reports them apart.

    The candidate graph, features and normalisation are the ones :func:`attrackt.link.link`
    builds with ``config`` (the associations too: with ``config.guard``, those the guard
    passes); learning always uses the fast solver. Returns ``config`` with the learned weights,
    ready for :func:`attrackt.link.link` with the same answers. The learning stops at
    ``learn.max_seconds`` after the call started (:class:`LearnConfig`).
    """
    from attrackt.link import build_problem, guarded

    config = (config or LinkConfig()).with_position_costs()
    learn = learn or LearnConfig()
    if not len(annotations):
        raise InputError("annotations", "there are no answers to learn weights from")
    start = time.perf_counter()
    associations, _ = guarded(detections, associations, config)
    others, held = annotations.hold_out(learn.check_fraction, learn.seed)
    if pseudo is not None:
        annotations = with_pseudo_answers(annotations, *pseudo)
        others = with_pseudo_answers(others, *pseudo)
    solver_config = replace(config, solver="fast", threads=1)
    problem = build_problem(detections, associations, annotations, config)
    graph = problem.graph
    w0 = np.array([float(getattr(config, n)) for n in learn.weights])
    lower = _lower_bounds(learn)
    if (w0 < lower).any():
        names = [n for n, v, b in zip(learn.weights, w0, lower, strict=True) if v < b]
        raise InputError("link config", f"starting weights below their bounds: {names}")
    basis = _Basis.of(graph, config, learn.weights, detections.meta)
    unpinned = LinkProblem.free(graph, problem.costs)
    unpinned.node_pinned = problem.node_pinned
    reference = solve_fast(unpinned, solver_config).selection
    task = _Task.of(problem, annotations, reference, learn.subgraph)
    bound = learn.max_seconds
    deadline = None if bound is None else start + bound
    learner = _Learner(graph, basis, task, solver_config, learn, w0, lower, deadline)
    check: dict[str, Any] = {}
    checker: _Learner | None = None
    source, converged = learner, True  # whose record the result reports
    if learn.check_fraction > 0:
        half = None if bound is None else start + bound / 2
        check, checker, converged = _check(
            problem, others, held, reference, basis, solver_config, learn, w0, lower, half
        )
        source = checker or learner
    if check.get("kept", "learned") == "learned":
        w, converged = learner.run()
        source = learner
    else:
        w = w0
    learned = replace(config, **{n: float(v) for n, v in zip(learn.weights, w, strict=True)})
    wrong_before = learner.wrong(w0)
    wrong = {"before": wrong_before, "after": learner.wrong(w) if w is not w0 else wrong_before}
    seconds = time.perf_counter() - start
    result = LearnResult(
        config=learned,
        initial=_named(learn.weights, w0),
        weights=_named(learn.weights, w),
        record=source.record,
        rounds=source.rounds,
        converged=converged,
        iterations=len(source.record),
        seconds=seconds,
        sizes=task.sizes(),
        wrong=wrong,
        check=check,
        timed_out=learner.timed_out or (checker is not None and checker.timed_out),
    )
    logger.info(
        "learned weights from %d answers in %d iterations (%.1f s, %s): %s; answered cells wrong "
        "without pins %d -> %d",
        task.sizes()["answered"],
        result.iterations,
        seconds,
        "converged" if converged else "not converged",
        result.weights,
        result.wrong["before"],
        result.wrong["after"],
    )
    return result


def _check(
    problem: LinkProblem,
    others: Annotations,
    held: Annotations,
    reference: Selection,
    basis: _Basis,
    solver_config: LinkConfig,
    learn: LearnConfig,
    w0: np.ndarray,
    lower: np.ndarray,
    deadline: float | None,
) -> tuple[dict[str, Any], _Learner | None, bool]:
    """The verdict of the ``held``-out answers on learning from the ``others`` (with the
    pseudo-labels; module text, learning until ``deadline``), the learner of those (``None``
    where too few cells are held out to check) and whether it converged."""
    verdict: dict[str, Any] = {"held_out": len(held)}
    if len(held) < learn.min_check:
        verdict |= {"kept": "start", "reason": f"too few answers to check learned weights: "
                    f"{len(held)} held out, at least {learn.min_check} needed"}  # fmt: skip
        logger.info("weight learning: %s; keeping the starting weights", verdict["reason"])
        return verdict, None, True
    g = problem.graph
    is_held = np.zeros(g.num_nodes, bool)
    is_held[g.rows_of(np.fromiter(held.latest(), np.int64, len(held)))] = True
    unheld = replace(
        problem,
        edge_pin=np.where(is_held[g.edge_rows[:, 0]], FREE, problem.edge_pin).astype(np.int8),
        hyper_pin=np.where(is_held[g.hyper_rows[:, 0]], FREE, problem.hyper_pin).astype(np.int8),
    )
    task = _Task.of(unheld, others, reference, learn.subgraph)
    learner = _Learner(g, basis, task, solver_config, learn, w0, lower, deadline)
    w, converged = learner.run()
    target = _Task.of(problem, held, reference, learn.subgraph)

    def wrong(weights: np.ndarray) -> int:
        solution = solve_fast(replace(unheld, costs=basis.costs(weights)), solver_config)
        return round(target.loss(solution.selection))

    verdict["wrong_start"], verdict["wrong_learned"] = wrong(w0), wrong(w)
    better = learned_is_better(verdict["wrong_start"], verdict["wrong_learned"])
    verdict["kept"] = "learned" if better else "start"
    verdict["reason"] = (
        f"the weights learned from the other answers get {verdict['wrong_learned']} of "
        f"{len(held)} held-out answered cells wrong, the starting weights "
        f"{verdict['wrong_start']} (at least {MIN_GAIN} fewer needed)"
    )
    logger.info(
        "weight learning: %s; %s", verdict["reason"],
        "learning from every answer" if better else "keeping the starting weights",
    )  # fmt: skip
    return verdict, learner, converged


def _named(names: tuple[str, ...], w: np.ndarray) -> dict[str, float]:
    return {n: float(v) for n, v in zip(names, w, strict=True)}


def _lower_bounds(learn: LearnConfig) -> np.ndarray:
    bound = {n: 0.0 for n in _NON_NEGATIVE} | dict.fromkeys(_POSITIVE, learn.min_distance_weight)
    return np.array([bound.get(n, -np.inf) for n in learn.weights])


@dataclass
class _Basis:
    """The costs as ``base + features @ w`` per edge, hyper-edge, appear and disappear."""

    base: Costs
    edge: np.ndarray  # (E, K)
    hyper: np.ndarray  # (H, K)
    appear: np.ndarray  # (N, K)
    disappear: np.ndarray  # (N, K)

    @classmethod
    def of(
        cls, graph: CandidateGraph, config: LinkConfig, names: tuple[str, ...], meta: dict
    ) -> _Basis:
        base, units = cost_basis(graph, config, names, meta)

        def stack(kind: str) -> np.ndarray:
            return np.stack([getattr(u, kind) for u in units], axis=1)

        return cls(base, stack("edge"), stack("hyper"), stack("appear"), stack("disappear"))

    def costs(self, w: np.ndarray) -> Costs:
        b = self.base
        return Costs(
            b.edge + self.edge @ w,
            b.hyper + self.hyper @ w,
            b.appear + self.appear @ w,
            b.disappear + self.disappear @ w,
            b.appear_free,
            b.disappear_free,
        )

    def energy(self, graph: CandidateGraph, selection: Selection) -> tuple[float, np.ndarray]:
        """``(c(y), phi(y))``: the objective of ``selection`` is ``c + phi @ w``."""
        indeg, outdeg = degrees(graph, selection)
        starts = selection.nodes & (indeg == 0)
        ends = selection.nodes & (outdeg == 0)
        phi = (
            self.edge[selection.edges].sum(axis=0)
            + self.hyper[selection.hyper].sum(axis=0)
            + self.appear[starts].sum(axis=0)
            + self.disappear[ends].sum(axis=0)
        )
        return objective(graph, self.base, selection), phi


@dataclass
class _Task:
    """The answers as a loss, and the two problems over the sub-graph (pins; costs are set per
    solve): ``completion`` with the answers pinned, ``free`` without them.

    The loss of a selection is ``constant + edge_loss @ edges + hyper_loss @ hyper``: for a cell
    answered with children, ``1 - y(answered link)``; for a cell answered with none, the sum of
    its outgoing links.
    """

    completion: LinkProblem
    free: LinkProblem
    edge_loss: np.ndarray
    hyper_loss: np.ndarray
    constant: float
    answered: int
    free_links: int

    @classmethod
    def of(
        cls, problem: LinkProblem, annotations: Annotations, reference: Selection, subgraph: bool
    ) -> _Task:
        g = problem.graph
        answered = np.zeros(g.num_nodes, bool)
        answered[g.rows_of(np.fromiter(annotations.latest(), np.int64))] = True
        out_e = answered[g.edge_rows[:, 0]]
        out_h = answered[g.hyper_rows[:, 0]]
        target_e = out_e & (problem.edge_pin == ON)
        target_h = out_h & (problem.hyper_pin == ON)
        with_child = np.zeros(g.num_nodes, bool)
        with_child[g.edge_rows[target_e, 0]] = True
        with_child[g.hyper_rows[target_h, 0]] = True
        none_e = out_e & ~with_child[g.edge_rows[:, 0]]
        none_h = out_h & ~with_child[g.hyper_rows[:, 0]]
        edge_loss = np.where(target_e, -1.0, np.where(none_e, 1.0, 0.0))
        hyper_loss = np.where(target_h, -1.0, np.where(none_h, 1.0, 0.0))

        # free: the answered cells and the other candidate parents of their candidate children
        child = np.zeros(g.num_nodes, bool)
        child[g.edge_rows[out_e, 1]] = True
        chooses = answered.copy() if subgraph else np.ones(g.num_nodes, bool)
        chooses[g.edge_rows[child[g.edge_rows[:, 1]], 0]] = True
        free_e = chooses[g.edge_rows[:, 0]]
        free_h = chooses[g.hyper_rows[:, 0]]
        fixed_e = np.where(reference.edges, ON, OFF).astype(np.int8)
        fixed_h = np.where(reference.hyper, ON, OFF).astype(np.int8)

        def sub(edge_pin: np.ndarray, hyper_pin: np.ndarray) -> LinkProblem:
            return LinkProblem(
                g,
                problem.costs,
                np.where(free_e, edge_pin, fixed_e).astype(np.int8),
                np.where(free_h, hyper_pin, fixed_h).astype(np.int8),
                problem.node_pinned,
            )

        return cls(
            completion=sub(problem.edge_pin, problem.hyper_pin),
            free=sub(np.full(g.num_edges, FREE, np.int8), np.full(g.num_hyper, FREE, np.int8)),
            edge_loss=edge_loss,
            hyper_loss=hyper_loss,
            constant=float(target_e.sum() + target_h.sum()),
            answered=int(answered.sum()),
            free_links=int(free_e.sum() + free_h.sum()),
        )

    def loss(self, selection: Selection) -> float:
        return float(
            self.constant
            + self.edge_loss[selection.edges].sum()
            + self.hyper_loss[selection.hyper].sum()
        )

    def sizes(self) -> dict[str, int]:
        return {"answered": self.answered, "free_links": self.free_links}


class _Learner:
    """CCCP over completions, a bundle method (BMRM) within each (see the module text), until
    the ``deadline`` (a :func:`time.perf_counter` value; ``None``: none) has passed."""

    def __init__(
        self,
        graph: CandidateGraph,
        basis: _Basis,
        task: _Task,
        config: LinkConfig,
        learn: LearnConfig,
        w0: np.ndarray,
        lower: np.ndarray,
        deadline: float | None,
    ) -> None:
        self.graph, self.basis, self.task, self.config = graph, basis, task, config
        self.learn, self.w0, self.lower, self.deadline = learn, w0, lower, deadline
        self.timed_out = False
        self.cuts: list[tuple[float, np.ndarray, float]] = []  # (c(y), phi(y), loss(y))
        self.record: list[dict[str, Any]] = []
        self.rounds: list[dict[str, Any]] = []
        self.start = time.perf_counter()

    def solve(self, problem: LinkProblem, w: np.ndarray, augmented: bool) -> Selection:
        costs = self.basis.costs(w)
        if augmented:  # minimise E_w(y) - loss(y)
            costs.edge -= self.task.edge_loss
            costs.hyper -= self.task.hyper_loss
        solution = solve_fast(replace(problem, costs=costs), self.config)
        return solution.selection

    def wrong(self, w: np.ndarray) -> int:
        """Answered cells whose children the unpinned solution at ``w`` gets wrong."""
        return round(self.task.loss(self.solve(self.task.free, w, augmented=False)))

    def regulariser(self, w: np.ndarray) -> float:
        return 0.5 * self.learn.regularizer * float(np.sum((w - self.w0) ** 2))

    def run(self) -> tuple[np.ndarray, bool]:
        w = self.w0.copy()
        previous: Selection | None = None
        for number in range(self.learn.max_rounds):
            if self._out_of_time():
                return w, False
            completion = self.solve(self.task.completion, w, augmented=False)
            if previous is not None and _same(previous, completion):
                return w, True
            c_star, phi_star = self.basis.energy(self.graph, completion)
            w, converged = self.bundle(number, w, c_star, phi_star)
            if not converged:
                return w, False
            previous = completion
        return w, False

    def bundle(
        self, number: int, w: np.ndarray, c_star: float, phi_star: np.ndarray
    ) -> tuple[np.ndarray, bool]:
        """Minimise the convex upper bound for one completion; returns its best weights and
        whether the gap closed within the iteration and time budgets."""
        best_w, best = w, np.inf
        for iteration in range(self.learn.max_iterations - len(self.record)):
            if self._out_of_time():
                return best_w, False
            y = self.solve(self.task.free, w, augmented=True)
            c, phi = self.basis.energy(self.graph, y)
            self.cuts.append((c, phi, self.task.loss(y)))
            a = np.array([phi_star - p for _, p, _ in self.cuts])
            b = np.array([d + c_star - cc for cc, _, d in self.cuts])
            value = self.regulariser(w) + max(0.0, float(b[-1] + a[-1] @ w))
            if iteration == 0:  # the latent objective at the weights the round starts from
                self.rounds.append({"round": number, "latent_objective": value})
            if value < best:
                best_w, best = w, value
            try:
                w, bound = _bundle_qp(a, b, self.w0, self.learn.regularizer, self.lower)
            except SolverError as error:  # a numerically hard QP: keep what was learned
                logger.warning("%s; keeping the best weights found so far", error)
                if iteration:  # this iteration counted: record it (this round's last bound holds)
                    self._note(number, iteration, value, best, self.record[-1]["lower"], best_w)
                return best_w, False
            gap = self._note(number, iteration, value, best, bound, best_w)
            logger.debug("round %d iteration %d: %.6g (gap %.3g)", number, iteration, best, gap)
            if gap <= self.learn.eps * max(1.0, abs(best)):
                return best_w, True
        return best_w, False

    def _out_of_time(self) -> bool:
        """Whether the deadline has passed (then the learning stops: noted and logged)."""
        if self.deadline is None or time.perf_counter() < self.deadline:
            return False
        self.timed_out = True
        logger.info(
            "weight learning: the time bound stopped it after %.1f s and %d iterations; keeping "
            "the best weights so far", time.perf_counter() - self.start, len(self.record),
        )  # fmt: skip
        return True

    def _note(
        self, number: int, iteration: int, value: float, best: float, bound: float, w: np.ndarray
    ) -> float:
        """Record one bundle iteration (``w``: the best weights so far); returns its gap."""
        gap = best - bound
        self.record.append(
            {
                "round": number,
                "iteration": iteration,
                "objective": value,
                "best": best,
                "lower": bound,
                "gap": gap,
                "weights": _named(self.learn.weights, w),
                "seconds": time.perf_counter() - self.start,
            }
        )
        return gap


def _same(a: Selection, b: Selection) -> bool:
    return bool(np.array_equal(a.edges, b.edges) and np.array_equal(a.hyper, b.hyper))


def _bundle_qp(
    a: np.ndarray, b: np.ndarray, w0: np.ndarray, lam: float, lower: np.ndarray
) -> tuple[np.ndarray, float]:
    """``argmin lam/2 |w - w0|^2 + max(0, max_j b_j + a_j @ w)`` over ``w >= lower`` and its
    value, as a QP over ``(w, xi)`` in HiGHS."""
    import highspy

    k, m = len(w0), len(b)
    inf = highspy.kHighsInf
    model = highspy.HighsModel()
    lp = model.lp_
    lp.num_col_, lp.num_row_ = k + 1, m
    lp.col_cost_ = np.concatenate([-lam * w0, [1.0]])
    lp.col_lower_ = np.concatenate([np.where(np.isfinite(lower), lower, -inf), [0.0]])
    lp.col_upper_ = np.full(k + 1, inf)
    # xi - a_j @ w >= b_j
    dense = np.concatenate([-a, np.ones((m, 1))], axis=1)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.arange(0, m * (k + 1) + 1, m)
    lp.a_matrix_.index_ = np.tile(np.arange(m), k + 1)
    lp.a_matrix_.value_ = dense.T.ravel()
    lp.row_lower_ = b.astype(np.float64)
    lp.row_upper_ = np.full(m, inf)
    hessian = model.hessian_
    hessian.dim_ = k + 1
    hessian.format_ = highspy.HessianFormat.kTriangular
    hessian.start_ = np.concatenate([np.arange(k + 1), [k]])
    hessian.index_ = np.arange(k)
    hessian.value_ = np.full(k, float(lam))
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.passModel(model)
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        raise SolverError(f"bundle QP: {h.modelStatusToString(h.getModelStatus())}")
    x = np.asarray(h.getSolution().col_value)
    w = np.maximum(x[:k], lower)  # the QP's tolerance may leave a bound a hair short
    value = 0.5 * lam * float(np.sum((w - w0) ** 2)) + max(0.0, float(np.max(b + a @ w)))
    return w, value
