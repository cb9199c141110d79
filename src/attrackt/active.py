"""Where to proof-read: ambiguity scores per detection, rankings, and a simulated proof-reader.

A detection's **confidence** score starts from the method's ``|sum_out A(v) - sum_out S(v)|``:
the association mass the model sends from ``v`` to the next frame against the number of links
to the next frame the solver chose for ``v``. A model that believes ``v`` divides (mass near 2)
while the solver gives it one child, or one that believes ``v`` ends while the solver links it,
scores high. Given the solver's linking settings (``candidates``), ``sum_out A(v)`` counts only
the mass on links the solver could choose (its candidate graph): a model's diffuse mass towards
cells no candidate link joins otherwise dominates the ranking (measured on HeLa 02: of a
ranking's top 250 cells, 1 was linked wrongly counting all mass, 48 counting candidate links).

Where the solver divides ``v``, the score also weighs what the model says at the solver's
divisions: models trained without labels send little mass across a division (the mother looks
unlike her daughters), so against 2 the correct divisions came first and the false ones (one strong
child, mass near 1) after them. A divided cell scores ``2 - m + max(|mass - m|, gap)``, with
``m`` the median mass over the solver's divisions in its sequence and ``gap`` the difference
between the scores of its two chosen children (a false division keeps one strong child): a
typical division keeps the method's score for this model's typical mass, and the unusual ones
come before it.

Only a model the linker trusts is calibrated against: in a sequence where the solver's label-free
guard switched the associations off (:func:`attrackt.link.guarded`), or that no association
covers, ``m`` is 2 (the method's score, which asks about the solver's divisions first). Chosen
on the training movies 01 against the method's score (``bench/ranking.py`` ->
``results/ranking.json``: HeLa, DIC, two synthetic movies, the accuracy benchmark's models, 3
seeds): it puts more wrongly linked cells among a ranking's top 10 and 25 on HeLa and on the
look-alike movie, and pinning HeLa 01's top 10 / 100 answers leaves fewer errors; on the
crowded movie it finds fewer at 100 cells. On DIC, whose models the guard switches off,
nothing changes."""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from attrackt.data import Annotations, Answer, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path
from attrackt.io.jsonfile import strict_json
from attrackt.link import guarded
from attrackt.link.candidates import candidate_links
from attrackt.link.config import LinkConfig

logger = logging.getLogger(__name__)

Strategy = Literal["confidence", "random", "oracle"]
STRATEGIES: tuple[str, ...] = ("confidence", "random", "oracle")


@dataclass(frozen=True)
class RankConfig:
    """How to rank: the ``strategy``, the ``seed`` of random scores and of tie-breaking, and how
    many of the model's best children (``alternatives``) the table lists per cell."""

    strategy: Strategy = "confidence"
    seed: int = 0
    alternatives: int = 3

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InputError("rank config", f"strategy must be one of {STRATEGIES}")
        if self.alternatives < 0:
            raise InputError("rank config", "alternatives must be >= 0")


# --------------------------------------------------------------------------------------------
# scores
# --------------------------------------------------------------------------------------------


def askable(detections: Detections) -> np.ndarray:
    """Boolean per row: the detection's sequence has a later frame (so it can have children)."""
    last = detections.table.groupby("sequence")["t"].transform("max").to_numpy()
    return detections.times < last


def next_frame_degree(detections: Detections, tracks: Tracks) -> np.ndarray:
    """Links of each detection (rows of ``detections``) to the next frame in ``tracks``.

    ``tracks`` may hold a subset or superset of the detections; links from detections not in
    ``detections`` are ignored, and a detection missing from ``tracks`` has none.
    """
    rows = detections.rows_of(next_frame_links(detections, tracks)[:, 0])
    return np.bincount(rows, minlength=len(detections))


