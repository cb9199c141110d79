"""Re-solving and fine-tuning rounds as jobs that report progress and can be cancelled, with no
Qt in them (the widget runs :meth:`RoundJob.run` in a worker thread).

A job works on a snapshot of the answers taken when it is made: answers given while it runs
are journaled as always and go into the next round. It writes into a hidden folder
``.roundNNN.partial`` beside the rounds and renames it ``roundNNN`` only when every step is
done, so a cancelled or failed job leaves no round behind. Cancelling takes effect at the next
fine-tuning step or prediction batch (linking itself takes seconds and is not interrupted).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attrackt.data import Annotations, Associations, Detections, Tracks

if TYPE_CHECKING:
    from attrackt.napari.session import ProofreadSession

logger = logging.getLogger(__name__)


class Cancelled(Exception):
    """The job was cancelled; nothing of its round was kept."""


@dataclass(frozen=True)
class Progress:
    """Where a job stands: stage ``stage`` of ``stages`` (``label``), ``done`` of ``total``
    ``unit`` in it (``total`` 0: not counted), ``seconds`` since the stage began."""

    label: str
    stage: int
    stages: int
    done: int = 0
    total: int = 0
    unit: str = ""
    seconds: float = 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left in this stage at the pace so far (``None`` before the first unit)."""
        if self.total <= 0 or self.done <= 0:
            return None
        return self.seconds / self.done * (self.total - self.done)

    def text(self) -> str:
        """One line, e.g. ``fine-tuning (1/3) · 40/400 steps · about 2 min left``."""
        parts = [f"{self.label} ({self.stage}/{self.stages})"]
        if self.total:
            parts.append(f"{self.done}/{self.total} {self.unit}".rstrip())
        if self.eta is not None:
            parts.append(f"about {duration(self.eta)} left")
        return " · ".join(parts)


def duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s``, ``1 h 2 min``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


@dataclass
class RoundOutcome:
    """What a finished job made: the round's folder, the new tracks, the new associations and
    model (after fine-tuning), the answers it pinned and the project files it updated."""

    folder: Path
    tracks: Tracks
    associations: Associations | None
    model: Path | None
    pinned: dict[int, tuple[int, ...]]
    exported: list[Path] = field(default_factory=list)
    export_error: str = ""
    guard: str = ""  # the label-free guard's verdict, in words


