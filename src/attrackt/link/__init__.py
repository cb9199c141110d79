"""Linking: from detections (and optional associations and answers) to tracks.

``link`` lets associations in only where the label-free guard passes them (:mod:`.guard`),
builds the candidate graph (:mod:`.candidates`), prices it (:mod:`.costs`), fixes the
answered links (:mod:`.pins`) and solves the method's ILP exactly (:mod:`.fast_solver`, the
default), through motile as the reference does (:mod:`.motile_solver`), or greedily
(:mod:`.greedy`). :func:`learn_weights` learns the cost weights from the answers
(:mod:`.learn`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np

from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.link.candidates import CandidateGraph, build_candidates, candidate_links
from attrackt.link.config import LinkConfig
from attrackt.link.costs import Costs, compute_costs
from attrackt.link.fast_solver import solve_fast
from attrackt.link.greedy import solve_greedy
from attrackt.link.guard import GuardConfig, GuardVerdict, check_associations, count_changes
from attrackt.link.learn import LearnConfig, LearnResult, learn_weights
from attrackt.link.pins import pin_annotations
from attrackt.link.problem import LinkProblem, Selection, Solution, objective

__all__ = [
    "CandidateGraph",
    "Costs",
    "GuardConfig",
    "GuardVerdict",
    "LearnConfig",
    "LearnResult",
    "LinkConfig",
    "LinkProblem",
    "LinkResult",
    "Selection",
    "Solution",
    "build_candidates",
    "build_problem",
    "candidate_links",
    "check_associations",
    "guarded",
    "compute_costs",
    "learn_weights",
    "link",
    "objective",
    "solve",
]

logger = logging.getLogger(__name__)


@dataclass
class LinkResult:
    """Tracks and how they were found."""

    tracks: Tracks
    objective: float
    gap: float
    status: str
    solver: str
    seconds: float  # the whole call: graph, costs and solving
    solve_seconds: float
    graph_size: dict[str, int] = field(default_factory=dict)
    guard: GuardVerdict | None = None  # the guard's verdict on the associations, if it ran


def build_problem(
    detections: Detections,
    associations: Associations | None = None,
    annotations: Annotations | None = None,
    config: LinkConfig | None = None,
) -> LinkProblem:
    """Candidate graph, pinned answers and costs: the problem every solver gets."""
    config = config or LinkConfig()
    if len(detections) == 0:
        raise InputError("detections", "there are no detections to link")
    if not np.isfinite(detections.positions()).all():
        raise InputError("detections", "some positions are NaN or infinite")
    graph = build_candidates(detections, associations, config)
    problem = LinkProblem.free(graph, Costs.zeros(graph), config.pin_nodes)
    if annotations is not None and len(annotations):
        graph, edge_pin, hyper_pin = pin_annotations(
            graph, annotations, associations, config.max_gap
        )
        problem = LinkProblem(graph, problem.costs, edge_pin, hyper_pin, problem.node_pinned)
    problem.costs = compute_costs(graph, config, detections.meta)
    return problem


def solve(problem: LinkProblem, config: LinkConfig | None = None) -> Solution:
    """Solve with the solver ``config.solver`` names."""
    config = config or LinkConfig()
    if config.solver == "fast":
        return solve_fast(problem, config)
    if config.solver == "greedy":
        return solve_greedy(problem)
    from attrackt.link.motile_solver import solve_motile

    return solve_motile(problem, config)


def guarded(
    detections: Detections,
    associations: Associations | None,
    config: LinkConfig,
    guard: GuardConfig | None = None,
) -> tuple[Associations | None, GuardVerdict | None]:
    """The associations the linker may use under ``config`` (with ``config.guard``, only those of
    the sequences the label-free guard passes) and the guard's verdict (``None``: not run).

    The guard checks the easy cells (:func:`~attrackt.link.guard.check_associations`), then,
    where they pass, links with and without the associations (no answers pinned) and keeps
    them only where they change enough links (:meth:`GuardVerdict.require_changes`)."""
    kept, verdict, _ = _guard(detections, associations, config, guard)
    return kept, verdict


_Solved = tuple[LinkProblem, Solution]


def _guard(
    detections: Detections,
    associations: Associations | None,
    config: LinkConfig,
    guard: GuardConfig | None = None,
) -> tuple[Associations | None, GuardVerdict | None, dict[str, _Solved]]:
    """:func:`guarded`, and the linkings it solved on the way (``"use"``: with the associations
    of the sequences that passed the easy cells, ``"off"``: on position alone; no answers)."""
    if associations is None or not config.guard:
        return associations, None, {}
    verdict = check_associations(detections, associations, config, guard)
    solved: dict[str, _Solved] = {}
    if verdict.verdict != "off":
        for key, given in (("use", verdict.apply(associations)), ("off", None)):
            problem = build_problem(detections, given, None, config)
            solved[key] = (problem, solve(problem, config))
        links = {key: sol.selection.links(prob.graph) for key, (prob, sol) in solved.items()}
        verdict.require_changes(count_changes(detections, links["use"], links["off"]))
    for line in verdict.message().splitlines():
        logger.info("guard: %s", line)
    return verdict.apply(associations), verdict, solved


def link(
    detections: Detections,
    associations: Associations | None = None,
    annotations: Annotations | None = None,
    config: LinkConfig | None = None,
) -> LinkResult:
    """Link detections into tracks (see :class:`LinkConfig` for the model and the solvers).

    With ``config.guard`` (the default), associations change the linking only of the sequences
    where the label-free guard passes them (:func:`~attrackt.link.guard.check_associations`);
    its verdict is in the result.
    """
    config = config or LinkConfig()
    start = time.perf_counter()
    associations, verdict, solved = _guard(detections, associations, config)
    answered = annotations is not None and len(annotations) > 0
    if verdict is not None and not answered and verdict.verdict in solved:
        problem, solution = solved[verdict.verdict]  # the guard solved this very problem
    else:
        problem = build_problem(detections, associations, annotations, config)
        solution = solve(problem, config)
    kept = solution.selection.nodes
    dets = detections if kept.all() else detections.take(kept)
    tracks = Tracks(dets, solution.selection.links(problem.graph))
    seconds = time.perf_counter() - start
    logger.info(
        "linked %d detections with %s in %.1f s: %d links, objective %.6g (%s)",
        len(dets),
        solution.solver,
        seconds,
        len(tracks.edges),
        solution.objective,
        solution.status,
    )
    return LinkResult(
        tracks=tracks,
        objective=solution.objective,
        gap=solution.gap,
        status=solution.status,
        solver=solution.solver,
        seconds=seconds,
        solve_seconds=solution.seconds,
        graph_size=problem.graph.sizes(),
        guard=verdict,
    )
