"""The command-line face of attrackt: one thin command per stage, plus the whole pipeline."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.interrupt import TrainingInterrupted
from attrackt.io.tiff import read_movie
from attrackt.voxels import parse_voxel_size

if TYPE_CHECKING:
    from attrackt.data import Annotations, Associations
    from attrackt.link import LinkConfig

app = typer.Typer(
    name="attrackt",
    help="Track cells without tracking labels, proof-read where it matters, learn from it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debugging detail."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only."),
) -> None:
    """attrackt: each command is one stage; `attrackt run` does them all."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):  # one of `torchrun ... -m attrackt`
        from attrackt import distributed

        distributed.start()  # join now: every process agrees on anything decided before training
        if not distributed.is_main_process():  # rank 0 speaks
            level = max(level, logging.WARNING)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


# ---- data: validate, info, synth ---------------------------------------------------------

_CTCPath = Annotated[
    Path, typer.Argument(help="A CTC dataset folder, a sequence, or a TRA/RES folder.")
]
_Sequence = Annotated[
    str | None,
    typer.Option("--sequence", "-s", help="Sequence name, e.g. 01."),
]


@app.command()
def validate(path: _CTCPath, sequence: _Sequence = None) -> None:
    """Check CTC data; print each error and warning with its file. Exit code 1 on errors."""
    from attrackt.io.validate import validate_ctc

    report = validate_ctc(path, sequence)
    for issue in report.errors + report.warnings:
        typer.echo(str(issue))
    typer.echo(report.summary())
    raise typer.Exit(1 if report.errors else 0)


@app.command()
def info(path: _CTCPath, sequence: _Sequence = None) -> None:
    """Frames, image shape, cells per frame, tracks, divisions and nodes of CTC data."""
    from attrackt.errors import InputError
    from attrackt.io.ctc import ctc_info

    try:
        infos = ctc_info(path, sequence)
    except InputError as err:
        typer.echo(f"ERROR {err} (run `attrackt validate` for every problem)", err=True)
        raise typer.Exit(1) from err
    for s in infos:
        typer.echo(f"{s.name}: {s.frames} frames of {' x '.join(map(str, s.image_shape))}")
        if s.cells_per_frame is not None:
            low, median, high = s.cells_per_frame
            typer.echo(f"  cells per frame: min {low}, median {median:g}, max {high}")
            typer.echo(f"  tracks {s.tracks}, divisions {s.divisions}, nodes {s.nodes}")


