"""Figures: plot errors, lineage, curves, budget."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from attrackt.cli.common import app, reported
from attrackt.errors import InputError
from attrackt.io.tiff import read_movie

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

    with reported():
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

    with reported():
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
    with reported():
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

    with reported():
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
