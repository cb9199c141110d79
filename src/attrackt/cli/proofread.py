"""Proof-reading commands: rank, answers, loop, napari."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from attrackt.active import RankConfig
from attrackt.cli.common import (
    DetectionsFile,
    DeviceOption,
    Journal,
    SeedOption,
    TracksFolder,
    app,
    reported,
    training_data,
)
from attrackt.cli.learn import FinetuneOptions, with_finetune_options
from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.io.tiff import read_movie
from attrackt.link.config import LinkConfig

#: every option's default is the configuration's (no value written twice)
RANK = RankConfig()


@app.command("rank")
def rank_command(
    detections: DetectionsFile,
    tracks: TracksFolder,
    out: Annotated[Path, typer.Option(help="Ranking to write (.csv or .json).")],
    associations: Annotated[
        Path | None, typer.Option(help="The model's associations parquet (confidence).")
    ] = None,
    strategy: Annotated[str, typer.Option(help="confidence, random or oracle (needs --gt).")] = (
        RANK.strategy
    ),
    gt: Annotated[Path | None, typer.Option(help="Ground-truth tracks folder (oracle).")] = None,
    annotations: Annotated[
        Path | None, typer.Option(help="Answers journal: answered cells are left out.")
    ] = None,
    top: Annotated[int | None, typer.Option(help="Keep only the N most ambiguous cells.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of random scores and tie-breaking.")] = RANK.seed,
    k: Annotated[
        int,
        typer.Option(
            help="The k the tracks were linked with: confidence counts the association mass on "
            "those candidate links only (0: all mass)."
        ),
    ] = LinkConfig().k,
    guard: Annotated[
        bool,
        typer.Option(
            help="Whether the tracks were linked with the label-free guard: confidence then "
            "counts only the associations it let in (as `attrackt link --guard` did)."
        ),
    ] = LinkConfig().guard,
) -> None:
    """Rank cells for proof-reading, most ambiguous first, with the solver's and model's links."""
    from attrackt.active import RankConfig, rank_cells, save_ranking, select
    from attrackt.data import Annotations, Associations, Tracks
    from attrackt.link import LinkConfig

    with reported():
        config = RankConfig(strategy=strategy, seed=seed)  # type: ignore[arg-type]
        ranking = rank_cells(
            Detections.load(detections),
            Tracks.load(tracks),
            Associations.load(associations) if associations is not None else None,
            config,
            gt=Tracks.load(gt) if gt is not None else None,
            annotations=Annotations.load(annotations) if annotations is not None else None,
            candidates=LinkConfig(k=k, guard=guard) if k > 0 else None,
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
    journal: Journal,
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

    with reported():
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


@app.command("loop")
@with_finetune_options
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
    *,
    tuning: FinetuneOptions,
    device: DeviceOption = "auto",
    seed: SeedOption = 0,
) -> None:
    """Simulated proof-reading rounds: rank, answer from GT, fine-tune, predict, link, score."""
    from attrackt.data import Associations, Tracks
    from attrackt.evaluate import format_table
    from attrackt.link.learn import LearnConfig
    from attrackt.loop import LoopConfig, parse_budgets, simulate
    from attrackt.predict import PredictConfig

    with reported():
        config = LoopConfig(
            budgets=parse_budgets(budget),
            strategy=strategy,  # type: ignore[arg-type]
            seed=seed,
            learn=LearnConfig() if learn_weights else None,
            finetune=tuning.config(device, seed),
            predict=PredictConfig(tta=tta, device=device),
        )
        dets, edges = training_data(data, sequence)
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


def napari_session_config(strategy: str, author: str, finetune_minutes: float | None):
    """The proof-reading session's settings from ``attrackt napari``'s options; fine-tuning
    takes the session's defaults for this machine (``default_finetune_config``)."""
    from attrackt.active import RankConfig
    from attrackt.napari.session_config import SessionConfig, default_finetune_config

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

    with reported():
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
