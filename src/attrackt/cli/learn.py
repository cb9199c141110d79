"""Learning commands: embed, train, predict, finetune."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from attrackt.cli.common import (
    DetectionsFile,
    DeviceOption,
    SeedOption,
    SequencesOption,
    StoreOrDetections,
    app,
    parse_crop_size,
    read_movies,
    reported,
    training_data,
)
from attrackt.data import Annotations, Associations, Detections
from attrackt.errors import InputError
from attrackt.finetune import FinetuneConfig, FinetuneResult
from attrackt.model.lora import LoRAConfig
from attrackt.predict import PredictConfig
from attrackt.training import AssociationTrainConfig

#: every option's default is the configuration's (no value written twice)
TRAIN = AssociationTrainConfig()
PREDICT = PredictConfig()
FINETUNE = FinetuneConfig()
LORA = LoRAConfig()


@app.command("embed")
def embed_command(
    input: Annotated[
        Path,
        typer.Argument(help="Detections parquet file, or a store (.npz) from `attrackt prepare`."),
    ],
    images: Annotated[
        list[Path] | None,
        typer.Option(help="Movie per sequence (parquet input only): CTC folder, .tif, .npy."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Detections parquet, or store, to write.")
    ] = None,
    in_place: Annotated[bool, typer.Option(help="Rewrite the input store (atomically).")] = False,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Auto-encoder to load instead of training.")
    ] = None,
    train_dir: Annotated[
        Path | None, typer.Option(help="Training log and checkpoints [OUT_autoencoder/].")
    ] = None,
    masks: Annotated[
        list[Path] | None, typer.Option(help="Label masks per sequence (for --mask-others).")
    ] = None,
    mask_others: Annotated[bool, typer.Option(help="Blank other cells (needs masks).")] = False,
    steps: Annotated[int, typer.Option(help="Training steps.")] = 5000,
    minutes: Annotated[
        float | None, typer.Option(help="Train for about this long instead (sets the steps).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Crops per training step.")] = 64,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 3e-4,
    crop_size: Annotated[
        str, typer.Option(help="Crop size: N, or Y,X / Z,Y,X (a store's crops set it).")
    ] = "64",
    latent_channels: Annotated[int, typer.Option(help="Channels of the latent.")] = 4,
    variational: Annotated[bool, typer.Option(help="Train a variational auto-encoder.")] = False,
    embedding: Annotated[str, typer.Option(help="'flat' latent or 'pooled' (for 3D).")] = "flat",
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue a training left in TRAIN_DIR.")] = True,
) -> None:
    """Embed each detection's image crop with the crop auto-encoder (trained here unless given).

    With a store, its crops are embedded and a store with the `embedding` vectors is written
    (--out, or --in-place); with a detections parquet, crops are cut from --images. Under
    torchrun every process trains and the first one writes.
    """
    from attrackt.distributed import is_main_process
    from attrackt.embed import AutoEncoderConfig, EmbedConfig, embed_detections, embed_store
    from attrackt.store import Store
    from attrackt.train import TrainConfig

    with reported():
        is_store = input.suffix == ".npz"
        if in_place and not is_store:
            raise InputError("--in-place", "only a store (.npz) can be rewritten in place")
        target = input if in_place else out
        if target is None:
            raise InputError("--out", "give the file to write (or --in-place for a store)")
        store = Store.load(input) if is_store else None
        detections = store.detections if store is not None else Detections.load(input)
        sizes = parse_crop_size(crop_size)
        config = EmbedConfig(
            model=AutoEncoderConfig(
                crop_size=sizes * detections.ndim if len(sizes) == 1 else sizes,
                latent_channels=latent_channels,
                variational=variational,
                embedding=embedding,
            ),
            train=TrainConfig(
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                min_lr=lr / 30,
                warmup_steps=0.02,
                seed=seed,
                device=device,
            ),
            mask_others=mask_others,
            minutes=minutes,
        )
        work = train_dir or target.with_name(target.stem + "_autoencoder")
        if store is not None:
            if images or masks or mask_others:
                raise InputError("--images", "a store brings its own crops; drop --images/--masks")
            result = embed_store(store, config, work, checkpoint=checkpoint, resume=resume)
        else:
            if not images:
                raise InputError("--images", "a detections file needs its movies (--images)")
            movies = read_movies(detections, images, "images")
            labels = read_movies(detections, masks, "masks") if masks else None
            result = embed_detections(
                detections, movies, config, work, checkpoint=checkpoint, masks=labels, resume=resume
            )
        if is_main_process():  # under torchrun every process trains; one writes
            result.save(target)
    logging.getLogger(__name__).info("wrote %d embedded detections to %s", len(detections), target)


@app.command("train")
def train_command(
    data: StoreOrDetections,
    out: Annotated[Path, typer.Option(help="Run folder: log.jsonl, last.pt, best.pt.")],
    objective: Annotated[
        str, typer.Option(help="unsupervised (no labels), supervised (needs GT) or mixed.")
    ] = "unsupervised",
    sequences: SequencesOption = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = TRAIN.train.steps,
    minutes: Annotated[
        float | None, typer.Option(help="Train for about this long instead (sets the steps).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = TRAIN.train.batch_size,
    lr: Annotated[
        float, typer.Option(help="Peak learning rate (warm-up, then cosine).")
    ] = TRAIN.train.lr,
    window: Annotated[int, typer.Option(help="Frames per window.")] = TRAIN.windows.window,
    max_tokens: Annotated[
        int, typer.Option(help="Detections per window (more: tiles).")
    ] = TRAIN.windows.max_tokens,
    d_model: Annotated[int, typer.Option(help="Transformer width.")] = TRAIN.model.d_model,
    layers: Annotated[
        int, typer.Option(help="Encoder layers (and as many decoder layers).")
    ] = TRAIN.model.encoder_layers,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = TRAIN.model.n_heads,
    dropout: Annotated[float, typer.Option(help="Dropout.")] = TRAIN.model.dropout,
    val_frames: Annotated[
        float, typer.Option(help="Share of each sequence's last frames held out (0: none).")
    ] = TRAIN.val_frames,
    init: Annotated[
        Path | None, typer.Option(help="Start from this checkpoint's model and weights.")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    resume: Annotated[bool, typer.Option(help="Continue the run left in OUT.")] = True,
) -> None:
    """Train the association model (unsupervised: Attrackt + transitive loss; or supervised)."""
    from attrackt.model import TransformerConfig, WindowConfig
    from attrackt.train import TrainConfig
    from attrackt.training import AssociationTrainConfig, train_association_model

    with reported():
        detections, edges = training_data(data, sequences)
        config = AssociationTrainConfig(
            objective=objective,
            model=TransformerConfig(
                d_model=d_model,
                n_heads=heads,
                encoder_layers=layers,
                decoder_layers=layers,
                dropout=dropout,
                window=window,
            ),
            windows=WindowConfig(window=window, max_tokens=max_tokens),
            train=TrainConfig(
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                min_lr=lr / 30,
                warmup_steps=0.05,
                val_every=max(1, steps // 8),
                checkpoint_every=max(1, steps // 4),
                log_every=max(1, min(50, steps // 20)),
                seed=seed,
                device=device,
            ),
            val_frames=val_frames,
            minutes=minutes,
        )
        train_association_model(detections, edges, config, out, resume=resume, init=init)
    logging.getLogger(__name__).info("trained; checkpoints in %s", out)


@app.command("predict")
def predict_command(
    data: StoreOrDetections,
    checkpoint: Annotated[
        list[Path],
        typer.Option(
            help="A checkpoint of `attrackt train`; give it more than once to average the "
            "models' associations (an ensemble, e.g. of training seeds)."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Associations parquet to write.")],
    sequences: SequencesOption = None,
    tta: Annotated[
        bool, typer.Option(help="Average over flips/transpositions of y-x.")
    ] = PREDICT.tta,
    threshold: Annotated[
        float, typer.Option(help="Drop mean scores below this.")
    ] = PREDICT.threshold,
    max_dt: Annotated[int, typer.Option(help="Longest link (frames) to score.")] = PREDICT.max_dt,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = PREDICT.batch_size,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    detections_out: Annotated[
        Path | None,
        typer.Option(help="Also write the scored detections (parquet) for `attrackt link`."),
    ] = None,
) -> None:
    """Score every pair of detections up to MAX_DT frames apart with a trained model (the
    mean score over several models where more than one checkpoint is given)."""
    from attrackt.data import Associations
    from attrackt.predict import PredictConfig, predict_from_checkpoint

    with reported():
        detections, _ = training_data(data, sequences)
        config = PredictConfig(
            max_dt=max_dt, threshold=threshold, tta=tta, batch_size=batch_size, device=device
        )
        parts = [predict_from_checkpoint(path, detections, config) for path in checkpoint]
        associations = parts[0] if len(parts) == 1 else Associations.mean(parts)
        associations.save(out)
        if detections_out is not None:
            detections.save(detections_out)
    frames, seconds = associations.meta["frames"], sum(p.meta["seconds"] for p in parts)
    logging.getLogger(__name__).info(
        "wrote %d associations to %s (%d model%s, %d frames in %.1f s)",
        len(associations),
        out,
        len(parts),
        "s" if len(parts) > 1 else "",
        frames,
        seconds,
    )


FullOption = Annotated[bool, typer.Option(help="Train every parameter instead of LoRA adapters.")]
RankOption = Annotated[int, typer.Option(help="LoRA rank.")]
AlphaOption = Annotated[
    float, typer.Option(help="LoRA alpha (the update is scaled by alpha/rank).")
]
DropoutOption = Annotated[float, typer.Option(help="LoRA dropout on the adapted layers' input.")]
TargetsOption = Annotated[
    str, typer.Option(help="Layers to adapt (name patterns, comma-separated).")
]
PseudoFractionOption = Annotated[
    float, typer.Option(help="Share of cells whose solver links are pseudo-labels (0: none).")
]
StepsPerCellOption = Annotated[int, typer.Option(help="Optimiser steps per answered cell.")]
MaxStepsOption = Annotated[int | None, typer.Option(help="At most this many steps.")]
MinutesOption = Annotated[float | None, typer.Option(help="At most this long (steps measured).")]
CheckFractionOption = Annotated[
    float,
    typer.Option(
        help="Share of answered cells held out of what is learned, to check it on them "
        "(see the README's proof-reading section; 0: no check)."
    ),
]
LrOption = Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up + cosine).")]
BatchOption = Annotated[int, typer.Option(help="Windows per step.")]


@dataclass(frozen=True)
class FinetuneOptions:
    """The fine-tuning options of a command, as given."""

    full: bool
    rank: int
    alpha: float
    dropout: float
    targets: str
    pseudo_fraction: float
    steps_per_cell: int
    max_steps: int | None
    minutes: float | None
    lr: float
    batch_size: int
    check_fraction: float

    def config(self, device: str, seed: int) -> FinetuneConfig:
        """The fine-tuning these options ask for, on ``device`` with ``seed``."""
        from attrackt.train import TrainConfig

        lora = None
        if not self.full:
            patterns = tuple(t.strip() for t in self.targets.split(",") if t.strip())
            lora = LoRAConfig(
                rank=self.rank, alpha=self.alpha, dropout=self.dropout, targets=patterns, seed=seed
            )
        return FinetuneConfig(
            lora=lora,
            pseudo_fraction=self.pseudo_fraction,
            steps_per_cell=self.steps_per_cell,
            min_steps=min(100, self.max_steps or 100),
            max_steps=self.max_steps,
            minutes=self.minutes,
            check_fraction=self.check_fraction,
            train=TrainConfig(
                lr=self.lr,
                batch_size=self.batch_size,
                warmup_steps=0.05,
                checkpoint_every=200,
                log_every=25,
                device=device,
                seed=seed,
            ),
        )


_FINETUNE_OPTIONS = [
    inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=default)
    for name, kind, default in (
        ("full", FullOption, False),
        ("rank", RankOption, LORA.rank),
        ("alpha", AlphaOption, LORA.alpha),
        ("dropout", DropoutOption, LORA.dropout),
        ("targets", TargetsOption, ",".join(LORA.targets)),
        ("pseudo_fraction", PseudoFractionOption, FINETUNE.pseudo_fraction),
        ("steps_per_cell", StepsPerCellOption, FINETUNE.steps_per_cell),
        ("max_steps", MaxStepsOption, None),
        ("minutes", MinutesOption, None),
        ("lr", LrOption, FINETUNE.train.lr),
        ("batch_size", BatchOption, FINETUNE.train.batch_size),
        ("check_fraction", CheckFractionOption, FINETUNE.check_fraction),
    )
]


def with_finetune_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the fine-tuning options in place of its ``tuning: FinetuneOptions``
    parameter (declared once here for every command that fine-tunes)."""
    signature = inspect.signature(command, eval_str=True)
    names = [p.name for p in _FINETUNE_OPTIONS]
    parameters = []
    for parameter in signature.parameters.values():
        if parameter.name == "tuning":
            parameters += _FINETUNE_OPTIONS
        else:
            parameters.append(parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY))

    @functools.wraps(command)
    def wrapper(**options: Any) -> None:
        tuning = FinetuneOptions(**{name: options.pop(name) for name in names})
        command(**options, tuning=tuning)

    wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
    return wrapper