def ambiguity_scores(
    detections: Detections,
    solver: Tracks,
    associations: Associations | None = None,
    strategy: Strategy = "confidence",
    gt: Tracks | None = None,
    seed: int = 0,
    candidates: LinkConfig | None = None,
) -> np.ndarray:
    """One score per row of ``detections`` (higher = look here first); see the module text.

    ``confidence`` needs ``associations``, ``oracle`` needs the ground truth ``gt`` (over the
    same detection ids), ``random`` needs neither. ``candidates``: the linking settings of
    ``solver``, whose candidate links bound the association mass counted (all of it if None).
    """
    if strategy not in STRATEGIES:
        raise InputError("strategy", f"must be one of {STRATEGIES}, got {strategy!r}")
    if strategy == "random":
        return np.random.default_rng(seed).random(len(detections))
    if strategy == "confidence":
        if associations is None:
            raise InputError("associations", "confidence scores need the model's associations")
        trusted = None
        if candidates is not None:
            _, verdict = guarded(detections, associations, candidates)
            if verdict is not None:
                trusted = [name for name, v in verdict.sequences.items() if v.use]
            associations = associations.between(candidate_links(detections, candidates))
        return confidence_scores(detections, solver, associations, trusted)
    if gt is None:
        raise InputError("ground truth", "the oracle strategy needs ground-truth tracks")
    known = gt.detections.has_ids(detections.ids)
    if not known.all():
        logger.warning(
            "%d of %d detections are not in the ground truth; the oracle sees no links for them",
            int((~known).sum()),
            len(detections),
        )
    return wrong_links(detections, solver, gt).astype(np.float64)


def next_frame_links(detections: Detections, tracks: Tracks) -> np.ndarray:
    """The ``(E, 2)`` links of ``tracks`` from a detection of ``detections`` to the next frame."""
    edges = tracks.edges
    if not len(edges):
        return np.zeros((0, 2), np.int64)
    own = tracks.detections
    t = own.times[own.rows_of(edges.ravel())].reshape(-1, 2)
    return edges[(t[:, 1] - t[:, 0] == 1) & detections.has_ids(edges[:, 0])]


def confidence_scores(
    detections: Detections,
    solver: Tracks,
    associations: Associations,
    trusted: Collection[str] | None = None,
) -> np.ndarray:
    """The confidence score of each row of ``detections`` (see the module text); ``trusted``:
    the sequences whose divisions are scored against the model's own mass at the solver's
    divisions (None: every sequence), elsewhere against 2."""
    links = next_frame_links(detections, solver)
    rows = detections.rows_of(links[:, 0])
    chosen = np.bincount(rows, minlength=len(detections))
    mass = associations.outgoing_mass(detections.ids, dt=1).astype(np.float64)
    scores = np.abs(mass - chosen)
    linked = associations.lookup(links[:, 0], links[:, 1]).astype(np.float64)
    strongest = np.zeros(len(detections))
    np.maximum.at(strongest, rows, linked)
    weakest = np.full(len(detections), np.inf)
    np.minimum.at(weakest, rows, linked)
    sequence, names = pd.factorize(detections.table["sequence"])
    for seq, name in enumerate(names):
        divided = (chosen == 2) & (sequence == seq)
        known = trusted is None or name in trusted
        if not known or not divided.any() or not mass[sequence == seq].any():
            continue  # nothing to calibrate against: the method's score stands
        typical = np.median(mass[divided])
        gap = strongest[divided] - weakest[divided]
        unusual = np.maximum(np.abs(mass[divided] - typical), gap)
        scores[divided] = 2 - typical + unusual
    return scores


def wrong_links(detections: Detections, solver: Tracks, gt: Tracks) -> np.ndarray:
    """Per row of ``detections``: the solver's next-frame links from it that the ground truth
    lacks plus the ground truth's that the solver lacks."""

    def next_frame(tracks: Tracks) -> set[tuple[int, int]]:
        return set(map(tuple, next_frame_links(tracks.detections, tracks).tolist()))

    differ = next_frame(solver) ^ next_frame(gt)
    counts = pd.Series([p for p, _ in differ], dtype=np.int64).value_counts()
    return counts.reindex(detections.ids, fill_value=0).to_numpy()


# --------------------------------------------------------------------------------------------
# the ranking table
# --------------------------------------------------------------------------------------------


def _children_lists(ids: np.ndarray, edges: np.ndarray) -> list[list[int]]:
    """The children of each of ``ids`` by ``edges`` (empty list where none)."""
    kids = pd.Series(edges[:, 1]).groupby(edges[:, 0]).agg(list) if len(edges) else pd.Series()
    found = kids.reindex(ids)
    return [v if isinstance(v, list) else [] for v in found.tolist()]