class RoundJob:
    """One round of a session: fine-tune, predict (with ``finetune``) and re-solve with the
    answers given so far pinned. Made in the session's thread (:meth:`ProofreadSession.round`,
    which raises at once on contradictory answers or a missing base model); :meth:`run` may run
    in another thread, and :meth:`cancel` may be called from any."""

    def __init__(self, session: ProofreadSession, finetune: bool) -> None:
        self.finetune = finetune
        self.detections: Detections = session.detections
        self.tracks: Tracks = session.tracks
        self.associations = session.associations
        self.base_associations = session.base_associations
        self.config = session.config
        self.checkpoint = session.base_model() if finetune else None
        self.answers = Annotations(None, list(session.annotations.history))  # the snapshot
        self.answers.check(self.detections, self.config.link.max_gap)
        self.folder = session.next_round()
        self.project = session.project
        self.sequence = session.sequence
        self.masks = session.masks
        self.labels = (["fine-tuning", "predicting"] if finetune else []) + ["re-solving"]
        if self.project is not None:
            self.labels.append("updating the project")
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Stop at the next step; the round is not kept."""
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled(f"{self.folder.name} cancelled: nothing of it was kept")

    def run(self, report: Callable[[Progress], None] = lambda progress: None) -> RoundOutcome:
        """Do the round's steps, reporting progress; raises :class:`Cancelled` when cancelled
        (the partial folder is removed) and whatever a step raised when it failed."""
        partial = self.folder.with_name(f".{self.folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            tracks, associations, model, guard = self._steps(partial, report)
            self._check()
            partial.rename(self.folder)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        outcome = RoundOutcome(
            folder=self.folder,
            tracks=tracks,
            associations=associations,
            model=None if model is None else self.folder / model.relative_to(partial),
            pinned=self.answers.latest(),
            guard=guard,
        )
        if self.project is not None:
            stage = len(self.labels)
            report(Progress(self.labels[-1], stage, stage))
            from attrackt.napari.project import update_project

            try:
                outcome.exported = update_project(self.project, self.sequence, self.masks)
            except Exception as err:  # the round is kept; the exports can be made again
                logger.exception("updating the project's exports failed")
                outcome.export_error = f"the project's exports were not updated: {err}"
        return outcome

    def _steps(
        self, partial: Path, report: Callable[[Progress], None]
    ) -> tuple[Tracks, Associations | None, Path | None, str]:
        from attrackt.link import link

        stages = len(self.labels)
        associations, model = self.associations, None

        def ticker(stage: int, unit: str) -> Callable[[int, int], None]:
            start = time.perf_counter()

            def tick(done: int, total: int) -> None:
                self._check()
                elapsed = time.perf_counter() - start
                report(Progress(self.labels[stage - 1], stage, stages, done, total, unit, elapsed))

            return tick

        checked = ""
        if self.finetune:
            from attrackt.link.held_out import check_associations

            report(Progress("fine-tuning", 1, stages))
            model, held = self._finetune(partial / "finetune", ticker(1, "steps"))
            self._check()
            report(Progress("predicting", 2, stages))
            tuned = self._predict(model, ticker(2, "batches"))
            self._check()
            associations, verdict = check_associations(
                self.detections, self.base_associations, tuned, self.answers, held,
                self.config.link,
            )  # fmt: skip
            checked = verdict["reason"] + (
                ": the round uses the mean of the model's associations before and after"
                if verdict["kept"] == "tuned"
                else ": the round keeps the model before"
            )
            if associations is not None:
                associations.save(partial / "associations.parquet")
            self._check()
        stage = self.labels.index("re-solving") + 1
        report(Progress("re-solving", stage, stages))
        result = link(self.detections, associations, self.answers, self.config.link)
        self._check()
        result.tracks.save(partial / "tracks")
        guard = "" if result.guard is None else result.guard.message()
        return result.tracks, associations, model, "\n".join(filter(None, [checked, guard]))

    def _finetune(
        self, out: Path, tick: Callable[[int, int], None]
    ) -> tuple[Path, list[int] | None]:
        """The fine-tuned model's checkpoint and the answered cells held out of its training
        (``None``: none held out, no check)."""
        from attrackt.active import pseudo_labels
        from attrackt.finetune import finetune_checkpoint
        from attrackt.napari.session_config import default_finetune_config

        config = self.config.finetune or default_finetune_config()
        pseudo = None
        if self.associations is not None and config.pseudo_fraction > 0:
            pseudo = pseudo_labels(
                self.detections,
                self.tracks,
                self.associations,
                self.answers,
                config.pseudo_fraction,
                candidates=self.config.link,
            )
        result = finetune_checkpoint(
            self.checkpoint,
            self.detections,
            self.answers,
            config,
            out,
            pseudo=pseudo,
            resume=False,
            on_step=tick,
        )
        return out / "model.pt", result.held_out

    def _predict(self, model: Path, tick: Callable[[int, int], None]) -> Associations:
        from attrackt.predict import PredictConfig, predict_from_checkpoint

        config = self.config.predict or PredictConfig()
        return predict_from_checkpoint(model, self.detections, config, on_batch=tick)


@dataclass(frozen=True)
class RoundSummary:
    """What a round changed, for the person: the round, links added and removed, answers pinned
    and given meanwhile, how many of the ``top`` cells ranked first when it began are answered,
    the cells left with a score of at least ``threshold`` and the cells ranked."""

    folder: Path
    added: int
    removed: int
    pinned: int
    meanwhile: int
    answered_top: int
    top: int
    left: int | None
    threshold: float
    ranked: int
    exported: tuple[Path, ...]
    export_error: str = ""
    guard: str = ""  # the label-free guard's verdict on the round's associations

    def text(self) -> str:
        lines = [
            f"{self.folder.name}: {self.added + self.removed} links changed "
            f"(+{self.added}, −{self.removed}) with {self.pinned} answers pinned"
            + (
                f"; {self.meanwhile} answer(s) given meanwhile go into the next round"
                if self.meanwhile
                else ""
            )
            + ".",
            f"Answered {self.answered_top} of the top {self.top} cells; "
            + (
                f"{self.left} cells left with score ≥ {self.threshold:g} ({self.ranked} ranked)."
                if self.left is not None
                else f"{self.ranked} cells ranked."
            ),
            f"Saved in {self.folder}"
            + (f"; updated {', '.join(p.name for p in self.exported)}" if self.exported else "")
            + ".",
        ]
        if self.guard:
            lines.append(self.guard)
        if self.export_error:
            lines.append(self.export_error)
        return "\n".join(lines)


def link_changes(before: Tracks, after: Tracks) -> tuple[int, int]:
    """Links ``after`` has that ``before`` lacks, and the other way round."""

    def pairs(tracks: Tracks) -> set[tuple[int, int]]:
        return set(map(tuple, np.asarray(tracks.edges).reshape(-1, 2).tolist()))

    old, new = pairs(before), pairs(after)
    return len(new - old), len(old - new)


def answered_of_top(table: Any, answered: set[int], top: int) -> tuple[int, int]:
    """Of the ``top`` best-scored cells of a ranking ``table`` (answered ones included), how
    many are answered; and the count looked at."""
    ids = table.sort_values("score", ascending=False, kind="stable")["id"].to_numpy()[:top]
    return int(sum(int(i) in answered for i in ids)), len(ids)


def summarise_round(
    outcome: RoundOutcome,
    before: Tracks,
    ranked: Any,
    answers: dict[int, tuple[int, ...]],
    ranking: Any,
    confident: bool,
    threshold: float,
    top: int,
) -> RoundSummary:
    """What applying ``outcome`` changed: its links against the tracks ``before`` it, the
    latest ``answers`` it did not pin (given meanwhile), how many of the ``top`` cells of the
    ranking table ``ranked`` before it are answered, and the cells of the new ``ranking`` left
    with a score of ``threshold`` or more (``confident`` scores only)."""
    added, removed = link_changes(before, outcome.tracks)
    meanwhile = sum(answers.get(i) != c for i, c in outcome.pinned.items())
    meanwhile += len(set(answers) - set(outcome.pinned))
    answered, top = answered_of_top(ranked, set(answers), top)
    scores = ranking["score"].to_numpy()
    return RoundSummary(
        folder=outcome.folder,
        added=added,
        removed=removed,
        pinned=len(outcome.pinned),
        meanwhile=meanwhile,
        answered_top=answered,
        top=top,
        left=int((scores >= threshold).sum()) if confident else None,
        threshold=threshold,
        ranked=len(ranking),
        exported=tuple(outcome.exported),
        export_error=outcome.export_error,
        guard=outcome.guard,
    )
