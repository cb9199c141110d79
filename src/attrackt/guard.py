"""The label-free guard: do a model's associations know more than position does?

The Attrackt loss teaches a model that a cell's appearance is best predicted from its true
predecessor. The guard asks the same question of the finished associations, on frames the
model never trained on, and asks it of position alone too:

1. each detection's appearance embedding is reduced to its first ``dims`` principal components
   (centred, one overall scale);
2. for an association source ``a`` over the linker's candidate links, every child ``j`` gets
   the message ``m_j = sum_i a_ij z_i`` over its candidate parents ``i`` and the mass
   ``s_j = sum_i a_ij``; a ridge regression ``z_j ~ W [m_j, s_j, 1]``, cross-fitted over folds
   of frames, predicts ``z_j``, and its squared error is the source's *appearance error* for
   ``j`` (a linear stand-in for the loss's ``m_D(sum_i A_ij m_E(z_i))``);
3. the position-only source is ``softmax(-d / width)`` over the same candidates, with the width
   that gives position its lowest error;
4. the *gain* is the share of position's error that the model's associations remove; a
   bootstrap over frames gives its lower confidence bound. The associations are used where
   that bound is above ``margin``, and switched off otherwise: a model that cannot show it
   explains the movie better than position alone does not get to change the linking.

A model that links worse than position picks predecessors that predict appearance worse, so
its gain is negative; on look-alike cells, appearance cannot tell the two sources apart, the
bound straddles zero, and position is kept. Verdicts are per sequence (one movie each).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from attrackt.data import Associations, Detections
from attrackt.errors import InputError
from attrackt.link.affinities import position_associations
from attrackt.link.candidates import candidate_links
from attrackt.link.config import LinkConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuardConfig:
    """Settings of the guard (see the module docstring).

    ``dims``: principal components of the embedding used; ``folds``: cross-fitting folds of
    frames; ``ridge``: the ridge penalty relative to the mean feature energy; ``scales``: the
    position softmax widths tried, in units of the median nearest-candidate distance;
    ``confidence``: of the one-sided bootstrap bound; ``margin``: the gain the bound must
    exceed; ``min_cells``: fewer scored cells than this and the guard keeps position.
    """

    embedding: str = "embedding"
    dims: int = 16
    folds: int = 5
    ridge: float = 1e-3
    scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    confidence: float = 0.95
    resamples: int = 2000
    margin: float = 0.0
    min_cells: int = 30
    seed: int = 0

    def __post_init__(self) -> None:
        if self.dims < 1 or self.folds < 2 or self.resamples < 1 or self.min_cells < 1:
            raise InputError("guard configuration", "dims, resamples, min_cells >= 1; folds >= 2")
        if not 0.5 <= self.confidence < 1:
            raise InputError("guard configuration", "confidence must lie in [0.5, 1)")
        if not self.scales or min(self.scales) <= 0:
            raise InputError("guard configuration", "scales must be positive")


@dataclass
class SequenceVerdict:
    """The guard's finding on one sequence."""

    sequence: str
    use: bool
    gain: float
    gain_low: float
    model_error: float
    position_error: float
    position_scale: float
    cells: int
    frames: int
    scored_on: str  # "unseen frames" or "all frames" (the model's split was unknown)
    reason: str

    def summary(self, confidence: float) -> str:
        """The gain and its bound, in words."""
        return (
            f"gain {self.gain:+.1%}, {confidence:.0%} lower bound {self.gain_low:+.1%}, "
            f"{self.cells} cells of {self.frames} {self.scored_on}"
        )