@app.command()
def synth(
    out: Annotated[Path, typer.Argument(help="Dataset folder to write (CTC layout).")],
    preset: Annotated[
        str | None, typer.Option(help="Start from a named hard movie: look-alike, crowded.")
    ] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per sequence.")] = None,
    size: Annotated[int | None, typer.Option(help="Height and width of the field (px).")] = None,
    ndim: Annotated[int, typer.Option(help="2 or 3 spatial dimensions.")] = 2,
    depth: Annotated[int, typer.Option(help="Z slices (3D only).")] = 32,
    density: Annotated[
        float | None, typer.Option(help="Cells per 100 x 100 px at the start.")
    ] = None,
    division_rate: Annotated[
        float | None, typer.Option(help="Division chance per cell and frame.")
    ] = None,
    entry_rate: Annotated[
        float | None, typer.Option(help="Cells entering per frame and 100 px of border.")
    ] = None,
    step: Annotated[float | None, typer.Option(help="Own motion per frame (px, std).")] = None,
    drift: Annotated[float | None, typer.Option(help="Common drift (px per frame).")] = None,
    radius: Annotated[float | None, typer.Option(help="Mean nucleus radius (px).")] = None,
    noise: Annotated[
        float | None, typer.Option(help="Gaussian noise std (cells are ~0.4-1).")
    ] = None,
    appearance_spread: Annotated[
        float | None, typer.Option(help="How much cells differ in look: 1 varied, 0 alike.")
    ] = None,
    sequences: Annotated[int, typer.Option(help="Sequences to write: 01, 02, ...")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (sequence i uses seed + i).")] = 0,
) -> None:
    """Write a synthetic movie with exact ground truth (images + 01_GT/TRA) in CTC layout.

    Unset options take their values from ``--preset``, else from attrackt's defaults
    (``SyntheticConfig``)."""
    from attrackt.errors import InputError
    from attrackt.synthetic import PRESETS, SyntheticConfig, generate

    if ndim not in (2, 3):
        raise typer.BadParameter("--ndim must be 2 or 3")
    if preset is not None and preset not in PRESETS:
        raise typer.BadParameter(f"--preset must be one of {sorted(PRESETS)}")
    settings = dict(PRESETS[preset]) if preset else {}
    given = dict(
        frames=frames, density=density, division_rate=division_rate, entry_rate=entry_rate,
        step=step, drift=drift, radius=radius, noise=noise, appearance_spread=appearance_spread,
    )  # fmt: skip
    settings.update({k: v for k, v in given.items() if v is not None})
    if size is not None or ndim == 3 or "shape" not in settings:
        side = size or SyntheticConfig().shape[-1]
        settings["shape"] = (side, side) if ndim == 2 else (depth, side, side)
    for i in range(sequences):
        try:
            config = SyntheticConfig(**settings, seed=seed + i)
        except InputError as err:
            typer.echo(f"ERROR {err}", err=True)
            raise typer.Exit(1) from err
        movie = generate(config)
        folder = movie.write(out, f"{i + 1:02d}")
        table = movie.track_table
        typer.echo(
            f"{folder}: {config.frames} frames, {len(table)} tracks, "
            f"{int((table['parent'] > 0).sum()) // 2} divisions"
        )


# ---- evaluation --------------------------------------------------------------------------


@app.command()
def evaluate(
    pred: Annotated[
        Path, typer.Argument(help="Prediction: CTC result folder, geff store or Tracks folder.")
    ],
    gt: Annotated[
        Path, typer.Argument(help="Ground truth: CTC GT folder, geff store or Tracks folder.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the scores as JSON here.")
    ] = None,
    match_distance: Annotated[
        float | None,
        typer.Option(help="Match detections within this distance (px) when nothing else can."),
    ] = None,
    chota: Annotated[bool, typer.Option(help="Compute CHOTA too.")] = True,
) -> None:
    """Score tracks against ground truth: AOGM, TRA, DET, CHOTA, edge errors, divisions."""
    from attrackt.errors import InputError
    from attrackt.evaluate import evaluate_paths, format_table, results_json
    from attrackt.io.atomic import atomic_write_text

    try:
        results = evaluate_paths(pred, gt, match_distance=match_distance, chota=chota)
    except InputError as err:
        typer.echo(f"ERROR {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(format_table(results))
    if json_out is not None:
        atomic_write_text(json_out, results_json(results))


# ---- linking -----------------------------------------------------------------------------


@app.command("link")
def link_command(
    detections: Annotated[
        Path,
        typer.Argument(help="Detections parquet, or a CTC mask folder (TRA, RES or SEG frames)."),
    ],
    out: Annotated[Path, typer.Option(help="Tracks folder to write.")],
    associations: Annotated[
        Path | None, typer.Option(help="Associations parquet (scores lower link costs).")
    ] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Answers journal (JSON lines): links pinned in or out.")
    ] = None,
    k: Annotated[int, typer.Option(help="Nearest neighbours in each previous frame.")] = 3,
    max_distance: Annotated[float | None, typer.Option(help="Longest candidate link.")] = None,
    max_gap: Annotated[int, typer.Option(help="Frames a link may span (1: no gaps).")] = 1,
    divisions: Annotated[bool, typer.Option(help="Allow divisions (hyper-edges).")] = True,
    solver: Annotated[str, typer.Option(help="fast (exact), motile (exact, slow) or greedy.")] = (
        "fast"
    ),
    time_limit: Annotated[float | None, typer.Option(help="Seconds before giving up.")] = None,
    threads: Annotated[int, typer.Option(help="Worker processes (fast) / threads.")] = 1,
    pin_nodes: Annotated[bool, typer.Option(help="Keep every detection in the tracks.")] = True,
    normalise: Annotated[bool, typer.Option(help="Normalise features (mean/std).")] = True,
    distance_weight: Annotated[float, typer.Option(help="Weight of link distance.")] = 1.0,
    association_weight: Annotated[float, typer.Option(help="Weight of association.")] = -1.0,
    edge_bias: Annotated[float, typer.Option(help="Constant on every link.")] = 0.0,
    hyper_bias: Annotated[float, typer.Option(help="Constant on every division.")] = 0.0,
    appear: Annotated[float, typer.Option(help="Cost of a track start.")] = 1.0,
    disappear: Annotated[float, typer.Option(help="Cost of a track end.")] = 1.0,
    border_margin: Annotated[
        float | None, typer.Option(help="Starts and ends this close to the border are free.")
    ] = None,
    voxel_size: Annotated[
        str | None, typer.Option(help="Pixel size per axis, e.g. 2,1,1 (Z,Y,X).")
    ] = None,
    ctc_out: Annotated[
        Path | None, typer.Option(help="Also write a CTC result folder (needs mask input).")
    ] = None,
    geff_out: Annotated[Path | None, typer.Option(help="Also write the tracks as geff.")] = None,
    guard: Annotated[
        bool,
        typer.Option(
            help="Let the associations change a movie's links only where they agree with "
            "position on the cells where position is obvious (the label-free guard)."
        ),
    ] = True,
    learn_weights: Annotated[
        Path | None,
        typer.Option(
            "--learn-weights",
            help="First learn the cost weights from the answers (structured SVM); write them "
            "and the learning record to this JSON file.",
        ),
    ] = None,
) -> None:
    """Link detections into tracks: candidate graph, costs, and the method's ILP."""
    from attrackt.data import Annotations, Associations
    from attrackt.errors import SolverError
    from attrackt.link import LinkConfig, link

    log = logging.getLogger(__name__)
    with _reported():
        config = LinkConfig(
            k=k,
            max_distance=max_distance,
            max_gap=max_gap,
            divisions=divisions,
            voxel_size=parse_voxel_size(voxel_size),
            distance_weight=distance_weight,
            association_weight=association_weight,
            edge_bias=edge_bias,
            hyper_distance_weight=distance_weight,
            hyper_association_weight=association_weight,
            hyper_bias=hyper_bias,
            appear=appear,
            disappear=disappear,
            normalise=normalise,
            border_margin=border_margin,
            pin_nodes=pin_nodes,
            guard=guard,
            solver=solver,  # type: ignore[arg-type]
            time_limit=time_limit,
            threads=threads,
        )
        masks = None
        if detections.is_dir():
            from attrackt.io.ctc import detections_from_masks

            masks = read_movie(detections)
            dets = detections_from_masks(masks, sequence=detections.name)
        else:
            dets = Detections.load(detections)
        if ctc_out is not None and masks is None:
            raise InputError("--ctc-out", "needs detections read from a CTC mask folder")
        assoc = Associations.load(associations) if associations is not None else None
        answers = Annotations.load(annotations) if annotations is not None else None
        if learn_weights is not None:
            config = _learned_config(dets, assoc, answers, config, learn_weights)
        try:
            result = link(dets, assoc, answers, config)
        except SolverError as err:
            typer.echo(f"ERROR {err}", err=True)
            raise typer.Exit(1) from err
        if result.guard is not None:
            typer.echo(result.guard.message())
        result.tracks.save(out)
        if ctc_out is not None:
            from attrackt.io.ctc import write_ctc_result

            write_ctc_result(ctc_out, result.tracks, masks)
        if geff_out is not None:
            from attrackt.io.geff import write_geff

            write_geff(result.tracks, geff_out, overwrite=True)
    log.info(
        "%s: %d links, %d divisions, objective %.6g (%s, gap %.3g) in %.1f s -> %s",
        result.solver,
        len(result.tracks.edges),
        len(result.tracks.divisions()),
        result.objective,
        result.status,
        result.gap,
        result.seconds,
        out,
    )


def _learned_config(
    dets: Detections,
    assoc: Associations | None,
    answers: Annotations | None,
    config: LinkConfig,
    out: Path,
) -> LinkConfig:
    """``config`` with the weights learned from ``answers``, the learning written to ``out``."""
    import json

    from attrackt.io.atomic import atomic_write_text
    from attrackt.link.learn import learn_weights

    if answers is None:
        raise InputError("--learn-weights", "needs --annotations (the answers to learn from)")
    learned = learn_weights(dets, answers, assoc, config)
    atomic_write_text(out, json.dumps(learned.to_dict(), indent=1))
    return learned.config


# ---- features and embeddings -------------------------------------------------------------


_DetectionsFile = Annotated[Path, typer.Argument(help="Detections parquet file.")]
_OutFile = Annotated[Path, typer.Option(help="Detections parquet to write.")]
_Movies = Annotated[
    list[Path], typer.Option(help="Movie per sequence (in table order): CTC folder, .tif, .npy.")
]
_Masks = Annotated[list[Path], typer.Option(help="Label masks per sequence: CTC folder, ...")]


def _movies(detections: Detections, paths: list[Path], what: str) -> dict[str, np.ndarray]:
    """One movie per sequence of ``detections``, given in the order of its sequences."""
    names = detections.sequences
    if len(paths) != len(names):
        raise InputError(
            f"--{what}", f"give one per sequence ({len(names)}: {names}), got {len(paths)}"
        )
    return {name: read_movie(p) for name, p in zip(names, paths, strict=True)}


#: options that would start over what a stopped command goes on with: left out of the hint
_STARTING_OVER = ("--force", "--no-resume")


@contextlib.contextmanager
def _reported() -> Iterator[None]:
    """Turn an :class:`InputError` into one line on stderr and exit code 1; training stopped by
    a signal into one line on how to go on and exit code 130 (SIGINT) or 143 (SIGTERM)."""
    try:
        yield
    except InputError as err:
        typer.echo(f"ERROR {err}", err=True)
        raise typer.Exit(1) from err
    except TrainingInterrupted as err:
        again = shlex.join(["attrackt", *(a for a in sys.argv[1:] if a not in _STARTING_OVER)])
        typer.echo(f"STOPPED {err.summary}; to go on from there, run: {again}", err=True)
        raise typer.Exit(err.exit_code) from err


def _crop_size(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise InputError("--crop-size", f"expected N or Z,Y,X integers, got {text!r}") from err


@app.command("features")
def features_command(
    input: _DetectionsFile,
    images: _Movies,
    masks: _Masks,
    out: _OutFile,
) -> None:
    """Add shape and intensity features (area, intensity statistics, axes, ...) to detections."""
    from attrackt.features import regionprops_features

    with _reported():
        detections = Detections.load(input)
        movies = _movies(detections, images, "images")
        labels = _movies(detections, masks, "masks")
        parts = [
            regionprops_features(movies[name], labels[name], part)
            for name, part in detections.by_sequence()
        ]
        result = Detections.concat(parts) if parts else detections
        result.save(out)
    logging.getLogger(__name__).info("wrote %d detections with features to %s", len(result), out)


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

    with _reported():
        is_store = input.suffix == ".npz"
        if in_place and not is_store:
            raise InputError("--in-place", "only a store (.npz) can be rewritten in place")
        target = input if in_place else out
        if target is None:
            raise InputError("--out", "give the file to write (or --in-place for a store)")
        store = Store.load(input) if is_store else None
        detections = store.detections if store is not None else Detections.load(input)
        sizes = _crop_size(crop_size)
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
            movies = _movies(detections, images, "images")
            labels = _movies(detections, masks, "masks") if masks else None
            result = embed_detections(
                detections, movies, config, work, checkpoint=checkpoint, masks=labels, resume=resume
            )
        if is_main_process():  # under torchrun every process trains; one writes
            result.save(target)
    logging.getLogger(__name__).info("wrote %d embedded detections to %s", len(detections), target)


# ---- association model: prepare, train, predict ------------------------------------------


_StoreOrDetections = Annotated[
    Path,
    typer.Argument(help="A store (.npz) from `attrackt prepare`, or a detections parquet file."),
]
_Sequences = Annotated[
    str | None,
    typer.Option(help="Sequences to use, comma-separated names or suffixes (e.g. 01,02) [all]."),
]


def _sizes(text: str, option: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(option, f"expected N or Z,Y,X integers, got {text!r}") from err
    return values[0] if len(values) == 1 else values


def _training_data(path: Path, sequences: str | None) -> tuple[Detections, np.ndarray | None]:
    """Detections (of the chosen sequences) and their GT edges (``None`` without GT)."""
    from attrackt.store import Store, resolve_sequences

    names = [s for s in sequences.split(",") if s] if sequences else None
    if path.suffix == ".npz":
        store = Store.load(path, masks=False)
        if names:
            store = store.select(names)
        return store.detections, store.edges()
    detections = Detections.load(path)
    if names:
        chosen = resolve_sequences(detections.sequences, names)
        detections = detections.take(detections.table["sequence"].isin(chosen).to_numpy())
    return detections, None


@app.command("prepare")
def prepare_command(
    sources: Annotated[
        list[Path], typer.Argument(help="CTC dataset folders or sequences (DATASET/01, ...).")
    ],
    out: Annotated[Path, typer.Option(help="The store file to write (.npz).")],
    gt_detections: Annotated[
        bool, typer.Option(help="Full cells: TRA markers painted over the silver truth (ST).")
    ] = False,
    crop_size: Annotated[str, typer.Option(help="Field of view of a crop (px): N or Y,X.")] = "64",
    crop_pixels: Annotated[str, typer.Option(help="Resolution of the stored crops.")] = "32",
    masks: Annotated[bool, typer.Option(help="Keep the label masks in the store.")] = False,
) -> None:
    """Turn CTC sequences into one compact store: detections, features, GT, crops [, masks]."""
    from attrackt.prepare import PrepareConfig, prepare

    with _reported():
        if out.suffix != ".npz":
            raise InputError(out, "a store file must end in .npz")
        config = PrepareConfig(
            gt_detections=gt_detections,
            crop_size=_sizes(crop_size, "--crop-size"),
            crop_pixels=_sizes(crop_pixels, "--crop-pixels"),
            masks=masks,
        )
        store = prepare(sources, config)
        store.save(out)
    size = out.stat().st_size / 2**20
    logging.getLogger(__name__).info(
        "wrote %s: %d detections of %s (%.1f MiB)",
        out,
        len(store.detections),
        store.sequences,
        size,
    )


@app.command("train")
def train_command(
    data: _StoreOrDetections,
    out: Annotated[Path, typer.Option(help="Run folder: log.jsonl, last.pt, best.pt.")],
    objective: Annotated[
        str, typer.Option(help="unsupervised (no labels), supervised (needs GT) or mixed.")
    ] = "unsupervised",
    sequences: _Sequences = None,
    steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 2000,
    minutes: Annotated[
        float | None, typer.Option(help="Train for about this long instead (sets the steps).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (warm-up, then cosine).")] = 3e-4,
    window: Annotated[int, typer.Option(help="Frames per window.")] = 6,
    max_tokens: Annotated[int, typer.Option(help="Detections per window (more: tiles).")] = 2048,
    d_model: Annotated[int, typer.Option(help="Transformer width.")] = 256,
    layers: Annotated[int, typer.Option(help="Encoder layers (and as many decoder layers).")] = 6,
    heads: Annotated[int, typer.Option(help="Attention heads.")] = 4,
    dropout: Annotated[float, typer.Option(help="Dropout.")] = 0.1,
    val_frames: Annotated[
        float, typer.Option(help="Share of each sequence's last frames held out (0: none).")
    ] = 0.1,
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

    with _reported():
        detections, edges = _training_data(data, sequences)
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
    data: _StoreOrDetections,
    checkpoint: Annotated[Path, typer.Option(help="A checkpoint of `attrackt train`.")],
    out: Annotated[Path, typer.Option(help="Associations parquet to write.")],
    sequences: _Sequences = None,
    tta: Annotated[bool, typer.Option(help="Average over flips/transpositions of y-x.")] = True,
    threshold: Annotated[float, typer.Option(help="Drop mean scores below this.")] = 0.01,
    max_dt: Annotated[int, typer.Option(help="Longest link (frames) to score.")] = 1,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 16,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    detections_out: Annotated[
        Path | None,
        typer.Option(help="Also write the scored detections (parquet) for `attrackt link`."),
    ] = None,
) -> None:
    """Score every pair of detections up to MAX_DT frames apart with a trained model."""
    from attrackt.predict import PredictConfig, predict_from_checkpoint

    with _reported():
        detections, _ = _training_data(data, sequences)
        config = PredictConfig(
            max_dt=max_dt, threshold=threshold, tta=tta, batch_size=batch_size, device=device
        )
        associations = predict_from_checkpoint(checkpoint, detections, config)
        associations.save(out)
        if detections_out is not None:
            detections.save(detections_out)
    meta = associations.meta
    logging.getLogger(__name__).info(
        "wrote %d associations to %s (%d frames in %.1f s: %.1f frames/s)",
        len(associations),
        out,
        meta["frames"],
        meta["seconds"],
        meta["frames"] / max(meta["seconds"], 1e-9),
    )


# ---- proof-reading: rank, finetune, loop -------------------------------------------------


_TracksFolder = Annotated[Path, typer.Argument(help="Tracks folder (attrackt link --out).")]
_Journal = Annotated[Path, typer.Argument(help="Answers journal (JSON lines).")]


@app.command("rank")
def rank_command(
    detections: _DetectionsFile,
    tracks: _TracksFolder,
    out: Annotated[Path, typer.Option(help="Ranking to write (.csv or .json).")],
    associations: Annotated[
        Path | None, typer.Option(help="The model's associations parquet (confidence).")
    ] = None,
    strategy: Annotated[str, typer.Option(help="confidence, random or oracle (needs --gt).")] = (
        "confidence"
    ),
    gt: Annotated[Path | None, typer.Option(help="Ground-truth tracks folder (oracle).")] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Answers journal: answered cells are left out.")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Keep only the N most ambiguous cells.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of random scores and tie-breaking.")] = 0,
    k: Annotated[
        int,
        typer.Option(
            help="The k the tracks were linked with: confidence counts the association mass on "
            "those candidate links only (0: all mass)."
        ),
    ] = 3,
) -> None:
    """Rank cells for proof-reading, most ambiguous first, with the solver's and model's links."""
    from attrackt.active import RankConfig, rank_cells, save_ranking, select
    from attrackt.data import Annotations, Associations, Tracks
    from attrackt.link import LinkConfig

    with _reported():
        config = RankConfig(strategy=strategy, seed=seed)  # type: ignore[arg-type]
        ranking = rank_cells(
            Detections.load(detections),
            Tracks.load(tracks),
            Associations.load(associations) if associations is not None else None,
            config,
            gt=Tracks.load(gt) if gt is not None else None,
            annotations=Annotations.load(annotations) if annotations is not None else None,
            candidates=LinkConfig(k=k) if k > 0 else None,
        )
        if top is not None:
            ranking = ranking.iloc[: len(select(ranking, top))]
        save_ranking(ranking, out)
    logging.getLogger(__name__).info("ranked %d cells (%s) -> %s", len(ranking), strategy, out)


def _children(text: str) -> tuple[int, tuple[int, ...]]:
    parent, _, kids = text.partition(":")
    try:
        return int(parent), tuple(int(c) for c in kids.split(",") if c.strip())
    except ValueError as err:
        raise InputError(
            "--answer", f"expected ID:CHILD[,CHILD] or ID: (no child), got {text!r}"
        ) from err


@app.command("answers")
def answers_command(
    journal: _Journal,
    answer: Annotated[
        list[str] | None,
        typer.Option(help="Record an answer ID:CHILD[,CHILD] (ID: for none); replaces older."),
    ] = None,
    author: Annotated[str, typer.Option(help="Who answers.")] = "",
    check: Annotated[
        Path | None, typer.Option(help="Detections parquet to check the answers against.")
    ] = None,
    max_gap: Annotated[
        int, typer.Option(help="With --check: frames a child may lie after its parent (linking).")
    ] = 1,
    export: Annotated[Path | None, typer.Option(help="Write the answers (.csv or .json).")] = None,
    history: Annotated[bool, typer.Option(help="Export every answer, not only the latest.")] = (
        False
    ),
) -> None:
    """Record, check and export proof-reading answers (an append-only journal)."""
    from attrackt.data import Annotations, Answer

    with _reported():
        answers = Annotations.load(journal)
        for text in answer or []:
            parent, kids = _children(text)
            answers.add(Answer(parent, kids, author=author))
        if check is not None:
            conflicts = answers.validate(Detections.load(check), max_gap)
            for conflict in conflicts:
                typer.echo(f"CONFLICT {journal}: {conflict.message}")
            typer.echo(f"{len(answers)} answered cells, {len(conflicts)} conflicts")
            if conflicts:
                raise typer.Exit(1)
        if export is not None:
            answers.export(export, history=history)


def _finetune_config(
    full: bool,
    rank: int,
    alpha: float,
    dropout: float,
    targets: str,
    pseudo_fraction: float,
    steps_per_cell: int,
    max_steps: int | None,
    minutes: float | None,
    lr: float,
    batch_size: int,
    device: str,
    seed: int,
):
    from attrackt.finetune import FinetuneConfig
    from attrackt.model.lora import LoRAConfig
    from attrackt.train import TrainConfig

    lora = None
    if not full:
        patterns = tuple(t.strip() for t in targets.split(",") if t.strip())
        lora = LoRAConfig(rank=rank, alpha=alpha, dropout=dropout, targets=patterns, seed=seed)
    return FinetuneConfig(
        lora=lora,
        pseudo_fraction=pseudo_fraction,
        steps_per_cell=steps_per_cell,
        min_steps=min(100, max_steps or 100),
        max_steps=max_steps,
        minutes=minutes,
        train=TrainConfig(
            lr=lr,
            batch_size=batch_size,
            warmup_steps=0.05,
            checkpoint_every=200,
            log_every=25,
            device=device,
            seed=seed,
        ),
    )


_Full = Annotated[bool, typer.Option(help="Train every parameter instead of LoRA adapters.")]
_Rank = Annotated[int, typer.Option(help="LoRA rank.")]
_Alpha = Annotated[float, typer.Option(help="LoRA alpha (the update is scaled by alpha/rank).")]
_Dropout = Annotated[float, typer.Option(help="LoRA dropout on the adapted layers' input.")]
_Targets = Annotated[str, typer.Option(help="Layers to adapt (name patterns, comma-separated).")]
_PseudoFraction = Annotated[
    float, typer.Option(help="Share of cells whose solver links are pseudo-labels (0: none).")
]
_StepsPerCell = Annotated[int, typer.Option(help="Optimiser steps per answered cell.")]
_MaxSteps = Annotated[int | None, typer.Option(help="At most this many steps.")]
_Minutes = Annotated[float | None, typer.Option(help="At most this long (steps measured).")]
_Lr = Annotated[float, typer.Option(help="Peak learning rate (AdamW, warm-up + cosine).")]
_Batch = Annotated[int, typer.Option(help="Windows per step.")]
_Device = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]
_Seed = Annotated[int, typer.Option(help="Random seed.")]
_TARGETS = "*q_proj,*k_proj,*v_proj,*out_proj"