def _best_children(
    ids: np.ndarray, associations: Associations | None, n: int
) -> tuple[list[list[int]], list[list[float]]]:
    """The model's ``n`` highest-scored next-frame children of each of ``ids``, with scores."""
    if associations is None or n == 0:
        return [[] for _ in ids], [[] for _ in ids]
    table = associations.table
    table = table[(table["dt"] == 1) & table["source"].isin(ids)]
    top = table.sort_values(["source", "score"], ascending=[True, False], kind="stable")
    top = top.groupby("source").head(n)
    grouped = top.groupby("source")
    targets = grouped["target"].agg(list).reindex(ids)
    scores = grouped["score"].agg(lambda s: [round(float(v), 4) for v in s]).reindex(ids)
    return (
        [v if isinstance(v, list) else [] for v in targets.tolist()],
        [v if isinstance(v, list) else [] for v in scores.tolist()],
    )


def rank_cells(
    detections: Detections,
    solver: Tracks,
    associations: Associations | None = None,
    config: RankConfig | None = None,
    gt: Tracks | None = None,
    annotations: Annotations | None = None,
    candidates: LinkConfig | None = None,
) -> pd.DataFrame:
    """The detections that can still be asked about, most ambiguous first (``candidates``: see
    :func:`ambiguity_scores`).

    Columns: ``rank`` (1, 2, ...), ``id``, ``sequence``, ``t``, ``[z,] y, x``, ``score``,
    ``solver_children`` (the solver's children of the cell), ``model_children`` and
    ``model_scores`` (the model's best next-frame children and their association scores).
    Cells in the last frame of their sequence and cells answered in ``annotations`` are left out.
    """
    config = config or RankConfig()
    scores = ambiguity_scores(
        detections, solver, associations, config.strategy, gt, config.seed, candidates
    )
    keep = askable(detections)
    if annotations is not None and len(annotations):
        keep &= ~np.isin(detections.ids, np.fromiter(annotations.latest(), np.int64))
    rows = np.flatnonzero(keep)
    tiebreak = np.random.default_rng(config.seed + 1).permutation(len(rows))
    order = rows[np.lexsort((tiebreak, -scores[rows]))]
    table = detections.table.iloc[order]
    ids = table["id"].to_numpy()
    model_children, model_scores = _best_children(ids, associations, config.alternatives)
    out = pd.DataFrame(
        {
            "rank": np.arange(1, len(order) + 1),
            "id": ids,
            "sequence": table["sequence"].to_numpy(),
            "t": table["t"].to_numpy(),
            **{a: table[a].to_numpy() for a in detections.spatial_axes},
            "score": scores[order],
            "solver_children": _children_lists(ids, solver.edges),
            "model_children": model_children,
            "model_scores": model_scores,
        }
    )
    return out


def select(ranking: pd.DataFrame, budget: int) -> np.ndarray:
    """The ids of the ``budget`` top-ranked cells (all of them, with a warning, when fewer)."""
    if budget < 0:
        raise InputError("budget", f"must be >= 0, got {budget}")
    if budget > len(ranking):
        logger.warning(
            "a budget of %d cells is more than the %d cells left to ask about; taking all of them",
            budget,
            len(ranking),
        )
    return ranking["id"].to_numpy()[:budget]


_LIST_COLUMNS = ("solver_children", "model_children", "model_scores")


