"""Turn a person's answers (:class:`~attrackt.data.Annotations`) into fixed links.

An answer "parent -> one child" forces that edge in, "parent -> two children" forces that
division hyper-edge in, "parent -> no child" forces every outgoing link of the parent out; every
other outgoing link of an answered parent is forced out. Answered links missing from the
candidate graph are added to it.
"""

from __future__ import annotations

import numpy as np

from attrackt.data import Annotations, Associations
from attrackt.errors import InputError
from attrackt.link.candidates import CandidateGraph
from attrackt.link.problem import FREE, OFF, ON


def pin_annotations(
    graph: CandidateGraph,
    annotations: Annotations,
    associations: Associations | None = None,
    max_gap: int | None = None,
) -> tuple[CandidateGraph, np.ndarray, np.ndarray]:
    """The graph with any missing answered links added, and the edge and hyper-edge pins
    (-1 free, 0 out, 1 in).

    Each answer is checked first: its cells must exist, and every child must be in a later frame
    of the same sequence, within ``max_gap`` frames (the linker's reach; ``None``: any), with
    two children in one frame and no child claimed twice. A bad answer is an
    :class:`~attrackt.errors.InputError` naming the journal and the answer.
    """
    source = annotations.path if annotations.path is not None else "annotations"
    answers = annotations.latest()
    parents = np.fromiter(answers.keys(), np.int64, len(answers))
    kids = [tuple(int(c) for c in answers[int(p)]) for p in parents]
    _check(graph, source, parents, kids, max_gap)
    edges, hypers = [], []
    for p, ch in zip(parents.tolist(), kids, strict=True):
        if len(ch) == 1:
            edges.append((p, ch[0]))
        elif len(ch) == 2:
            hypers.append((p, *ch))
    edge_rows = graph.rows_of(np.asarray(edges, np.int64).ravel()).reshape(-1, 2)
    hyper_rows = graph.rows_of(np.asarray(hypers, np.int64).ravel()).reshape(-1, 3)
    graph, edge_idx, hyper_idx = graph.with_links(edge_rows, hyper_rows, associations)
    edge_pin = np.full(graph.num_edges, FREE, np.int8)
    hyper_pin = np.full(graph.num_hyper, FREE, np.int8)
    answered = np.zeros(graph.num_nodes, bool)
    answered[graph.rows_of(parents)] = True
    edge_pin[answered[graph.edge_rows[:, 0]]] = OFF
    hyper_pin[answered[graph.hyper_rows[:, 0]]] = OFF
    edge_pin[edge_idx] = ON
    hyper_pin[hyper_idx] = ON
    return graph, edge_pin, hyper_pin


def _check(
    graph: CandidateGraph,
    source: object,
    parents: np.ndarray,
    kids: list[tuple[int, ...]],
    max_gap: int | None,
) -> None:
    known = set(graph.ids.tolist())
    seen: dict[int, int] = {}
    all_ids = [int(p) for p in parents] + [c for ch in kids for c in ch]
    unknown = sorted({i for i in all_ids if i not in known})
    if unknown:
        raise InputError(source, f"answers name detections that do not exist: {unknown[:5]}")
    rows = {int(i): int(r) for i, r in zip(graph.ids.tolist(), range(graph.num_nodes), strict=True)}
    for p, ch in zip(parents.tolist(), kids, strict=True):
        if len(ch) > 2 or len(set(ch)) != len(ch):
            raise InputError(source, f"detection {p} is given children {list(ch)}")
        if len(ch) == 2 and graph.t[rows[ch[0]]] != graph.t[rows[ch[1]]]:
            raise InputError(source, f"the two children of detection {p} are in different frames")
        pr = rows[p]
        for c in ch:
            cr = rows[c]
            answer = f"the answer {p} -> {list(ch)} (frame {graph.t[pr]} -> {graph.t[cr]})"
            if graph.sequence[cr] != graph.sequence[pr] or graph.t[cr] <= graph.t[pr]:
                raise InputError(
                    source,
                    f"{answer}: detection {c} cannot be a child of {p}: it is not later in the "
                    "same sequence; answer the cell again",
                )
            if max_gap is not None and graph.t[cr] - graph.t[pr] > max_gap:
                raise InputError(
                    source,
                    f"{answer}: detection {c} is {graph.t[cr] - graph.t[pr]} frames after {p}, "
                    f"beyond the linker's reach of {max_gap} frame(s) (max_gap); answer the cell "
                    "again, or link with a larger max_gap",
                )
            if c in seen:
                raise InputError(
                    source, f"detection {c} is answered as a child of both {seen[c]} and {p}"
                )
            seen[c] = p