@app.command("finetune")
def finetune_command(
    checkpoint: Annotated[Path, typer.Argument(help="The base model (attrackt train).")],
    detections: _DetectionsFile,
    annotations: Annotated[Path, typer.Argument(help="Answers journal (JSON lines).")],
    out: Annotated[Path, typer.Option(help="Folder: adapters.pt, model.pt (merged), log.")],
    tracks: Annotated[
        Path | None, typer.Option(help="The solver's tracks folder (for pseudo-labels).")
    ] = None,
    associations: Annotated[
        Path | None, typer.Option(help="The model's associations (for pseudo-labels).")
    ] = None,
    full: _Full = False,
    rank: _Rank = 32,
    alpha: _Alpha = 32.0,
    dropout: _Dropout = 0.1,
    targets: _Targets = _TARGETS,
    pseudo_fraction: _PseudoFraction = 0.1,
    steps_per_cell: _StepsPerCell = 100,
    max_steps: _MaxSteps = None,
    minutes: _Minutes = None,
    lr: _Lr = 1e-4,
    batch_size: _Batch = 8,
    device: _Device = "auto",
    seed: _Seed = 0,
    resume: Annotated[bool, typer.Option(help="Continue a fine-tuning left in OUT.")] = True,
) -> None:
    """Fine-tune the association model on proof-reading answers (LoRA by default)."""
    from attrackt.data import Annotations, Associations, Tracks
    from attrackt.finetune import finetune_checkpoint, pseudo_labels
    from attrackt.link import LinkConfig

    with _reported():
        config = _finetune_config(
            full, rank, alpha, dropout, targets, pseudo_fraction, steps_per_cell, max_steps,
            minutes, lr, batch_size, device, seed,
        )  # fmt: skip
        dets = Detections.load(detections)
        answers = Annotations.load(annotations)
        pseudo = None
        if pseudo_fraction > 0:
            if tracks is None or associations is None:
                raise InputError(
                    "--pseudo-fraction", "pseudo-labels need --tracks and --associations (or 0)"
                )
            pseudo = pseudo_labels(
                dets, Tracks.load(tracks), Associations.load(associations), answers,
                pseudo_fraction, candidates=LinkConfig(),
            )  # fmt: skip
        result = finetune_checkpoint(
            checkpoint, dets, answers, config, out, pseudo=pseudo, resume=resume
        )
    logging.getLogger(__name__).info(
        "fine-tuned on %d answered and %d pseudo-labelled cells, %d steps -> %s",
        result.answered,
        result.pseudo,
        result.steps,
        out / "model.pt",
    )


