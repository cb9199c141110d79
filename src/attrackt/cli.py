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


# ---- evaluation --------------------------------------------------------------------------


# ---- linking -----------------------------------------------------------------------------


# ---- features and embeddings -------------------------------------------------------------


# ---- association model: prepare, train, predict ------------------------------------------


# ---- proof-reading: rank, finetune, loop -------------------------------------------------


# ---- the whole pipeline ------------------------------------------------------------------
