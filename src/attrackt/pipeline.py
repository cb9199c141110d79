"""The whole job, stage by stage: CTC sequences in, tracks, a proof-reading ranking and scores out.

A project is one folder; each stage writes its output there under a fixed name, so a run that
stops goes on where it stopped, and a person can see what was done:

========================  ======================================================================
``config.json``           the configuration of the last run
``store.npz``             detections, features, crops, masks and ground truth (``attrackt prepare``)
``embedded.npz``          the store with an appearance ``embedding`` per cell (``attrackt embed``)
``autoencoder/``          the crop auto-encoder's checkpoints and log
``model/``                the association model's checkpoints and log (``attrackt train``)
``associations.parquet``  soft links t -> t+1 (``attrackt predict``)
``tracks/``               the linked tracks (``attrackt link``), with ``answers.jsonl`` pinned
``answers.jsonl``         the proof-reader's answers (read if present; never written here)
``ranking.csv``           the cells to proof-read, most ambiguous first (``attrackt rank``)
``result/D/NN_RES/``      a CTC result folder per sequence NN of dataset D
``tracks.geff``           the tracks as a geff graph (motile_tracker, napari)
``metrics.json``          scores against the ground truth, when the sequences have one
``stage_times.json``      seconds per stage of the run that made its output
``report.html``           one page to open in a browser: scores, plots, cells to proof-read
========================  ======================================================================

A stage whose output exists is reused; once one stage runs, every later stage runs again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrackt.active import RankConfig
from attrackt.data import Annotations, Associations, Tracks
from attrackt.embed.model import AutoEncoderConfig
from attrackt.embed.train import EmbedConfig
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_write_text
from attrackt.link.config import LinkConfig
from attrackt.model.transformer import TransformerConfig
from attrackt.predict import PredictConfig
from attrackt.prepare import PrepareConfig
from attrackt.store import Store
from attrackt.timings import StageClock
from attrackt.train import TrainConfig
from attrackt.training import AssociationTrainConfig

logger = logging.getLogger(__name__)

STAGES = ("prepare", "embed", "train", "predict", "link", "rank", "export", "evaluate")


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
            prepare=PrepareConfig(masks=True, crop_size=32, crop_pixels=32),
            embed=EmbedConfig(
                model=AutoEncoderConfig(crop_size=(32, 32), base_channels=16), train=short(300, 64)
            ),
            train=AssociationTrainConfig(model=small, train=short(400, 8)),
            predict=PredictConfig(tta=False, device=device),
            link=LinkConfig(k=10),
            rank=RankConfig(seed=seed),
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


class _Stages:
    """Keeps track of which stages may reuse their output."""

    def __init__(self, force: bool, clock: StageClock) -> None:
        self.dirty = force
        self.ran: list[str] = []
        self.clock = clock

    def reuse(self, name: str, *outputs: Path) -> bool:
        if not self.dirty and all(p.exists() for p in outputs):
            logger.info("%s: reusing %s", name, ", ".join(str(p) for p in outputs))
            return True
        self.dirty = True
        self.ran.append(name)
        self.clock.lap(name)
        logger.info("%s ...", name)
        return False


def run_pipeline(
    sources: list[str | Path],
    project: str | Path,
    config: PipelineConfig | None = None,
    *,
    masks: str | Path | Any | None = None,
    points: str | Path | None = None,
    force: bool = False,
) -> PipelineResult:
    """Run every stage on ``sources`` into the folder ``project``.

    ``sources`` are CTC sequences or datasets whose tracking ground truth (TRA, or the "GT
    detections" protocol with ``config.prepare.gt_detections``) gives the detections; or, with
    ``masks`` (a user's instance segmentation) or ``points`` (a table of cell positions), one
    image folder or stack (see :func:`attrackt.prepare.prepare_segmentation`). The last step
    writes ``report.html`` (:mod:`attrackt.report`).
    """
    from attrackt.active import rank_cells, save_ranking
    from attrackt.embed import embed_store
    from attrackt.evaluate import evaluate
    from attrackt.io.ctc import write_ctc_result
    from attrackt.io.geff import write_geff
    from attrackt.link import link
    from attrackt.predict import predict_from_checkpoint
    from attrackt.prepare import prepare, prepare_segmentation
    from attrackt.report import write_report
    from attrackt.training import train_association_model

    config = config or PipelineConfig()
    root = Path(project)
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "config.json", json.dumps(config.to_dict(), indent=1))
    stages = _Stages(force, StageClock(root))

    store_path = root / "store.npz"
    if not stages.reuse("prepare", store_path):
        if masks is None and points is None:
            store = prepare(sources, config.prepare)
        elif len(sources) == 1:
            store = prepare_segmentation(sources[0], masks, "01", config.prepare, points=points)
        else:
            raise InputError("--masks", "masks or points go with exactly one image source")
        store.save(store_path)
    embedded_path = root / "embedded.npz"
    if stages.reuse("embed", embedded_path):
        store = Store.load(embedded_path)
    else:
        store = embed_store(Store.load(store_path), config.embed, root / "autoencoder")
        store.save(embedded_path)
    detections = store.detections

    model_dir = root / "model"
    if not stages.reuse("train", model_dir / "last.pt"):
        train_association_model(detections, None, config.train, model_dir)
    checkpoint = model_dir / ("best.pt" if (model_dir / "best.pt").exists() else "last.pt")
    associations_path = root / "associations.parquet"
    if stages.reuse("predict", associations_path):
        associations = Associations.load(associations_path)
    else:
        associations = predict_from_checkpoint(checkpoint, detections, config.predict)
        associations.save(associations_path)

    answers_path = root / "answers.jsonl"
    answers = Annotations.load(answers_path) if answers_path.exists() else None
    tracks_path = root / "tracks"
    if stages.reuse("link", tracks_path):
        tracks = Tracks.load(tracks_path)
    else:
        tracks = link(detections, associations, answers, config.link).tracks
        tracks.save(tracks_path)

    ranking_path = root / "ranking.csv"
    if stages.reuse("rank", ranking_path):
        ranked = sum(1 for _ in open(ranking_path, encoding="utf-8")) - 1
    else:
        ranking = rank_cells(
            detections, tracks, associations, config.rank, annotations=answers,
            candidates=config.link,
        )  # fmt: skip
        save_ranking(ranking, ranking_path)
        ranked = len(ranking)

    geff_path = root / "tracks.geff"
    if not stages.reuse("export", geff_path):
        for name, part in tracks.by_sequence():
            if name in store.masks:
                write_ctc_result(root / "result" / f"{name}_RES", part, store.masks[name])
        write_geff(tracks, geff_path, overwrite=True)

    metrics: dict[str, dict[str, dict[str, float]]] = {}
    metrics_path = root / "metrics.json"
    if store.tracks and not stages.reuse("evaluate", metrics_path):
        position = link(detections, None, None, config.link).tracks
        for name, gt in store.tracks.items():
            ours = dict(tracks.by_sequence())[name]
            theirs = dict(position.by_sequence())[name]
            metrics[name] = {
                "position only": evaluate(theirs, gt, chota=False),
                "attrackt": evaluate(ours, gt, chota=False),
            }
        atomic_write_text(metrics_path, json.dumps(metrics, indent=1))
    elif metrics_path.exists():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    stages.clock.lap(None)
    write_report(root, link=config.link)
    return PipelineResult(root, tracks, ranked, metrics, stages.ran)


def demo(out: str | Path, *, seed: int = 0, device: str = "auto") -> PipelineResult:
    """Write a synthetic dataset with exact ground truth and run the quick pipeline on it."""
    from attrackt.synthetic import SyntheticConfig, generate

    out = Path(out)
    data = out / "data"
    if not (data / "01").is_dir():
        movie = generate(SyntheticConfig(shape=(192, 192), frames=40, seed=seed))
        movie.write(data, "01")
    return run_pipeline([data / "01"], out / "project", PipelineConfig.quick(seed, device))
