"""The label-free guard: may a model's associations change the linking?

Where the nearest candidate parent of a cell is much nearer than the second nearest (an *easy*
cell: nearest at most ``easy_ratio`` times the second distance), position alone is almost
never wrong: on the training movies (01) of the benchmark, 99.5-99.9 % of easy cells' nearest
candidate is the true parent. A model that knows more than position therefore agrees with it
there, up to position's own rare errors; a model that picks another parent for many easy
cells has learned something other than the links (measured on DIC-C2DH-HeLa: unsupervised
models that linked worse than position disagreed on 7-32 % of easy cells, those that linked
better on HeLa on 0.1-0.5 %).

The guard counts, per sequence, the easy cells whose highest-scored candidate parent is not
the nearest one (or that get no score at all), bounds that share from above (one-sided
Clopper-Pearson at ``confidence``), and lets the associations change the linking only where
the bound is at most ``max_disagreement``. Elsewhere the associations are dropped and the
sequence is linked on position alone. It needs no labels and no appearance embedding: what is
scored is exactly what the linker will read.

A model can also agree with position on the easy cells and still not be worth using: where its
linking differs from position's in only a handful of links, what it could gain is a handful
of links, fewer than its seeds disagree by. So a model that passes the easy cells must also
change at least ``min_changes`` links of its sequence's linking (against position alone, no
answers pinned: :func:`count_changes`), else the sequence is linked on position alone. On the
training movies (01) of the benchmark's two accuracy runs (``bench/results/accuracy.json`` and
``accuracy_interactive_base.json``, ``tuning``), ten unsupervised models passed the easy cells
but changed only 3 to 9 links: five linked better than position (by 0.5 to 8 AOGM), five worse
(by 1.5 to 4.5), a coin toss the guard does not take; the six that changed 68 to 94 links all
linked far better. ``min_changes`` (25) lies between the two groups; it was set on the second
run's 01 movies (where the four small changers were all worse), before the first was re-run.

Appearance itself is not a safe judge: on DIC-C2DH-HeLa, associations that linked worse than
position predicted each cell's embedding better than its true parent did (the model learned to
match look-alikes), so a criterion built on the Attrackt loss would have kept them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link.candidates import candidate_links
from attrackt.link.config import LinkConfig


@dataclass(frozen=True)
class GuardConfig:
    """Settings of the guard (see the module docstring); chosen on the training movies.

    ``easy_ratio``: a cell is easy when its nearest candidate parent is at most this fraction
    of the second nearest's distance; ``max_disagreement``: the largest share of easy cells on
    which the model may prefer another parent; ``confidence``: of the upper bound on that
    share; ``min_easy``: fewer easy cells than this and the guard keeps position;
    ``min_changes``: the fewest links the associations must change in a sequence's linking.
    """

    easy_ratio: float = 0.5
    max_disagreement: float = 0.02
    confidence: float = 0.95
    min_easy: int = 50
    min_changes: int = 25

    def __post_init__(self) -> None:
        if not 0 < self.easy_ratio < 1:
            raise InputError("guard configuration", "easy_ratio must lie in (0, 1)")
        if not 0 <= self.max_disagreement < 1:
            raise InputError("guard configuration", "max_disagreement must lie in [0, 1)")
        if not 0.5 <= self.confidence < 1:
            raise InputError("guard configuration", "confidence must lie in [0.5, 1)")
        if self.min_easy < 1:
            raise InputError("guard configuration", "min_easy must be at least 1")
        if self.min_changes < 0:
            raise InputError("guard configuration", "min_changes must be at least 0")


@dataclass
class SequenceVerdict:
    """The guard's finding on one sequence."""

    sequence: str
    use: bool
    easy: int  # easy cells
    disagreements: int  # easy cells whose best-scored parent is not the nearest
    disagreement: float  # their share
    upper: float  # its upper confidence bound
    reason: str
    changes: int | None = None  # links the associations change (None: not counted)

    def summary(self) -> str:
        """The finding in words."""
        return (
            f"prefers another parent than the obvious nearest one for {self.disagreements} of "
            f"{self.easy} easy cells ({self.disagreement:.2%}, at most {self.upper:.2%})"
        )