@app.command("loop")
def loop_command(
    checkpoint: Annotated[Path, typer.Argument(help="The base model (attrackt train).")],
    data: Annotated[
        Path, typer.Argument(help="Store (.npz, with GT edges) or detections parquet (+ --gt).")
    ],
    out: Annotated[Path, typer.Option(help="Folder of the rounds (rounds.json, answers).")],
    gt: Annotated[
        Path | None, typer.Option(help="Ground-truth tracks folder (with a parquet).")
    ] = None,
    sequence: Annotated[str | None, typer.Option(help="The store's sequence to use.")] = None,
    associations: Annotated[
        Path | None, typer.Option(help="The base model's associations, if already predicted.")
    ] = None,
    budget: Annotated[str, typer.Option(help="Cumulative answered cells per round.")] = (
        "10,100,1000"
    ),
    strategy: Annotated[str, typer.Option(help="confidence, random or oracle.")] = "confidence",
    tta: Annotated[bool, typer.Option(help="Test-time augmentation when predicting.")] = True,
    learn_weights: Annotated[
        bool, typer.Option(help="Re-learn the linking weights from the answers each round.")
    ] = False,
    full: _Full = False,
    rank: _Rank = 32,
    alpha: _Alpha = 32.0,
    dropout: _Dropout = 0.1,
    targets: _Targets = _TARGETS,
    pseudo_fraction: _PseudoFraction = 0.1,
    steps_per_cell: _StepsPerCell = 100,
    max_steps: _MaxSteps = None,
    minutes: _Minutes = None,
    lr: _Lr = 1e-4,
    batch_size: _Batch = 8,
    device: _Device = "auto",
    seed: _Seed = 0,
) -> None:
    """Simulated proof-reading rounds: rank, answer from GT, fine-tune, predict, link, score."""
    from attrackt.data import Associations, Tracks
    from attrackt.evaluate import format_table
    from attrackt.link.learn import LearnConfig
    from attrackt.loop import LoopConfig, parse_budgets, simulate
    from attrackt.predict import PredictConfig

    with _reported():
        config = LoopConfig(
            budgets=parse_budgets(budget),
            strategy=strategy,  # type: ignore[arg-type]
            seed=seed,
            learn=LearnConfig() if learn_weights else None,
            finetune=_finetune_config(
                full,
                rank,
                alpha,
                dropout,
                targets,
                pseudo_fraction,
                steps_per_cell,
                max_steps,
                minutes,
                lr,
                batch_size,
                device,
                seed,
            ),  # fmt: skip
            predict=PredictConfig(tta=tta, device=device),
        )
        dets, edges = _training_data(data, sequence)
        if gt is not None:
            edges = Tracks.load(gt).edges
        if edges is None:
            raise InputError(data, "holds no ground-truth links; give --gt")
        records = simulate(
            checkpoint,
            dets,
            Tracks(dets, edges),
            config,
            out,
            Associations.load(associations) if associations is not None else None,
        )
    keys = ("answered", "AOGM", "division_f1", "fp_edges", "fn_edges", "ws_edges")
    typer.echo(format_table({f"round {r['round']}": {k: r[k] for k in keys} for r in records}))


