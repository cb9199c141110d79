"""The command-line face of attrackt: one thin command per stage, plus the whole pipeline."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

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
    frames: Annotated[int, typer.Option(help="Frames per sequence.")] = 30,
    size: Annotated[int, typer.Option(help="Height and width of the field (px).")] = 256,
    ndim: Annotated[int, typer.Option(help="2 or 3 spatial dimensions.")] = 2,
    depth: Annotated[int, typer.Option(help="Z slices (3D only).")] = 32,
    density: Annotated[float, typer.Option(help="Cells per 100 x 100 px at the start.")] = 3.0,
    division_rate: Annotated[
        float, typer.Option(help="Division chance per cell and frame.")
    ] = 0.03,
    entry_rate: Annotated[
        float, typer.Option(help="Cells entering per frame and 100 px of border.")
    ] = 0.02,
    step: Annotated[float, typer.Option(help="Own motion per frame (px, std).")] = 1.5,
    drift: Annotated[float, typer.Option(help="Common drift (px per frame).")] = 0.5,
    radius: Annotated[float, typer.Option(help="Mean nucleus radius (px).")] = 7.0,
    noise: Annotated[float, typer.Option(help="Gaussian noise std (cells are ~0.4-1).")] = 0.05,
    sequences: Annotated[int, typer.Option(help="Sequences to write: 01, 02, ...")] = 1,
    seed: Annotated[int, typer.Option(help="Random seed (sequence i uses seed + i).")] = 0,
) -> None:
    """Write a synthetic movie with exact ground truth (images + 01_GT/TRA) in CTC layout."""
    from attrackt.errors import InputError
    from attrackt.synthetic import SyntheticConfig, generate

    if ndim not in (2, 3):
        raise typer.BadParameter("--ndim must be 2 or 3")
    shape = (size, size) if ndim == 2 else (depth, size, size)
    for i in range(sequences):
        try:
            config = SyntheticConfig(
                shape=shape,
                frames=frames,
                density=density,
                division_rate=division_rate,
                entry_rate=entry_rate,
                step=step,
                drift=drift,
                radius=radius,
                noise=noise,
                seed=seed + i,
            )
        except InputError as err:
            typer.echo(f"ERROR {err}", err=True)
            raise typer.Exit(1) from err
        movie = generate(config)
        folder = movie.write(out, f"{i + 1:02d}")
        table = movie.track_table
        typer.echo(
            f"{folder}: {frames} frames, {len(table)} tracks, "
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


# ---- features and embeddings -------------------------------------------------------------


# ---- association model: prepare, train, predict ------------------------------------------


# ---- proof-reading: rank, finetune, loop -------------------------------------------------


# ---- the whole pipeline ------------------------------------------------------------------