@app.command("finetune")
@with_finetune_options
def finetune_command(
    checkpoint: Annotated[Path, typer.Argument(help="The base model (attrackt train).")],
    detections: DetectionsFile,
    annotations: Annotated[Path, typer.Argument(help="Answers journal (JSON lines).")],
    out: Annotated[Path, typer.Option(help="Folder: adapters.pt, model.pt (merged), log.")],
    tracks: Annotated[
        Path | None, typer.Option(help="The solver's tracks folder (for pseudo-labels).")
    ] = None,
    associations: Annotated[
        Path | None,
        typer.Option(
            help="The base model's associations (for pseudo-labels, and to write the "
            "associations to link with, checked on the held-out answers: without them "
            "nothing is held out)."
        ),
    ] = None,
    *,
    tuning: FinetuneOptions,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
    resume: Annotated[bool, typer.Option(help="Continue a fine-tuning left in OUT.")] = True,
) -> None:
    """Fine-tune the association model on proof-reading answers (LoRA by default). With the
    base model's --associations, OUT/associations.parquet holds the associations to link with:
    the mean of the base and the fine-tuned model's, unless they link a held-out share of the
    answers (--check-fraction) worse than the base model's by 2 cells or more (then the base
    model's; the verdict in OUT/check.json)."""
    import dataclasses

    from attrackt.active import pseudo_labels
    from attrackt.data import Tracks
    from attrackt.finetune import finetune_checkpoint
    from attrackt.link import LinkConfig

    log = logging.getLogger(__name__)
    with reported():
        config = tuning.config(device, seed)
        if associations is None and config.check_fraction > 0:
            log.info("no --associations of the base model to check against: nothing held out")
            config = dataclasses.replace(config, check_fraction=0.0)
        dets = Detections.load(detections)
        answers = Annotations.load(annotations)
        pseudo = None
        if tuning.pseudo_fraction > 0:
            if tracks is None or associations is None:
                raise InputError(
                    "--pseudo-fraction", "pseudo-labels need --tracks and --associations (or 0)"
                )
            pseudo = pseudo_labels(
                dets, Tracks.load(tracks), Associations.load(associations), answers,
                tuning.pseudo_fraction, candidates=LinkConfig(),
            )  # fmt: skip
        result = finetune_checkpoint(
            checkpoint, dets, answers, config, out, pseudo=pseudo, resume=resume
        )
        log.info(
            "fine-tuned on %d answered and %d pseudo-labelled cells, %d steps -> %s",
            result.answered,
            result.pseudo,
            result.steps,
            out / "model.pt",
        )
        if associations is not None:
            _check_finetuned(dets, Associations.load(associations), answers, result, out, device)


def _check_finetuned(
    dets: Detections,
    base: Associations,
    answers: Annotations,
    result: FinetuneResult,
    out: Path,
    device: str,
) -> None:
    """Predict with the fine-tuned model and write the associations to link with (the mean of
    the base and the fine-tuned model's, or the base model's where that mean links the held-out
    answers worse) and the verdict."""
    from attrackt.io.jsonfile import write_json
    from attrackt.link import LinkConfig
    from attrackt.link.held_out import check_associations
    from attrackt.predict import predict_from_checkpoint

    tuned = predict_from_checkpoint(out / "model.pt", dets, PredictConfig(device=device))
    chosen, verdict = check_associations(dets, base, tuned, answers, result.held_out, LinkConfig())
    chosen.save(out / "associations.parquet")
    write_json(out / "check.json", verdict)
    logging.getLogger(__name__).info(
        "%s: %s holds the %s associations", verdict["reason"], out / "associations.parquet",
        "base and fine-tuned model's mean" if verdict["kept"] == "tuned" else "base model's",
    )  # fmt: skip