# ---- plots ---------------------------------------------------------------------------------

plot_app = typer.Typer(
    help="Figures: tracking errors, lineage trees, learning and budget curves.",
    no_args_is_help=True,
)
app.add_typer(plot_app, name="plot")

_Result = Annotated[
    Path, typer.Argument(help="CTC result or GT folder, geff store or Tracks folder.")
]
_Figure = Annotated[Path, typer.Option("--out", "-o", help="Figure file to write (.png, ...).")]
_MatchDistance = Annotated[
    float | None,
    typer.Option(help="Match detections within this distance (px) when nothing else can."),
]


def _errors(pred_path: Path, gt_path: Path, match_distance: float | None):
    """Tracks of both results and their :class:`attrackt.plots.ErrorSet` (as in evaluate)."""
    from attrackt.evaluate import load_result
    from attrackt.plots import track_errors

    pred, pred_masks = load_result(pred_path)
    gt, gt_masks = load_result(gt_path)
    errors = track_errors(
        pred, gt, pred_masks=pred_masks, gt_masks=gt_masks, match_distance=match_distance
    )
    return pred, gt, errors


@plot_app.command("errors")
def plot_errors_command(
    pred: _Result,
    gt: _Result,
    out: _Figure,
    images: Annotated[
        Path | None, typer.Option(help="Movie to draw under the tracks: CTC folder, .tif, .npy.")
    ] = None,
    image_frame: Annotated[
        int | None, typer.Option(help="Frame of --images to draw (default: max over time).")
    ] = None,
    first_frame: Annotated[int | None, typer.Option(help="Draw links from this frame.")] = None,
    last_frame: Annotated[int | None, typer.Option(help="Draw links up to this frame.")] = None,
    sequence: Annotated[str | None, typer.Option(help="Sequence, when there are several.")] = None,
    match_distance: _MatchDistance = None,
) -> None:
    """Draw predicted and ground-truth links coloured by error class (TP, FP, FN, ...)."""
    from attrackt.plots import plot_track_errors

    with _reported():
        pred_tracks, gt_tracks, errors = _errors(pred, gt, match_distance)
        image = None
        if images is not None:
            movie = read_movie(images)
            if image_frame is None:
                image = np.asarray(movie).max(axis=0)
            elif not 0 <= image_frame < len(movie):
                raise InputError(images, f"has {len(movie)} frames, no frame {image_frame}")
            else:
                image = np.asarray(movie[image_frame])
        frames = None
        if first_frame is not None or last_frame is not None:
            frames = (
                first_frame if first_frame is not None else -(2**62),
                last_frame if last_frame is not None else 2**62,
            )
        plot_track_errors(
            pred_tracks,
            gt_tracks,
            errors=errors,
            image=image,
            frames=frames,
            sequence=sequence,
            out=out,
        )
    counts = errors.counts()
    typer.echo(
        f"{out}: {counts['tp_edges']} TP, {counts['fp_edges']} FP, {counts['fn_edges']} FN, "
        f"{counts['ws_edges']} WS links; {counts['fn_divisions']} missed and "
        f"{counts['fp_divisions']} spurious divisions"
    )