def save_ranking(ranking: pd.DataFrame, path: str | Path) -> None:
    """Write a ranking as ``.csv`` (lists joined by ``;``) or ``.json`` (records), atomically."""
    path = Path(path)
    if path.suffix == ".json":
        text = strict_json(ranking.to_dict("records"), indent=1)
    elif path.suffix == ".csv":
        flat = ranking.copy()
        for col in _LIST_COLUMNS:
            flat[col] = [";".join(map(str, v)) for v in flat[col]]
        text = flat.to_csv(index=False)
    else:
        raise InputError(path, "write a ranking to .csv or .json")
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def load_ranking(path: str | Path) -> pd.DataFrame:
    """Read a ranking written by :func:`save_ranking`."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such ranking file")
    try:
        if path.suffix == ".json":
            return pd.DataFrame.from_records(json.loads(path.read_text(encoding="utf-8")))
        flat = pd.read_csv(path, keep_default_na=False, dtype={"sequence": str})
    except (ValueError, pd.errors.ParserError) as err:
        raise InputError(path, f"not a readable ranking ({err})") from err
    missing = [c for c in ("rank", "id", "score", *_LIST_COLUMNS) if c not in flat.columns]
    if missing:
        raise InputError(path, f"not a ranking: the column(s) {missing} are missing")
    for col in _LIST_COLUMNS:
        cast = float if col == "model_scores" else int
        flat[col] = [[cast(v) for v in str(s).split(";") if v] for s in flat[col]]
    return flat


def pseudo_labels(
    detections: Detections,
    solver: Tracks,
    associations: Associations,
    annotations: Annotations | None = None,
    fraction: float = 0.1,
    candidates: LinkConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the ``fraction`` least ambiguous askable cells (confidence scores, counted as
    the ranking counts them: on the ``candidates`` links of the solver's settings), and the
    solver's links leaving them: ``(parents, links)``. Answered cells are left out, and so is a
    cell whose solver child an answer gives to another parent (the answer wins)."""
    scores = ambiguity_scores(detections, solver, associations, "confidence", candidates=candidates)
    candidates = askable(detections)
    edges = solver.edges[detections.has_ids(solver.edges).all(axis=1)]
    if annotations is not None and len(annotations):
        candidates &= ~np.isin(detections.ids, np.fromiter(annotations.latest(), np.int64))
        taken = edges[np.isin(edges[:, 1], annotations.links()[:, 1]), 0]
        candidates &= ~np.isin(detections.ids, taken)
    rows = np.flatnonzero(candidates)
    count = int(round(fraction * int(askable(detections).sum())))
    chosen = rows[np.argsort(scores[rows], kind="stable")[:count]]
    parents = detections.ids[chosen]
    return parents, edges[np.isin(edges[:, 0], parents)]


# --------------------------------------------------------------------------------------------
# the simulated proof-reader
# --------------------------------------------------------------------------------------------


def proofread(
    ids: np.ndarray | list[int],
    gt: Tracks,
    annotations: Annotations | None = None,
    author: str = "simulated",
    max_gap: int | None = None,
) -> Annotations:
    """Answer each of ``ids`` with its ground-truth children (its outgoing links in ``gt``).

    The answers are added to ``annotations`` (a new in-memory journal when ``None``), which is
    returned. An id the ground truth does not know is an :class:`InputError`. A ground-truth
    cell with more than two children (HeLa 02 has one) cannot be a valid answer: the proof-reader
    then gives the two children nearest to the cell, with a warning. With ``max_gap`` (the
    linker's reach in frames), a child further away than that is left out, as a person must
    (linking refuses such an answer): a ground-truth gap link reads as "no child within reach".
    """
    ids = np.asarray(ids, np.int64)
    annotations = Annotations() if annotations is None else annotations
    unknown = ids[~gt.detections.has_ids(ids)]
    if len(unknown):
        raise InputError(
            "ground truth", f"cannot answer for detections it lacks: {unknown[:10].tolist()}"
        )
    det = gt.detections
    frames = dict(zip(det.ids.tolist(), det.times.tolist(), strict=True))
    for cell, kids in zip(ids.tolist(), _children_lists(ids, gt.edges), strict=True):
        kids = [int(c) for c in kids]
        if max_gap is not None:
            kids = [c for c in kids if frames[c] - frames[cell] <= max_gap]
        if len(kids) > 2:
            here = det.positions()[det.rows_of([cell])[0]]
            dist = np.linalg.norm(det.positions()[det.rows_of(kids)] - here, axis=1)
            kept = [kids[i] for i in np.argsort(dist, kind="stable")[:2]]
            logger.warning(
                "ground truth gives detection %d %d children; answering with the two nearest %s",
                cell,
                len(kids),
                kept,
            )
            kids = kept
        annotations.add(Answer(cell, tuple(kids), author=author))
    return annotations
