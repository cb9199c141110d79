"""The proof-reading loop behind the napari widget, with no Qt and no napari in it.

A :class:`ProofreadSession` holds the detections, the solver's tracks, the model's associations
(optional) and the answers journal. It ranks the cells most likely tracked wrong
(:func:`attrackt.active.rank_cells`; confidence scores by default, a seeded random order when
there are no associations), steps through them, records a person's answers in the journal
(each on disk, fsync'ed, when the call returns), undoes them (the journal keeps every answer),
and solves again with the answers pinned, after fine-tuning the model on them when a base
checkpoint is known (as cancellable jobs: :mod:`attrackt.napari.rounds`). Undo goes on across
sessions: the journal marks what an undo wrote, so a reopened session takes back the answers
of earlier ones.

A project folder is what ``attrackt run`` writes (:mod:`attrackt.pipeline`): ``tracks/`` (the
solver's tracks), the detections in ``embedded.npz`` (else ``store.npz``, else
``detections.parquet``, else the tracks' own), ``associations.parquet``, the base model in
``model/`` (``best.pt``, else ``last.pt``; or ``model.pt``) and the journal ``answers.jsonl``
(shared by all sequences). Only ``tracks/`` is required. What a session makes goes to
``proofread/SEQUENCE/roundNNN/`` inside it (``tracks/``, and after fine-tuning ``finetune/`` and
``associations.parquet``); opening the project again goes on from the latest round. The solver's
``tracks/`` stay as they were; the project's exports (``tracks.geff``, ``result/NAME_RES``) are
rewritten after each round with the latest tracks (:mod:`attrackt.napari.project`).

A cell's **score** is how strongly the model disagrees with the solver there: with the
confidence ranking, ``|association mass leaving the cell - links the solver gave it|`` (0: they
agree; 1: the model sees one child more or less than the solver; see :mod:`attrackt.active`).
Scores of :data:`LIKELY_WRONG` or more mark cells likely tracked wrong.

The session's settings are in :mod:`~attrackt.napari.session_config`; it delegates to
:mod:`~attrackt.napari.cells` (a cell and what is drawn of it), :mod:`~attrackt.napari.answers`
(clicks, checks, undo), :mod:`~attrackt.napari.lineage`, :mod:`~attrackt.napari.project`
(opening a project's sequence) and :mod:`~attrackt.napari.rounds`.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.active import RankConfig, rank_cells
from attrackt.data import Annotations, Answer, Associations, Conflict, Detections, Tracks
from attrackt.errors import InputError
from attrackt.link import LinkConfig
from attrackt.napari.answers import check_children, clicked_children, undo_stack
from attrackt.napari.cells import (
    LIKELY_WRONG,
    Cell,
    cell_alternatives,
    cell_highlights,
    cell_of,
    half_spacing,
)
from attrackt.napari.lineage import (
    LINEAGE_COLUMNS,
    Links,
    lineage_table,
    solver_links,
    tracks_of_lineage,
)
from attrackt.napari.project import (
    DETECTION_FILES,
    image_source,
    is_project,
    latest,
    read_sequence,
    round_folders,
)
from attrackt.napari.rounds import RoundJob, RoundOutcome, RoundSummary, summarise_round
from attrackt.napari.session_config import (
    CPU_FINETUNE_BATCH,
    CPU_FINETUNE_MINUTES,
    GPU_FINETUNE_MINUTES,
    SessionConfig,
    default_finetune_config,
    project_link,
)

__all__ = [
    "CPU_FINETUNE_BATCH",
    "CPU_FINETUNE_MINUTES",
    "DETECTION_FILES",
    "GPU_FINETUNE_MINUTES",
    "LIKELY_WRONG",
    "Cell",
    "ProofreadSession",
    "SessionConfig",
    "default_finetune_config",
    "is_project",
]

logger = logging.getLogger(__name__)

TOP_CELLS = 100  #: a round's summary counts the answered cells among this many ranked first


class ProofreadSession:
    """Rank, navigate, answer, undo, re-solve and fine-tune (see the module text).

    ``detections`` default to those of ``tracks``; ``annotations`` to an in-memory journal.
    ``work_dir`` is where re-solving and fine-tuning write their rounds (a temporary folder
    when ``None``). A journal naming detections that do not exist is an :class:`InputError`.
    """

    def __init__(
        self,
        detections: Detections | None,
        tracks: Tracks,
        associations: Associations | None = None,
        annotations: Annotations | None = None,
        *,
        checkpoint: str | Path | None = None,
        config: SessionConfig | None = None,
        work_dir: str | Path | None = None,
    ) -> None:
        self.detections = tracks.detections if detections is None else detections
        unknown = ~self.detections.has_ids(tracks.detections.ids)
        if unknown.any():
            raise InputError(
                "tracks",
                f"name detections the table lacks: {tracks.detections.ids[unknown][:5].tolist()}",
            )
        self.tracks = tracks
        self.associations = associations
        # the associations before any fine-tuning: each round's fine-tuned model is blended
        # with them (attrackt.link.held_out.blend)
        self.base_associations = associations
        self.annotations = annotations if annotations is not None else Annotations()
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        config = config or SessionConfig()
        self.config = (
            config if config.link is not None else dataclasses.replace(config, link=LinkConfig())
        )
        self.work_dir = None if work_dir is None else Path(work_dir)
        self.conflicts: list[Conflict] = []
        self._undo = undo_stack(self.annotations.history)
        self._model: Path | None = None  # the latest fine-tuned model
        self._snap: float | None = self.config.snap
        self._lineage_cache: Links | None = None
        self.masks: np.ndarray | None = None  # the label masks, where a project keeps them
        self.project: Path | None = None  # the project folder, when opened from one
        self.images: Path | None = None  # where the movie is, when known
        names = self.detections.sequences
        self.sequence: str = names[0] if len(names) == 1 else ""
        self._validate()
        self.rerank()

    # ---- opening ---------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        folder: str | Path,
        *,
        sequence: str | None = None,
        journal: str | Path | None = None,
        checkpoint: str | Path | None = None,
        config: SessionConfig | None = None,
    ) -> ProofreadSession:
        """A session on one sequence of a project folder (see the module text), going on from
        its latest round; ``masks`` holds the sequence's label masks where the project's store
        keeps them. ``journal`` and ``checkpoint`` replace the project's own."""
        found = read_sequence(folder, sequence, journal, checkpoint)
        config = config or SessionConfig()
        if config.link is None and (found.folder / "config.json").is_file():
            config = dataclasses.replace(config, link=project_link(found.folder / "config.json"))
        session = cls(
            found.detections,
            found.tracks,
            found.associations,
            found.annotations,
            checkpoint=found.checkpoint,
            config=config,
            work_dir=found.work_dir,
        )
        store, name = found.store, found.name
        session.masks = None if store is None else store.masks.get(name)
        session.images = None if store is None else image_source(store.meta, name)
        session.project = found.folder
        session.base_associations = found.base_associations
        session.sequence = name
        fine_tuned = latest(found.work_dir, "finetune/model.pt")
        session._model = fine_tuned
        return session

    # ---- ranking and navigation ------------------------------------------------------------
    @property
    def strategy(self) -> str:
        """The ranking strategy in use (``random`` where confidence lacks associations)."""
        wanted = self.config.rank.strategy
        return "random" if wanted == "confidence" and self.associations is None else wanted

    def rerank(self) -> pd.DataFrame:
        """Rank the cells again (after the tracks or associations changed); cells answered by
        now are left out of the ranking (they stay reachable with :meth:`go_to`). The first
        ranked cell becomes the current one."""
        rank = self.config.rank
        if self.strategy != rank.strategy:
            logger.warning("no associations: cells are ranked in a seeded random order")
            rank = RankConfig("random", rank.seed, rank.alternatives)
        table = rank_cells(
            self.detections, self.tracks, self.associations, rank, candidates=self.config.link
        )
        self._table = table.set_index("id", drop=False)
        answered = np.fromiter(self.annotations.latest(), np.int64)
        ranking = table[~np.isin(table["id"].to_numpy(), answered)].reset_index(drop=True)
        ranking["rank"] = np.arange(1, len(ranking) + 1)
        self.ranking = ranking
        self.position = 0
        self._detour: Cell | None = None
        return ranking

    @property
    def current(self) -> Cell | None:
        """The cell shown now (``None`` when nothing is left to rank)."""
        if self._detour is not None:
            return self._detour
        if not len(self.ranking):
            return None
        return self._cell(int(self.ranking["id"].iat[self.position]), self.position + 1)

    def next(self) -> Cell | None:
        """Step to the next ranked cell (the last one stays)."""
        self._detour = None
        self.position = min(self.position + 1, max(len(self.ranking) - 1, 0))
        return self.current

    def previous(self) -> Cell | None:
        """Step back to the previous ranked cell (the first one stays)."""
        self._detour = None
        self.position = max(self.position - 1, 0)
        return self.current

    def jump(self, rank: int) -> Cell | None:
        """Go to the cell ranked ``rank`` (1 is the most ambiguous)."""
        if not 1 <= rank <= len(self.ranking):
            raise InputError("rank", f"must be between 1 and {len(self.ranking)}, got {rank}")
        self._detour = None
        self.position = rank - 1
        return self.current

    def go_to(self, id: int) -> Cell:
        """Go to detection ``id``, ranked or not (an answered cell, a conflict's parent)."""
        hit = np.flatnonzero(self.ranking["id"].to_numpy() == id)
        if len(hit):
            self.jump(int(hit[0]) + 1)
            assert self.current is not None
            return self.current
        if id not in self._table.index:
            known = bool(self.detections.has_ids([id])[0])
            raise InputError(
                "cell",
                f"detection {id} is in the last frame of its sequence; it has no children"
                if known
                else f"there is no detection {id}",
            )
        self._detour = self._cell(int(id), None)
        return self._detour

    def _cell(self, id: int, rank: int | None) -> Cell:
        answer = self.annotations.latest().get(id)
        return cell_of(self._table, id, rank, self.detections.spatial_axes, answer)

    def _require_cell(self) -> Cell:
        cell = self.current
        if cell is None:
            raise InputError("proof-reading", "no cell to answer: every cell is answered")
        return cell

    # ---- what the viewer shows -------------------------------------------------------------
    def highlights(self, cell: Cell | None = None) -> pd.DataFrame:
        """Points to draw for ``cell`` (default: the current one), one row per ``role``
        (:func:`~attrackt.napari.cells.cell_highlights`)."""
        return cell_highlights(self.detections, cell or self.current)

    def alternatives(self, cell: Cell | None = None) -> list[tuple[int, ...]]:
        """The model's answers for ``cell`` (default: the current one) that differ from the
        solver's, most likely first (:func:`~attrackt.napari.cells.cell_alternatives`)."""
        return cell_alternatives(self.associations, cell or self.current)

    def cell_size(self) -> float:
        """About how wide a cell is (pixels): the median distance between neighbouring cells,
        what the markers and the view's zoom are scaled by."""
        size = 2 * self.snap_distance()
        return size if np.isfinite(size) else 10.0

    def lineage(self, cell: Cell | None = None, frames: int = 15) -> pd.DataFrame:
        """The solver's lineage of ``cell`` (default: the current one) within ``frames`` frames
        of it: its ancestors and every descendant of the oldest, one row per detection
        (:func:`~attrackt.napari.lineage.lineage_table`); ``suspect`` only with the confidence
        ranking."""
        cell = cell or self.current
        if cell is None:
            return pd.DataFrame(columns=LINEAGE_COLUMNS)
        scores, answered = self._table["score"], self.annotations.latest()
        confident = self.strategy == "confidence"
        return lineage_table(cell, self._links(), scores, answered, confident, frames)

    def lineage_tracks(self, lineage: pd.DataFrame) -> Tracks:
        """The solver's tracks restricted to the detections of a :meth:`lineage`."""
        return tracks_of_lineage(self.tracks, lineage)

    def _links(self) -> Links:
        """The solver's links (:func:`~attrackt.napari.lineage.solver_links`), kept until the
        tracks change."""
        if self._lineage_cache is None:
            self._lineage_cache = solver_links(self.tracks)
        return self._lineage_cache

    def summary(self) -> str:
        """One line: answered cells, the ranking, conflicts."""
        return (
            f"{len(self.annotations)} answered, {len(self.ranking)} ranked ({self.strategy}), "
            f"{len(self.conflicts)} conflict(s)"
        )

    # ---- answers ---------------------------------------------------------------------------
    def accept(self) -> Answer:
        """Answer the current cell with the solver's children."""
        return self._answer(self._require_cell().solver_children)

    def pick(self, index: int = 0) -> Answer:
        """Answer the current cell with the model's ``index``-th :meth:`alternatives`."""
        options = self.alternatives(self._require_cell())
        if not 0 <= index < len(options):
            raise InputError(
                "alternative", f"the model offers {len(options)} other answer(s), no #{index + 1}"
            )
        return self._answer(options[index])

    def no_children(self) -> Answer:
        """Answer: the current cell has no children (it ends, dies or leaves)."""
        return self._answer(())

    def give(self, children: Sequence[int]) -> Answer:
        """Answer the current cell with the given child ids (one or two)."""
        return self._answer(tuple(int(c) for c in children))

    def give_at(self, points: np.ndarray) -> Answer:
        """Answer the current cell with the cells under 1 or 2 clicks ``(t, [z,] y, x)``."""
        return self.give(self.children_at(points))

    def children_at(self, points: np.ndarray) -> list[int]:
        """The cells nearest to the clicked ``points`` (``(k, 1 + ndim)``: ``t, [z,] y, x``)
        in their frames, each within the snap distance; the frames must follow the cell's."""
        cell = self._require_cell()
        return clicked_children(self.detections, cell, points, self.snap_distance())

    def snap_distance(self) -> float:
        """How near (pixels) a click must be to a cell's centre to pick it."""
        if self._snap is None:
            self._snap = half_spacing(self.detections)
        return self._snap

    def _answer(self, children: tuple[int, ...]) -> Answer:
        cell = self._require_cell()
        check_children(self.detections, cell, children)
        before = self.annotations.latest().get(cell.id)
        answer = Answer(cell.id, children, author=self.config.author)
        self.annotations.add(answer)
        self._undo.append((cell.id, before))
        self._refresh(cell.id)
        self._validate()
        return answer

    def undo(self) -> Answer | None:
        """Take back the latest answer not yet undone, of this session or an earlier one on the
        same journal: the cell's earlier answer comes back, or the cell is unanswered again (a
        new journal line marked ``undo``; nothing is erased). The cell becomes the current one.
        ``None`` when there is nothing to undo."""
        if not self._undo:
            return None
        id, before = self._undo.pop()
        answer = Answer(
            id, before or (), author=self.config.author, retracted=before is None, undo=True
        )
        self.annotations.add(answer)
        self._validate()
        self.go_to(id)
        return answer

    def _refresh(self, id: int) -> None:
        """Show the journal's answer of ``id`` if it is the detour cell."""
        if self._detour is not None and self._detour.id == id:
            self._detour = self._cell(id, None)

    def _validate(self) -> list[Conflict]:
        self.conflicts = self.annotations.validate(self.detections, self.config.link.max_gap)
        return self.conflicts

    # ---- solving and fine-tuning -----------------------------------------------------------
    def round(self, finetune: bool = False) -> RoundJob:
        """A job for the next round (:class:`~attrackt.napari.rounds.RoundJob`): re-solve with
        the answers given so far pinned, after fine-tuning the base model on them and predicting
        with ``finetune``. Raises at once on contradictory answers or a missing base model;
        answers given while it runs go into the next round. Apply its outcome with
        :meth:`apply`."""
        if finetune:
            self.base_model()
            if not len(self.annotations):
                raise InputError("fine-tuning", "answer some cells first")
        return RoundJob(self, finetune)

    def apply(self, outcome: RoundOutcome) -> RoundSummary:
        """Take a finished round's tracks (and associations and model) and rank again; returns
        what changed."""
        before, ranked = self.tracks, self._table
        self.tracks = outcome.tracks
        self._lineage_cache = None
        if outcome.associations is not None:
            self.associations = outcome.associations
        if outcome.model is not None:
            self._model = outcome.model
        latest = self.annotations.latest()
        self.rerank()
        confident = self.strategy == "confidence"
        return summarise_round(
            outcome, before, ranked, latest, self.ranking, confident, LIKELY_WRONG, TOP_CELLS
        )

    def resolve(self) -> RoundSummary:
        """Link again with every answer pinned, as a round (see :meth:`round`), at once."""
        return self.apply(self.round().run())

    def finetune_and_resolve(self) -> RoundSummary:
        """Fine-tune on the answers, predict, and re-solve with the answers pinned, at once."""
        return self.apply(self.round(finetune=True).run())

    def base_model(self) -> Path:
        """The checkpoint fine-tuning starts from."""
        if self.checkpoint is None:
            raise InputError(
                "fine-tuning", "needs the base model (model.pt in the project, or --checkpoint)"
            )
        return self.checkpoint

    @property
    def model(self) -> Path | None:
        """The latest fine-tuned model of this session (``None``: none yet)."""
        return self._model

    def next_round(self) -> Path:
        """The folder of the next round (made when the round is done)."""
        if self.work_dir is None:
            self.work_dir = Path(tempfile.mkdtemp(prefix="attrackt-proofread-"))
            logger.info("re-solved tracks and fine-tuned models go to %s", self.work_dir)
        done = [int(p.name[5:]) for p in round_folders(self.work_dir)]
        return self.work_dir / f"round{max(done, default=0) + 1:03d}"