@plot_app.command("lineage")
def plot_lineage_command(
    tracks: _Result,
    out: _Figure,
    gt: Annotated[
        Path | None, typer.Option(help="Ground truth: mark the errors of TRACKS against it.")
    ] = None,
    max_trees: Annotated[
        int | None, typer.Option(help="Draw only this many lineages (the largest).")
    ] = None,
    match_distance: _MatchDistance = None,
) -> None:
    """Draw lineage trees (time downwards), with the errors against --gt marked."""
    from attrackt.evaluate import load_result
    from attrackt.plots import plot_lineage

    with _reported():
        if gt is None:
            lineages, errors = load_result(tracks)[0], None
        else:
            lineages, _, errors = _errors(tracks, gt, match_distance)
        plot_lineage(lineages, errors=errors, max_trees=max_trees, out=out)
    typer.echo(f"{out}: lineages of {len(lineages.detections)} detections")


@plot_app.command("curves")
def plot_curves_command(
    logs: Annotated[
        list[Path], typer.Argument(help="Training log.jsonl files (or their training folders).")
    ],
    out: _Figure,
    key: Annotated[
        list[str] | None,
        typer.Option(help="Logged value to draw, repeatable (default: loss, val_loss)."),
    ] = None,
    smoothing: Annotated[
        float, typer.Option(help="Exponential moving average weight in [0, 1).")
    ] = 0.0,
    log_y: Annotated[bool, typer.Option(help="Logarithmic y axis.")] = False,
) -> None:
    """Draw learning curves from training logs, one line per run and logged value."""
    from attrackt.plots import plot_learning_curves

    names = [p.parent.name if p.name == "log.jsonl" else p.stem for p in logs]
    if len(set(names)) < len(names):
        names = [str(p) for p in logs]
    with _reported():
        plot_learning_curves(
            dict(zip(names, logs, strict=True)),
            keys=tuple(key or ("loss", "val_loss")),
            smoothing=smoothing,
            log_y=log_y,
            out=out,
        )
    typer.echo(f"{out}: {len(logs)} run(s)")


