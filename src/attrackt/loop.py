"""Simulated proof-reading rounds: rank -> proof-read -> fine-tune -> predict -> re-solve -> score.

Round 0 links with the base model's associations. Each later round asks the simulated
proof-reader (the ground truth) about the most ambiguous unanswered cells until the round's
budget of answered cells is reached (budgets are cumulative), fine-tunes the *base* model on
every answer so far (a quarter held out, plus pseudo-labels from the previous round's
solution), predicts new associations, takes the mean of the base and the fine-tuned model's
unless it gets the held-out answers worse (:mod:`attrackt.link.held_out`), links again with
the answers pinned (with ``learn``, at linking weights learned afresh from every answer so
far, see :mod:`attrackt.link.learn`) and scores the result. Every round's figures go to
``out_dir/rounds.json``; a finished round is not redone when the loop is run again, and an
interrupted fine-tuning resumes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrackt.active import RankConfig, Strategy, proofread, pseudo_labels, rank_cells, select
from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.finetune import FinetuneConfig, finetune_checkpoint
from attrackt.io.jsonfile import plain, write_json
from attrackt.link.config import LinkConfig
from attrackt.link.held_out import check_associations

logger = logging.getLogger(__name__)


@dataclass
class LoopConfig:
    """The rounds: cumulative ``budgets`` of answered cells, the ranking ``strategy``, the seed
    of random rankings, and the settings of fine-tuning, prediction and linking (``None``: the
    stages' defaults); ``learn`` (an :class:`attrackt.link.learn.LearnConfig`) re-learns the
    linking weights from the answers each round, starting from ``link``'s (``None``: never)."""

    budgets: tuple[int, ...] = (10, 100, 1000)
    strategy: Strategy = "confidence"
    seed: int = 0
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    predict: Any = None  # attrackt.predict.PredictConfig
    link: Any = None  # attrackt.link.LinkConfig
    learn: Any = None  # attrackt.link.learn.LearnConfig

    def __post_init__(self) -> None:
        budgets = tuple(int(b) for b in self.budgets)
        if not budgets or min(budgets) < 1 or list(budgets) != sorted(set(budgets)):
            raise InputError(
                "budgets", f"must be increasing positive cell counts, got {list(self.budgets)}"
            )
        self.budgets = budgets
        RankConfig(self.strategy, self.seed)  # checks the strategy


def _round_dir(out_dir: Path, number: int, budget: int) -> Path:
    return out_dir / f"round{number}_{budget}"


def _solve_and_score(
    detections: Detections,
    associations: Associations,
    annotations: Annotations | None,
    gt: Tracks,
    config: LoopConfig,
) -> tuple[Tracks, dict[str, float]]:
    from attrackt.evaluate import evaluate
    from attrackt.link import link

    link_config, learned = config.link or LinkConfig(), {}
    if config.learn is not None and annotations is not None and len(annotations):
        from attrackt.link.learn import learn_weights

        fit = learn_weights(detections, annotations, associations, link_config, config.learn)
        link_config = fit.config
        learned = {
            "learned_weights": fit.weights,
            "learn_iterations": fit.iterations,
            "learn_converged": fit.converged,
            "learn_timed_out": fit.timed_out,
            "learn_seconds": fit.seconds,
        }
    start = time.perf_counter()
    result = link(detections, associations, annotations, link_config)
    linked = time.perf_counter()
    scores = evaluate(result.tracks, gt, chota=False)
    return result.tracks, {
        **scores,
        **learned,
        "link_seconds": linked - start,
        "evaluate_seconds": time.perf_counter() - linked,
    }


def simulate(
    checkpoint: str | Path,
    detections: Detections,
    gt: Tracks,
    config: LoopConfig,
    out_dir: str | Path,
    associations: Associations | None = None,
) -> list[dict[str, Any]]:
    """Run the rounds (see the module text); returns one record per round, round 0 first, as
    written to ``rounds.json`` (a score that is not defined, such as NaN, is ``None``).

    ``associations``: the base model's, when already predicted (else they are predicted here).
    ``gt`` must be over the same detection ids (the "GT detections" protocol).
    """
    from attrackt.predict import PredictConfig, predict_from_checkpoint

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    journal = Annotations.load(out_dir / "answers.jsonl")
    journal.check(detections)
    predict_config = config.predict or PredictConfig()
    records: list[dict[str, Any]] = []

    def finish(folder: Path, record: dict[str, Any], assoc: Associations, tracks: Tracks) -> None:
        assoc.save(folder / "associations.parquet")
        tracks.save(folder / "tracks")
        write_json(folder / "metrics.json", record)
        records.append(plain(record))  # as in the file, whether computed now or read back
        write_json(out_dir / "rounds.json", records)
        logger.info(
            "round %d: %d answered cells, AOGM %.1f",
            record["round"],
            record["answered"],
            record["AOGM"],
        )

    def done(folder: Path) -> tuple[Associations, Tracks] | None:
        if not (folder / "metrics.json").is_file():
            return None
        records.append(json.loads((folder / "metrics.json").read_text()))
        return Associations.load(folder / "associations.parquet"), Tracks.load(folder / "tracks")

    folder = _round_dir(out_dir, 0, 0)
    previous = done(folder)
    if previous is None:
        start = time.perf_counter()
        if associations is None:
            associations = predict_from_checkpoint(checkpoint, detections, predict_config)
        predicted = time.perf_counter() - start
        tracks, scores = _solve_and_score(detections, associations, None, gt, config)
        record = {"round": 0, "budget": 0, "answered": 0, "new": 0, **scores}
        finish(folder, {**record, "predict_seconds": predicted}, associations, tracks)
        previous = (associations, tracks)

    linker = config.link or LinkConfig()
    base = Associations.load(_round_dir(out_dir, 0, 0) / "associations.parquet")
    for number, budget in enumerate(config.budgets, 1):
        folder = _round_dir(out_dir, number, budget)
        state = done(folder)
        if state is not None:
            previous = state
            continue
        assoc, tracks = previous
        ranking = rank_cells(
            detections,
            tracks,
            assoc,
            RankConfig(config.strategy, config.seed + number),
            gt=gt,
            annotations=journal,
            candidates=linker,
        )
        new = select(ranking, max(0, budget - len(journal)))
        proofread(new, gt, journal, max_gap=linker.max_gap)
        pseudo = pseudo_labels(
            detections, tracks, assoc, journal, config.finetune.pseudo_fraction,
            candidates=linker,
        )  # fmt: skip
        result = finetune_checkpoint(
            checkpoint, detections, journal, config.finetune, folder / "finetune", pseudo=pseudo
        )
        start = time.perf_counter()
        assoc = predict_from_checkpoint(
            folder / "finetune" / "model.pt",
            detections,
            dataclasses.replace(predict_config, device=config.finetune.train.device),
        )
        predicted = time.perf_counter() - start
        assoc, check = check_associations(detections, base, assoc, journal, result.held_out, linker)
        tracks, scores = _solve_and_score(detections, assoc, journal, gt, config)
        record = {
            "round": number,
            "budget": budget,
            "answered": len(journal),
            "new": len(new),
            "strategy": config.strategy,
            **scores,
            "finetune_steps": result.steps,
            "finetune_seconds": result.seconds,
            "pseudo_cells": result.pseudo,
            "predict_seconds": predicted,
            "finetune_check": check,
        }
        finish(folder, record, assoc, tracks)
        previous = (assoc, tracks)
    return records


def parse_budgets(text: str) -> tuple[int, ...]:
    """``"10,100,1000"`` -> ``(10, 100, 1000)``."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise InputError(
            "--budget", f"expected cell counts like 10,100,1000, got {text!r}"
        ) from err