@dataclass
class GuardVerdict:
    """The guard's findings, per sequence; :meth:`apply` switches associations off where the
    model did not show that it knows more than position."""

    sequences: dict[str, SequenceVerdict]
    config: GuardConfig = field(default_factory=GuardConfig)

    @property
    def verdict(self) -> str:
        """``"use"`` (every sequence), ``"off"`` (none) or ``"partly"``."""
        uses = {v.use for v in self.sequences.values()}
        if uses == {True}:
            return "use"
        return "off" if uses <= {False} else "partly"

    def association_weight(self, sequence: str) -> float:
        """1 where the associations are used, 0 where the guard switched them off."""
        found = self.sequences.get(sequence)
        return 1.0 if found is not None and found.use else 0.0

    def apply(self, associations: Associations) -> Associations:
        """The associations of the sequences where they are used, with the verdict in
        ``meta["guard"]`` (the others' are dropped: those sequences link on position)."""
        meta = dict(associations.meta, guard=self.to_dict())
        off = [name for name, v in self.sequences.items() if not v.use]
        if not off:
            return Associations(associations.table, meta)
        sources = associations.table["source"].to_numpy()
        keep = ~np.isin(sources, np.concatenate([self._ids[name] for name in off]))
        return Associations(associations.table[keep], meta)

    def message(self) -> str:
        """One plain line per sequence for a person."""
        lines = []
        for v in self.sequences.values():
            how = "used" if v.use else "NOT used: linking on position only"
            lines.append(
                f"{v.sequence or 'sequence'}: the model's associations are {how} "
                f"({v.reason}; {v.summary(self.config.confidence)})"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able record (``guard.json``)."""
        weights = {name: self.association_weight(name) for name in self.sequences}
        reasons = "; ".join(f"{n or 'sequence'}: {v.reason}" for n, v in self.sequences.items())
        return {
            "verdict": {"use": "use", "off": "off", "partly": "down-weighted"}[self.verdict],
            "association_weight": float(np.mean(list(weights.values()))) if weights else 0.0,
            "weights": weights,
            "reason": reasons,
            "criterion": {
                "name": "held-out appearance error, model vs position (relative gain)",
                "margin": self.config.margin,
                "confidence": self.config.confidence,
            },
            "sequences": {name: asdict(v) for name, v in self.sequences.items()},
            "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in
                       asdict(self.config).items()},
        }  # fmt: skip

    _ids: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def reduce_embedding(z: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal components of ``z`` (rows), centred, scaled so that their
    mean square is 1."""
    z = np.asarray(z, np.float64)
    centred = z - z.mean(axis=0)
    if centred.shape[1] > dims:
        _, _, vt = np.linalg.svd(centred[:: max(1, len(centred) // 20000)], full_matrices=False)
        centred = centred @ vt[:dims].T
    scale = np.sqrt((centred**2).mean())
    return centred / (scale if scale > 1e-12 else 1.0)


def appearance_errors(
    z: np.ndarray,
    parent: np.ndarray,
    child: np.ndarray,
    score: np.ndarray,
    scored: np.ndarray,
    fold: np.ndarray,
    ridge: float,
) -> np.ndarray:
    """Per scored child: the cross-fitted squared error (mean over dimensions) of predicting
    its ``z`` from the ``score``-weighted message of its candidate parents (module docstring).

    ``parent``/``child``/``score`` (E,) describe the candidate links by row; ``scored`` (C,)
    are the child rows to score and ``fold`` (C,) their fold.
    """
    n, dims = z.shape
    message = np.zeros((n, dims))
    np.add.at(message, child, score[:, None] * z[parent])
    mass = np.bincount(child, weights=score, minlength=n)
    x = np.column_stack([message[scored], mass[scored], np.ones(len(scored))])
    y = z[scored]
    errors = np.empty(len(scored))
    for f in np.unique(fold):
        test = fold == f
        train = ~test
        if not train.any():
            errors[test] = np.mean(y[test] ** 2, axis=1)
            continue
        gram = x[train].T @ x[train]
        penalty = ridge * np.trace(gram) / len(gram) + 1e-9
        w = np.linalg.solve(gram + penalty * np.eye(len(gram)), x[train].T @ y[train])
        errors[test] = np.mean((y[test] - x[test] @ w) ** 2, axis=1)
    return errors


def _frame_bootstrap(
    frames: np.ndarray, gain_part: np.ndarray, base: np.ndarray, config: GuardConfig
) -> float:
    """The lower ``config.confidence`` bound of ``sum(gain_part) / sum(base)`` when frames are
    resampled with replacement."""
    keys, inverse = np.unique(frames, return_inverse=True)
    per_gain = np.bincount(inverse, weights=gain_part, minlength=len(keys))
    per_base = np.bincount(inverse, weights=base, minlength=len(keys))
    rng = np.random.default_rng(config.seed)
    draws = rng.integers(len(keys), size=(config.resamples, len(keys)))
    ratios = per_gain[draws].sum(1) / np.maximum(per_base[draws].sum(1), 1e-12)
    return float(np.quantile(ratios, 1 - config.confidence))


def check_associations(
    detections: Detections,
    associations: Associations,
    link_config: LinkConfig | None = None,
    unseen: np.ndarray | None = None,
    config: GuardConfig | None = None,
) -> GuardVerdict:
    """Whether ``associations`` explain appearance better than position, per sequence.

    ``unseen`` (N,) bool marks the detections the model never trained on (from
    :func:`attrackt.training.unseen_rows`); the guard scores those children only (``None``:
    every child, with a warning that the verdict may favour the model).
    """
    config = config or GuardConfig()
    link_config = link_config or LinkConfig()
    if config.embedding not in detections.vectors:
        raise InputError(
            "detections",
            f"the guard needs the appearance embedding {config.embedding!r} (the detections "
            f"carry {sorted(detections.vectors)}); run `attrackt embed` first",
        )
    scored_on = "unseen frames"
    if unseen is None:
        scored_on = "all frames"
        logger.warning(
            "the guard scores frames the model may have trained on: its verdict can favour "
            "the model (train with held-out frames, --val-frames > 0)"
        )
        unseen = np.ones(len(detections), bool)
    z = reduce_embedding(detections.vectors[config.embedding], config.dims)
    pairs = candidate_links(detections, link_config)
    parent, child = (detections.rows_of(pairs.reshape(-1)).reshape(-1, 2).T
                     if len(pairs) else (np.zeros(0, np.int64),) * 2)  # fmt: skip
    model_score = associations.lookup(pairs[:, 0], pairs[:, 1]).astype(np.float64)
    has_parent = np.bincount(child, minlength=len(detections)) > 0
    scored = np.flatnonzero(has_parent & unseen)
    times = detections.times[scored]
    sequences = detections.table["sequence"].to_numpy()[scored]
    fold = np.unique(times, return_inverse=True)[1] % config.folds

    model = appearance_errors(z, parent, child, model_score, scored, fold, config.ridge)
    best_scale, position = None, None
    for scale in config.scales:
        ref = position_associations(detections, link_config, scale)
        score = ref.lookup(pairs[:, 0], pairs[:, 1]).astype(np.float64)
        errors = appearance_errors(z, parent, child, score, scored, fold, config.ridge)
        if position is None or errors.sum() < position.sum():
            best_scale, position = scale, errors

    verdicts: dict[str, SequenceVerdict] = {}
    ids: dict[str, np.ndarray] = {}
    all_sequences = detections.table["sequence"].to_numpy()
    for name in dict.fromkeys(all_sequences):
        ids[name] = detections.ids[all_sequences == name]
        sel = sequences == name
        cells, frames = int(sel.sum()), len(np.unique(times[sel]))
        pos_err, mod_err = float(position[sel].sum()), float(model[sel].sum())
        if cells < config.min_cells or frames < 2:
            gain = low = 0.0
            use, reason = False, f"too few unseen cells to judge ({cells} in {frames} frames)"
        else:
            gain = (pos_err - mod_err) / max(pos_err, 1e-12)
            low = _frame_bootstrap(times[sel], position[sel] - model[sel], position[sel], config)
            use = low > config.margin
            reason = (
                "they explain appearance better than position alone"
                if use
                else "they do not explain appearance reliably better than position alone"
            )
        verdicts[name] = SequenceVerdict(
            sequence=str(name), use=bool(use), gain=float(gain), gain_low=float(low),
            model_error=mod_err / max(cells, 1), position_error=pos_err / max(cells, 1),
            position_scale=float(best_scale or 0.0), cells=cells, frames=frames,
            scored_on=scored_on,
            reason=reason,
        )  # fmt: skip
    result = GuardVerdict(verdicts, config, ids)
    for line in result.message().splitlines():
        logger.info("guard: %s", line)
    return result