@plot_app.command("budget")
def plot_budget_command(
    results: Annotated[
        Path,
        typer.Argument(help="JSON {strategy: {budget: value}}, e.g. bench/results/active.json."),
    ],
    out: _Figure,
    metric: Annotated[str, typer.Option(help="Metric name for the y axis.")] = "AOGM",
    reference: Annotated[
        list[str] | None, typer.Option(help="A horizontal line NAME=VALUE (repeat).")
    ] = None,
) -> None:
    """Draw a metric against the number of proof-read cells, one line per strategy."""
    import json
    import math

    from attrackt.plots import plot_budget_curves

    with _reported():
        try:
            data = json.loads(results.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(results, f"not a readable JSON file ({err})") from err
        if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
            raise InputError(results, "expected {strategy: {budget: value}}")
        lines = {}
        for item in reference or []:
            name, _, value = item.rpartition("=")
            try:
                lines[name] = float(value) if name else math.nan
            except ValueError:
                name = ""
            if not name:
                raise InputError("--reference", f"expected NAME=VALUE, got {item!r}")
        plot_budget_curves(data, metric=metric, reference=lines, out=out)
    typer.echo(f"{out}: {len(data)} strategies")


# ---- viewer --------------------------------------------------------------------------------


def napari_session_config(strategy: str, author: str, finetune_minutes: float | None):
    """The proof-reading session's settings from ``attrackt napari``'s options; fine-tuning
    takes the session's defaults for this machine (``default_finetune_config``)."""
    from attrackt.active import RankConfig
    from attrackt.napari.session import SessionConfig, default_finetune_config

    return SessionConfig(
        rank=RankConfig(strategy=strategy),  # type: ignore[arg-type]
        finetune=default_finetune_config(finetune_minutes),
        author=author,
    )


@app.command("napari")
def napari_command(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Project folder (attrackt run --project, or one with tracks/ inside), "
            "CTC dataset, sequence, TRA or RES folder, or geff store."
        ),
    ] = None,
    journal: Annotated[
        Path | None,
        typer.Option(help="Answers journal [PROJECT/answers.jsonl, else ./answers.jsonl]."),
    ] = None,
    sequence: Annotated[str | None, typer.Option(help="The sequence to proof-read.")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Base model to fine-tune [PROJECT/model/best.pt].")
    ] = None,
    images: Annotated[
        Path | None, typer.Option(help="Movie to show: CTC image folder, .tif or .npy.")
    ] = None,
    masks: Annotated[
        Path | None, typer.Option(help="Label masks to show: CTC folder, .tif or .npy.")
    ] = None,
    strategy: Annotated[str, typer.Option(help="Ranking: confidence or random.")] = "confidence",
    author: Annotated[str, typer.Option(help="Who answers (kept with each answer).")] = "",
    finetune_minutes: Annotated[
        float | None,
        typer.Option(help="Cap each fine-tuning at this many minutes [1 on a GPU, 5 on a CPU]."),
    ] = None,
) -> None:
    """Open napari with the data and the proof-reading widget."""
    try:
        import napari
    except ImportError as err:
        typer.echo("ERROR napari is not installed: pip install 'attrackt[napari]'", err=True)
        raise typer.Exit(1) from err
    from attrackt.napari.viewer import open_viewer

    with _reported():
        config = napari_session_config(strategy, author, finetune_minutes)
        open_viewer(
            path,
            journal=journal,
            sequence=sequence,
            checkpoint=checkpoint,
            images=read_movie(images) if images is not None else None,
            masks=read_movie(masks) if masks is not None else None,
            config=config,
        )
    napari.run()


