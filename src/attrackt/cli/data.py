"""Data commands: validate, info, synth, features, prepare."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from attrackt.cli.common import (
    CTCPath,
    DetectionsFile,
    Masks,
    Movies,
    OutFile,
    SequenceOption,
    app,
    parse_sizes,
    read_movies,
    reported,
)
from attrackt.data import Detections
from attrackt.errors import InputError


@app.command()
def validate(path: CTCPath, sequence: SequenceOption = None) -> None:
    """Check CTC data; print each error and warning with its file. Exit code 1 on errors."""
    from attrackt.io.validate import validate_ctc

    report = validate_ctc(path, sequence)
    for issue in report.errors + report.warnings:
        typer.echo(str(issue))
    typer.echo(report.summary())
    raise typer.Exit(1 if report.errors else 0)


@app.command()
def info(path: CTCPath, sequence: SequenceOption = None) -> None:
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


@app.command("features")
def features_command(
    input: DetectionsFile,
    images: Movies,
    masks: Masks,
    out: OutFile,
) -> None:
    """Add shape and intensity features (area, intensity statistics, axes, ...) to detections."""
    from attrackt.features import regionprops_features

    with reported():
        detections = Detections.load(input)
        movies = read_movies(detections, images, "images")
        labels = read_movies(detections, masks, "masks")
        parts = [
            regionprops_features(movies[name], labels[name], part)
            for name, part in detections.by_sequence()
        ]
        result = Detections.concat(parts) if parts else detections
        result.save(out)
    logging.getLogger(__name__).info("wrote %d detections with features to %s", len(result), out)


@app.command("prepare")
def prepare_command(
    sources: Annotated[
        list[Path], typer.Argument(help="CTC dataset folders or sequences (DATASET/01, ...).")
    ],
    out: Annotated[Path, typer.Option(help="The store file to write (.npz).")],
    gt_detections: Annotated[
        bool, typer.Option(help="Full cells: TRA markers painted over the silver truth (ST).")
    ] = False,
    crop_size: Annotated[
        str | None, typer.Option(help="A fixed field of view of a crop (px): N or Y,X.")
    ] = None,
    crop_cells: Annotated[
        float, typer.Option(help="Field of view in typical cell diameters (without --crop-size).")
    ] = 2.5,
    crop_pixels: Annotated[str, typer.Option(help="Resolution of the stored crops.")] = "32",
    masks: Annotated[bool, typer.Option(help="Keep the label masks in the store.")] = False,
) -> None:
    """Turn CTC sequences into one compact store: detections, features, GT, crops [, masks]."""
    from attrackt.prepare import PrepareConfig, prepare

    with reported():
        if out.suffix != ".npz":
            raise InputError(out, "a store file must end in .npz")
        config = PrepareConfig(
            gt_detections=gt_detections,
            crop_size=None if crop_size is None else parse_sizes(crop_size, "--crop-size"),
            crop_cells=crop_cells,
            crop_pixels=parse_sizes(crop_pixels, "--crop-pixels"),
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
