"""The whole job, stage by stage: CTC sequences in, tracks, a proof-reading ranking and scores out.

A project is one folder; each stage writes its output there under a fixed name, so a run that
stops goes on where it stopped, and a person can see what was done:

========================  ======================================================================
``stages.json``           what made each output: a record per stage (:mod:`attrackt.stages`)
``config.json``           the settings that made the outputs beside it (finished stages only)
``store.npz``             detections, features, crops, masks and ground truth (``attrackt prepare``)
``embedded.npz``          the store with an appearance ``embedding`` per cell (``attrackt embed``)
``autoencoder/``          the crop auto-encoder's checkpoints and log
``model/``                the association model's checkpoints and log (``attrackt train``)
``associations.parquet``  soft links t -> t+1 (``attrackt predict``)
``tracks/``               the linked tracks (``attrackt link``), with ``answers.jsonl`` pinned
``guard.json``            whether the associations were let change the links (the guard)
``answers.jsonl``         the proof-reader's answers (read if present; never written here)
``ranking.csv``           the cells to proof-read, most ambiguous first (``attrackt rank``)
``result/D/NN_RES/``      a CTC result folder per sequence NN of dataset D
``tracks.geff``           the tracks as a geff graph (motile_tracker, napari)
``metrics.json``          scores against the ground truth, when the sequences have one
``stage_times.json``      seconds each stage took (:mod:`attrackt.timings`)
``report.html``           one page with all of it (:mod:`attrackt.report`)
========================  ======================================================================

A stage is reused while it is current: same settings, same inputs, outputs as it wrote them
(see :mod:`attrackt.stages`). Changed settings or inputs run the stage again, and every stage that
reads its outputs; answers added to ``answers.jsonl`` run linking and what follows again. The
stages are :data:`STAGES`: one more is one :class:`Stage` and the function that runs it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.active import RankConfig
from attrackt.data import Annotations, Associations, Tracks
from attrackt.embed.model import AutoEncoderConfig
from attrackt.embed.train import EmbedConfig
from attrackt.errors import InputError
from attrackt.io.jsonfile import write_json
from attrackt.link.config import LinkConfig
from attrackt.model.transformer import TransformerConfig
from attrackt.predict import PredictConfig
from attrackt.prepare import PrepareConfig
from attrackt.progress import JobProgress
from attrackt.stages import (
    StageRecord,
    StageRecords,
    digest,
    result_settings,
    signature,
)
from attrackt.store import Store
from attrackt.timings import StageClock
from attrackt.train import TrainConfig
from attrackt.training import AssociationTrainConfig

logger = logging.getLogger(__name__)

ANSWERS = "answers.jsonl"


@dataclass
class PipelineConfig:
    """One configuration per stage; the CLI and the napari plugin build the same objects."""

    prepare: PrepareConfig = field(default_factory=lambda: PrepareConfig(masks=True))
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    train: AssociationTrainConfig = field(default_factory=AssociationTrainConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    rank: RankConfig = field(default_factory=RankConfig)

    @classmethod
    def quick(cls, seed: int = 0, device: str = "auto") -> PipelineConfig:
        """Small models and short training: minutes on a laptop CPU (the demo's settings)."""

        def short(steps: int, batch_size: int) -> TrainConfig:
            every = steps // 2
            return TrainConfig(
                steps=steps, batch_size=batch_size, lr=1e-3, min_lr=3e-5, seed=seed,
                device=device, log_every=50, val_every=every, checkpoint_every=every,
            )  # fmt: skip

        small = TransformerConfig(
            d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2, dropout=0.0
        )
        return cls(
            prepare=PrepareConfig(masks=True, crop_pixels=32, crop_pixels_3d=16),
            embed=EmbedConfig(
                model=AutoEncoderConfig(crop_size=(32, 32), base_channels=16), train=short(300, 64)
            ),
            train=AssociationTrainConfig(model=small, train=short(400, 8)),
            predict=PredictConfig(tta=False, device=device),
            link=LinkConfig(k=10),
            rank=RankConfig(seed=seed),
        )

    def with_voxel_size(self, voxel_size: Sequence[float] | None) -> PipelineConfig:
        """The same settings for a movie of this voxel size (:mod:`attrackt.voxels`): the crops
        and shape features, the model's positions and linking use it."""
        windows = dataclasses.replace(self.train.windows, voxel_size=voxel_size)
        return dataclasses.replace(
            self,
            prepare=dataclasses.replace(self.prepare, voxel_size=voxel_size),
            train=dataclasses.replace(self.train, windows=windows),
            link=dataclasses.replace(self.link, voxel_size=voxel_size),
        )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


@dataclass
class PipelineResult:
    """What a run produced: the project folder, the tracks, the ranking and the scores."""

    project: Path
    tracks: Tracks
    ranked_cells: int
    metrics: dict[str, dict[str, dict[str, float]]]
    ran: list[str]
    guard: dict[str, Any] | None = None  # guard.json: whether the associations were used


class _Run:
    """One run's view of the project folder: the configuration, the sources, and the outputs of
    earlier stages, read from disk when first needed (a stage that writes one sets it)."""

    def __init__(
        self,
        root: Path,
        config: PipelineConfig,
        sources: list[Path],
        masks: Path | Any | None,
        points: Path | None = None,
    ) -> None:
        self.root, self.config, self.sources = root, config, sources
        self.masks, self.points = masks, points
        journal = root / ANSWERS  # read once: the answers linked are the answers recorded
        self.answers = Annotations.load(journal) if journal.exists() else None

    @cached_property
    def store(self) -> Store:
        return Store.load(self.root / "embedded.npz")

    @cached_property
    def associations(self) -> Associations:
        return Associations.load(self.root / "associations.parquet")

    @cached_property
    def tracks(self) -> Tracks:
        return Tracks.load(self.root / "tracks")

    @cached_property
    def ranked(self) -> int:
        with open(self.root / "ranking.csv", encoding="utf-8") as fh:
            return sum(1 for _ in fh) - 1

    @cached_property
    def guard(self) -> dict[str, Any] | None:
        path = self.root / "guard.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    @cached_property
    def metrics(self) -> dict[str, dict[str, dict[str, float]]]:
        path = self.root / "metrics.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


# ---- the stages: each reads the project (and the sources), writes its outputs ----------------


def _prepare(run: _Run) -> None:
    from attrackt.prepare import prepare, prepare_segmentation

    if run.masks is None and run.points is None:
        store = prepare(run.sources, run.config.prepare)
    else:
        store = prepare_segmentation(
            run.sources[0], run.masks, "01", run.config.prepare, points=run.points
        )
    store.save(run.root / "store.npz")


def _embed(run: _Run) -> None:
    from attrackt.embed import embed_store

    prepared = Store.load(run.root / "store.npz")
    store = embed_store(prepared, run.config.embed, run.root / "autoencoder")
    store.save(run.root / "embedded.npz")
    run.store = store


def _train(run: _Run) -> None:
    from attrackt.training import train_association_model

    train_association_model(run.store.detections, None, run.config.train, run.root / "model")


def _predict(run: _Run) -> None:
    from attrackt.predict import predict_from_checkpoint

    model_dir = run.root / "model"
    checkpoint = model_dir / ("best.pt" if (model_dir / "best.pt").exists() else "last.pt")
    associations = predict_from_checkpoint(checkpoint, run.store.detections, run.config.predict)
    associations.save(run.root / "associations.parquet")
    run.associations = associations


def _link(run: _Run) -> None:
    from attrackt.link import link

    detections = run.store.detections
    result = link(detections, run.associations, run.answers, run.config.link)
    result.tracks.save(run.root / "tracks")
    if result.guard is not None:
        write_json(run.root / "guard.json", result.guard.to_dict())
    run.tracks = result.tracks


def _rank(run: _Run) -> None:
    from attrackt.active import rank_cells, save_ranking

    ranking = rank_cells(
        run.store.detections, run.tracks, run.associations, run.config.rank,
        annotations=run.answers, candidates=run.config.link,
    )  # fmt: skip
    save_ranking(ranking, run.root / "ranking.csv")
    run.ranked = len(ranking)


def _export(run: _Run) -> None:
    from attrackt.io.ctc import write_ctc_result
    from attrackt.io.geff import write_geff

    for name, part in run.tracks.by_sequence():
        if name in run.store.masks:
            write_ctc_result(run.root / "result" / f"{name}_RES", part, run.store.masks[name])
    write_geff(run.tracks, run.root / "tracks.geff", overwrite=True)


def _evaluate(run: _Run) -> None:
    """Scores against the ground truth of the sequences that have one (else nothing)."""
    from attrackt.evaluate import evaluate
    from attrackt.link import link

    store = run.store
    if not store.tracks:
        run.metrics = {}
        return
    ours = dict(run.tracks.by_sequence())
    theirs = dict(link(store.detections, None, None, run.config.link).tracks.by_sequence())
    metrics = {
        name: {
            "position only": evaluate(theirs[name], gt, chota=False),
            "attrackt": evaluate(ours[name], gt, chota=False),
        }
        for name, gt in store.tracks.items()
    }
    write_json(run.root / "metrics.json", metrics)
    run.metrics = json.loads((run.root / "metrics.json").read_text(encoding="utf-8"))


def _source_files(run: _Run) -> dict[str, Any]:
    """Path, size and modification time of every source file (with a CTC sequence ``NN``, its
    ``NN_GT`` and ``NN_ST`` beside it) and of the masks; the project folder left out."""
    seen, project = {}, run.root.resolve()
    for source in run.sources:
        source = source.resolve()
        for path in [source, *sorted(source.parent.glob(f"{source.name}_*"))]:
            if path != project:
                seen[str(path)] = signature(path, skip=project)
    if isinstance(run.masks, Path):
        seen[f"masks {run.masks.resolve()}"] = signature(run.masks, skip=project)
    elif run.masks is not None:  # an array or a napari layer: its content
        data = np.ascontiguousarray(getattr(run.masks, "data", run.masks))
        seen["masks"] = f"{data.shape} {data.dtype} {hashlib.sha256(data.tobytes()).hexdigest()}"
    if run.points is not None:
        seen[f"points {run.points.resolve()}"] = signature(run.points, skip=project)
    return seen


def _answers(run: _Run) -> dict[str, Any]:
    """Every answer in the journal, as read at the start of the run."""
    return {ANSWERS: [a.to_json() for a in run.answers.history] if run.answers else None}


@dataclass(frozen=True)
class Stage:
    """One stage: what it runs, writes, reads, and which settings and outside inputs shape it.

    ``outputs`` are paths in the project folder (files or folders); ``reads`` names the stages
    whose outputs it reads; ``settings`` names the :class:`PipelineConfig` fields it uses;
    ``inputs`` describes what it reads from outside the project (see :mod:`attrackt.stages`).
    """

    name: str
    run: Callable[[_Run], None]
    outputs: tuple[str, ...]
    reads: tuple[str, ...] = ()
    settings: tuple[str, ...] = ()
    inputs: Callable[[_Run], dict[str, Any]] | None = None


#: the stages in the order they run: (name, function, outputs, reads, settings, outside inputs)
STAGES = (
    Stage("prepare", _prepare, ("store.npz",), (), ("prepare",), _source_files),
    Stage("embed", _embed, ("embedded.npz", "autoencoder"), ("prepare",), ("embed",)),
    Stage("train", _train, ("model",), ("embed",), ("train",)),
    Stage("predict", _predict, ("associations.parquet",), ("embed", "train"), ("predict",)),
    Stage("link", _link, ("tracks", "guard.json"), ("embed", "predict"), ("link",), _answers),
    Stage("rank", _rank, ("ranking.csv",), ("embed", "predict", "link"), ("rank", "link"),
          _answers),
    Stage("export", _export, ("result", "tracks.geff"), ("embed", "link")),
    Stage("evaluate", _evaluate, ("metrics.json",), ("embed", "link"), ("link",)),
)  # fmt: skip


def _record(stage: Stage, run: _Run, records: StageRecords) -> StageRecord:
    """What ``stage`` would be run with now (its digest, settings and inputs)."""
    config = run.config.to_dict()
    settings = {name: config[name] for name in stage.settings}
    inputs: dict[str, Any] = {f"stage {name}": records.outputs_of(name) for name in stage.reads}
    if stage.inputs is not None:
        inputs.update({key: digest(value) for key, value in stage.inputs(run).items()})
    key = digest({"stage": stage.name, "settings": result_settings(settings), "inputs": inputs})
    return StageRecord(key, config=settings, inputs=inputs)


def _outputs(stage: Stage, root: Path) -> str:
    return digest({name: signature(root / name) for name in stage.outputs})


def _remove(stage: Stage, root: Path) -> None:
    for name in stage.outputs:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def _write_config(records: StageRecords, root: Path) -> None:
    """``config.json``: the settings that made the outputs on disk (finished stages only)."""
    write_json(root / "config.json", records.configuration([s.name for s in STAGES]))


def _why_stale(stage: Stage, run: _Run, records: StageRecords, stale: dict[str, str]) -> str | None:
    """Why ``stage`` must run (``None``: it is current), given the earlier ``stale`` stages."""
    upstream = [name for name in stage.reads if name in stale]
    if upstream:
        return f"it reads the output of {', '.join(upstream)}, which runs again"
    now, old = _record(stage, run, records), records.records.get(stage.name)
    if old is None:
        return "not run yet"
    if records.can_go_on(stage.name, now.digest):
        return "stopped before it finished; going on from there"
    if not old.done:
        return "stopped before it finished, and its settings or inputs changed since"
    if result_settings(old.config) != result_settings(now.config):
        changed = [k for k in now.config if old.config.get(k) != now.config[k]]
        return f"its settings changed ({', '.join(changed)})"
    changed = [k for k in now.inputs if old.inputs.get(k) != now.inputs[k]]
    if changed:
        return f"its inputs changed ({', '.join(changed)})"
    if records.is_current(stage.name, now.digest, _outputs(stage, run.root)):
        return None
    return "its outputs are missing or were changed since it wrote them"


def _stale(run: _Run, records: StageRecords, force: bool) -> dict[str, str]:
    """The stages to run, in order, each with the reason."""
    stale: dict[str, str] = {}
    for stage in STAGES:
        why = "--force" if force else _why_stale(stage, run, records, stale)
        if why is not None:
            stale[stage.name] = why
    return stale


def _open(
    sources: list[str | Path],
    project: str | Path,
    config: PipelineConfig | None,
    masks: str | Path | Any | None,
    points: str | Path | None,
) -> tuple[_Run, StageRecords]:
    if (masks is not None or points is not None) and len(sources) != 1:
        raise InputError("--masks", "masks or points go with exactly one image source")
    root = Path(project)
    masks = Path(masks) if isinstance(masks, str) else masks
    points = None if points is None else Path(points)
    run = _Run(root, config or PipelineConfig(), [Path(s) for s in sources], masks, points)
    return run, StageRecords.load(root / "stages.json")


def plan_pipeline(
    sources: list[str | Path],
    project: str | Path,
    config: PipelineConfig | None = None,
    *,
    masks: str | Path | Any | None = None,
    points: str | Path | None = None,
    force: bool = False,
) -> dict[str, str]:
    """The stages :func:`run_pipeline` would run now, in order, each with the reason (nothing is
    run or changed)."""
    run, records = _open(sources, project, config, masks, points)
    return _stale(run, records, force)


def run_pipeline(
    sources: list[str | Path],
    project: str | Path,
    config: PipelineConfig | None = None,
    *,
    masks: str | Path | Any | None = None,
    points: str | Path | None = None,
    force: bool = False,
    progress: JobProgress | None = None,
) -> PipelineResult:
    """Run every stage on ``sources`` into the folder ``project``; reuse what is current.

    ``sources`` are CTC sequences or datasets whose tracking ground truth (TRA, or the "GT
    detections" protocol with ``config.prepare.gt_detections``) gives the detections; or, with
    ``masks`` (a user's instance segmentation) or ``points`` (a table of cell positions), one
    image folder or stack (see :func:`attrackt.prepare.prepare_segmentation`). A stage runs when it
    is not current (see :mod:`attrackt.stages`), and then so does every stage that reads it;
    ``force`` runs every stage from the start. A stage that a signal stopped goes on where it
    stopped when run again with the same inputs and settings. The outputs of the stages that
    will run are removed first (those of a stage that goes on are kept), so that ``config.json``
    describes every output on disk. The last step writes ``report.html``. ``progress`` (one
    bar over the whole run) is told each stage as it starts.
    """
    from attrackt.report import write_report

    run, records = _open(sources, project, config, masks, points)
    root = run.root
    root.mkdir(parents=True, exist_ok=True)
    stale = _stale(run, records, force)
    for stage in STAGES:
        if stage.name not in stale:
            continue
        if force or not records.can_go_on(stage.name, _record(stage, run, records).digest):
            _remove(stage, root)
            records.forget(stage.name)
    records.save()
    _write_config(records, root)

    clock = StageClock(root)
    for stage in STAGES:
        if stage.name not in stale:
            logger.info("%s: current, reusing %s", stage.name, ", ".join(stage.outputs))
            continue
        logger.info("%s: %s ...", stage.name, stale[stage.name])
        clock.lap(stage.name)
        if progress is not None:
            progress.stage(stage.name)
        records.start(stage.name, _record(stage, run, records))
        stage.run(run)
        records.finish(stage.name, _outputs(stage, root))
        _write_config(records, root)
    clock.lap(None)
    write_report(root, link=run.config.link)
    return PipelineResult(root, run.tracks, run.ranked, run.metrics, list(stale), run.guard)


def demo_folder() -> Path:
    """Where ``attrackt demo`` writes unless told: ``attrackt/demo`` in the user's cache folder
    (``$XDG_CACHE_HOME`` or ``~/.cache``; ``~/Library/Caches`` on macOS; ``%LOCALAPPDATA%`` on
    Windows), outside any clone of the repository."""
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "attrackt" / "demo"


def demo(out: str | Path, *, seed: int = 0, device: str = "auto") -> PipelineResult:
    """Write a synthetic dataset with exact ground truth and run the quick pipeline on it."""
    from attrackt.synthetic import SyntheticConfig, generate

    out = Path(out)
    data = out / "data"
    if not (data / "01").is_dir():
        movie = generate(SyntheticConfig(shape=(192, 192), frames=40, seed=seed))
        movie.write(data, "01")
    return run_pipeline([data / "01"], out / "project", PipelineConfig.quick(seed, device))