# ---- the whole pipeline ------------------------------------------------------------------


def _report_pipeline(result) -> None:  # result: attrackt.pipeline.PipelineResult
    from attrackt.evaluate import format_table

    tracks = result.tracks
    typer.echo(
        f"{len(tracks.detections)} cells, {len(tracks.edges)} links, "
        f"{len(tracks.divisions())} divisions -> {result.project}"
    )
    typer.echo(f"proof-read first: {result.project / 'ranking.csv'} ({result.ranked_cells} cells)")
    for name, verdict in ((result.guard or {}).get("sequences") or {}).items():
        used = "used" if verdict["use"] else "NOT used: this movie is linked on position only"
        typer.echo(f"{name or 'movie'}: the learned associations are {used} ({verdict['reason']})")
    for name, scores in result.metrics.items():
        keys = ("AOGM", "TRA", "fp_edges", "fn_edges", "ws_edges", "division_f1")
        table = {v: {k: s[k] for k in keys} for v, s in scores.items()}
        typer.echo(f"\nsequence {name} against its ground truth:\n{format_table(table)}")
    report = result.project / "report.html"
    if report.is_file():
        typer.echo(f"\nreport: {report.resolve()}  (open it in a browser)")


@app.command("run")
def run_command(
    sources: Annotated[
        list[Path], typer.Argument(help="CTC sequence(s) or dataset, or one image folder/stack.")
    ],
    project: Annotated[Path, typer.Option(help="Project folder for every stage's output.")],
    masks: Annotated[
        Path | None,
        typer.Option(
            help="Instance segmentation of the single image source: a folder of label images "
            "(CTC mask000.tif, Cellpose NAME_masks.tif/.png, StarDist), a label stack (.tif, "
            ".npy) or a zarr array (store.zarr[/path/to/array])."
        ),
    ] = None,
    points: Annotated[
        Path | None,
        typer.Option(
            help="Without masks: a CSV or parquet table of cell positions (t, [z,] y, x in "
            "pixels; optional id, label or track_id) in the single image source."
        ),
    ] = None,
    gt_detections: Annotated[
        bool, typer.Option(help="Full cells: TRA markers painted over the silver truth.")
    ] = False,
    quick: Annotated[bool, typer.Option(help="Small models, short training (CPU).")] = False,
    train_minutes: Annotated[
        float | None, typer.Option(help="Train the association model for about this long.")
    ] = None,
    k: Annotated[int, typer.Option(help="Candidate parents per cell for linking.")] = 10,
    voxel_size: Annotated[
        str | None,
        typer.Option(help="Voxel size Z,Y,X (or Y,X), any unit, e.g. 2,1,1: planes 2 px apart."),
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    force: Annotated[bool, typer.Option(help="Run every stage again.")] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Say which stages would run, and why; run none.")
    ] = False,
) -> None:
    """The whole job: prepare, embed, train (no labels), predict, link, rank, export, evaluate.

    A stage runs again when its settings or inputs changed (answers added to the project's
    answers.jsonl run linking again), and so does every stage after it that reads its output;
    the others are reused. Stopped by Ctrl-C or SIGTERM, the same command goes on.
    """
    import dataclasses

    from attrackt.pipeline import PipelineConfig, plan_pipeline, run_pipeline

    with _reported():
        config = PipelineConfig.quick(seed, device) if quick else PipelineConfig()
        config.prepare = dataclasses.replace(config.prepare, gt_detections=gt_detections)
        config.link = dataclasses.replace(config.link, k=k)
        if not quick:
            config.embed.train.device = config.train.train.device = device
            config.predict = dataclasses.replace(config.predict, device=device)
            config.train.train.seed = config.embed.train.seed = seed
        if train_minutes is not None:
            config.train.minutes = train_minutes
        config = config.with_voxel_size(parse_voxel_size(voxel_size))
        if masks is not None and points is not None:
            raise InputError("--points", "give the cells either as --masks or as --points")
        if dry_run:
            plan = plan_pipeline(sources, project, config, masks=masks, points=points, force=force)
            for name, why in plan.items():
                typer.echo(f"{name}: {why}")
            typer.echo(f"{len(plan)} stage(s) to run" if plan else "every stage is current")
            return
        result = run_pipeline(sources, project, config, masks=masks, points=points, force=force)
    _report_pipeline(result)


@app.command("demo")
def demo_command(
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for the data and the project [attrackt/demo in the user cache]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the movie and the training.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")] = "auto",
) -> None:
    """Track a built-in synthetic movie (exact ground truth) end to end, in a few minutes."""
    from attrackt.pipeline import demo, demo_folder

    out = out if out is not None else demo_folder()
    typer.echo(f"attrackt demo: writing to {out}")
    with _reported():
        result = demo(out, seed=seed, device=device)
    _report_pipeline(result)
    typer.echo(f"\nnext: attrackt napari {result.project}  (proof-read the ranked cells)")
