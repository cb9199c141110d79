"""The whole job: run and demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attrackt.cli.common import app, reported
from attrackt.errors import InputError
from attrackt.link.config import LinkConfig
from attrackt.voxels import parse_voxel_size


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
            ".npy) or a zarr array (store.zarr or store.zarr/path/to/array)."
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
    quick: Annotated[
        bool, typer.Option(help="Small models, a few hundred training steps (the demo's).")
    ] = False,
    minutes: Annotated[
        float | None,
        typer.Option(help="About this long for the whole job [10 on a CPU, 15 on a GPU]."),
    ] = None,
    train_minutes: Annotated[
        float | None,
        typer.Option(help="Train both models for about this long in all (probes included)."),
    ] = None,
    k: Annotated[
        int, typer.Option(help="Candidate parents per cell for linking.")
    ] = LinkConfig().k,
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
    the others are reused. Stopped by Ctrl-C or SIGTERM, the same command goes on. Before it
    starts it says its plan for this machine (how long each model trains); the learned
    associations change the links only where the label-free guard passes them.
    """
    import dataclasses

    from attrackt.pipeline import PipelineConfig, plan_pipeline, run_pipeline
    from attrackt.plan import apply_plan, plan_run
    from attrackt.progress import JobProgress

    with reported():
        plan = None
        if quick:
            config = PipelineConfig.quick(seed, device)
        else:
            plan = plan_run(device, minutes, train_minutes)
            config = apply_plan(PipelineConfig(), plan, seed)
        config.prepare = dataclasses.replace(config.prepare, gt_detections=gt_detections)
        config.link = dataclasses.replace(config.link, k=k)
        config = config.with_voxel_size(parse_voxel_size(voxel_size))
        if masks is not None and points is not None:
            raise InputError("--points", "give the cells either as --masks or as --points")
        if dry_run:
            plan = plan_pipeline(sources, project, config, masks=masks, points=points, force=force)
            for name, why in plan.items():
                typer.echo(f"{name}: {why}")
            typer.echo(f"{len(plan)} stage(s) to run" if plan else "every stage is current")
            return
        if plan is not None:
            typer.echo(plan.describe())
        with JobProgress(60 * (plan.minutes if plan else 5), enabled=plan is not None) as bar:
            result = run_pipeline(
                sources, project, config, masks=masks, points=points, force=force, progress=bar
            )
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
    with reported():
        result = demo(out, seed=seed, device=device)
    _report_pipeline(result)
    typer.echo(f"\nnext: attrackt napari {result.project}  (proof-read the ranked cells)")