@dataclass
class GuardVerdict:
    """The guard's findings, per sequence; :meth:`apply` drops the associations where the
    model did not pass."""

    sequences: dict[str, SequenceVerdict]
    config: GuardConfig = field(default_factory=GuardConfig)
    ids: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def verdict(self) -> str:
        """``"use"`` (every sequence), ``"off"`` (none) or ``"partly"``."""
        uses = {v.use for v in self.sequences.values()}
        if uses == {True}:
            return "use"
        return "off" if uses <= {False} else "partly"

    def require_changes(self, changes: dict[str, int]) -> None:
        """Record how many links the associations change in each sequence they passed
        (:func:`count_changes`) and switch them off where that is below ``min_changes``."""
        for name, verdict in self.sequences.items():
            if not verdict.use:
                continue
            verdict.changes = n = int(changes.get(name, 0))
            if n < self.config.min_changes:
                verdict.use = False
                verdict.reason += (
                    f"; but it changes only {n} of position's links (fewer than "
                    f"{self.config.min_changes}): too little to be worth the risk"
                )
            else:
                verdict.reason += f"; it changes {n} of position's links"

    def association_weight(self, sequence: str) -> float:
        """1 where the associations are used, 0 where the guard switched them off."""
        found = self.sequences.get(sequence)
        return 1.0 if found is not None and found.use else 0.0

    def apply(self, associations: Associations) -> Associations:
        """The associations of the sequences that passed, with the verdict in
        ``meta["guard"]`` (the others' are dropped: those sequences link on position)."""
        meta = dict(associations.meta, guard=self.to_dict())
        off = [self.ids[name] for name, v in self.sequences.items() if not v.use]
        if not off:
            return Associations(associations.table, meta)
        keep = ~np.isin(associations.table["source"].to_numpy(), np.concatenate(off))
        return Associations(associations.table[keep], meta)

    def message(self) -> str:
        """One plain line per sequence for a person."""
        lines = []
        for v in self.sequences.values():
            how = "used" if v.use else "NOT used: linking on position only"
            lines.append(
                f"{v.sequence or 'movie'}: the model's associations are {how} ({v.reason})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able record (``guard.json``)."""
        weights = {name: self.association_weight(name) for name in self.sequences}
        return {
            "verdict": {"use": "use", "off": "off", "partly": "down-weighted"}[self.verdict],
            "association_weight": float(np.mean(list(weights.values()))) if weights else 0.0,
            "weights": weights,
            "reason": "; ".join(f"{n or 'movie'}: {v.reason}" for n, v in self.sequences.items()),
            "criterion": {
                "name": "share of easy cells where the model prefers another parent than the "
                "nearest (upper confidence bound); links it changes",
                "easy_ratio": self.config.easy_ratio,
                "max_disagreement": self.config.max_disagreement,
                "confidence": self.config.confidence,
                "min_changes": self.config.min_changes,
            },
            "sequences": {name: asdict(v) for name, v in self.sequences.items()},
        }


def _drift(offset: np.ndarray, child: np.ndarray, frame: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Each candidate link's share of the common motion of its child's frame: the median, over
    the frame's children, of the offset to the candidate nearest after removing the previous
    estimate (a stage drift or a flow of the whole field, which position alone ignores)."""
    drift = np.zeros_like(offset)
    for _ in range(rounds):
        dist = np.linalg.norm(offset - drift, axis=1)
        order = np.lexsort((dist, child))
        first = order[np.r_[True, child[order][1:] != child[order][:-1]]]
        frames, inverse = np.unique(frame[first], return_inverse=True)
        per_frame = np.stack(
            [np.median(offset[first][inverse == k], axis=0) for k in range(len(frames))]
        )
        drift = per_frame[np.searchsorted(frames, frame)]
    return drift


def easy_disagreements(
    detections: Detections,
    associations: Associations,
    link_config: LinkConfig | None = None,
    easy_ratio: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Row of each easy cell (see the module docstring) and whether the associations' best
    candidate parent for it is another than its nearest (or it has no score at all).

    Distances are taken after removing each frame's common motion (:func:`_drift`), so that a
    drifting field does not make position look wrong where it is only shifted."""
    pairs = candidate_links(detections, link_config or LinkConfig())
    if not len(pairs):
        return np.zeros(0, np.int64), np.zeros(0, bool)
    parent, child = detections.rows_of(pairs.reshape(-1)).reshape(-1, 2).T
    scale = None if link_config is None else link_config.voxel_size
    pos = detections.positions(scale)
    sequence = pd.factorize(detections.table["sequence"])[0]
    frame = sequence[child] * (int(detections.times.max()) + 1) + detections.times[child]
    offset = pos[child] - pos[parent]
    dist = np.linalg.norm(offset - _drift(offset, child, frame), axis=1)
    score = associations.lookup(pairs[:, 0], pairs[:, 1])
    by_distance = np.lexsort((dist, child))
    first = np.flatnonzero(np.r_[True, child[by_distance][1:] != child[by_distance][:-1]])
    count = np.diff(np.r_[first, len(child)])
    has_second = count >= 2
    nearest = by_distance[first[has_second]]
    second = by_distance[first[has_second] + 1]
    easy = dist[nearest] <= easy_ratio * dist[second]
    nearest, cells = nearest[easy], child[nearest[easy]]
    # the best-scored candidate of each easy cell (ties to the nearer one)
    by_score = np.lexsort((dist, -score, child))
    best = by_score[np.flatnonzero(np.r_[True, child[by_score][1:] != child[by_score][:-1]])]
    best_of = dict(zip(child[best].tolist(), best.tolist(), strict=True))
    chosen = np.array([best_of[c] for c in cells.tolist()], np.int64)
    disagrees = (chosen != nearest) | (score[chosen] <= 0)
    return cells, disagrees


def count_changes(
    detections: Detections, with_model: np.ndarray, position: np.ndarray
) -> dict[str, int]:
    """Per sequence, the links (parent -> child id pairs) of ``with_model`` that ``position``
    does not have: how many links the associations changed."""
    with_model = np.asarray(with_model, np.int64).reshape(-1, 2)
    position = np.asarray(position, np.int64).reshape(-1, 2)
    new = ~pd.MultiIndex.from_arrays(with_model.T).isin(pd.MultiIndex.from_arrays(position.T))
    names = detections.table["sequence"].to_numpy()
    children = names[detections.rows_of(with_model[new, 1])]
    found, counts = np.unique(children, return_counts=True)
    return dict(zip(found.tolist(), counts.tolist(), strict=True))


def check_associations(
    detections: Detections,
    associations: Associations,
    link_config: LinkConfig | None = None,
    config: GuardConfig | None = None,
) -> GuardVerdict:
    """Whether ``associations`` may change the linking of each sequence (module docstring)."""
    config = config or GuardConfig()
    cells, disagrees = easy_disagreements(detections, associations, link_config, config.easy_ratio)
    names = detections.table["sequence"].to_numpy()
    verdicts: dict[str, SequenceVerdict] = {}
    ids: dict[str, np.ndarray] = {}
    for name in dict.fromkeys(names):
        ids[name] = detections.ids[names == name]
        mine = names[cells] == name
        n, k = int(mine.sum()), int(disagrees[mine].sum())
        upper = float(beta.ppf(config.confidence, k + 1, n - k)) if k < n else 1.0
        verdict = SequenceVerdict(
            sequence=str(name), use=False, easy=n, disagreements=k,
            disagreement=k / n if n else 0.0, upper=min(upper, 1.0), reason="",
        )  # fmt: skip
        if n < config.min_easy:
            verdict.reason = f"too few easy cells to judge ({n} < {config.min_easy})"
        else:
            verdict.use = verdict.upper <= config.max_disagreement
            limit = f"{config.max_disagreement:.0%}"
            verdict.reason = f"the model {verdict.summary()}; " + (
                f"within the {limit} allowed" if verdict.use else f"more than the {limit} allowed"
            )
        verdicts[name] = verdict
    return GuardVerdict(verdicts, config, ids)
