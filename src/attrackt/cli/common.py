"""The command line's app, its shared options and helpers."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.interrupt import TrainingInterrupted
from attrackt.io.tiff import read_movie

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


CTCPath = Annotated[
    Path, typer.Argument(help="A CTC dataset folder, a sequence, or a TRA/RES folder.")
]


SequenceOption = Annotated[
    str | None,
    typer.Option("--sequence", "-s", help="Sequence name, e.g. 01."),
]


DetectionsFile = Annotated[Path, typer.Argument(help="Detections parquet file.")]


OutFile = Annotated[Path, typer.Option(help="Detections parquet to write.")]


Movies = Annotated[
    list[Path], typer.Option(help="Movie per sequence (in table order): CTC folder, .tif, .npy.")
]


Masks = Annotated[list[Path], typer.Option(help="Label masks per sequence: CTC folder, ...")]


def read_movies(detections: Detections, paths: list[Path], what: str) -> dict[str, np.ndarray]:
    """One movie per sequence of ``detections``, given in the order of its sequences."""
    names = detections.sequences
    if len(paths) != len(names):
        raise InputError(
            f"--{what}", f"give one per sequence ({len(names)}: {names}), got {len(paths)}"
        )
    return {name: read_movie(p) for name, p in zip(names, paths, strict=True)}


STARTING_OVER = ("--force", "--no-resume")


@contextlib.contextmanager
def reported() -> Iterator[None]:
    """Turn an :class:`InputError` into one line on stderr and exit code 1; training stopped by
    a signal into one line on how to go on and exit code 130 (SIGINT) or 143 (SIGTERM)."""
    try:
        yield
    except InputError as err:
        typer.echo(f"ERROR {err}", err=True)
        raise typer.Exit(1) from err
    except TrainingInterrupted as err:
        again = shlex.join(["attrackt", *(a for a in sys.argv[1:] if a not in STARTING_OVER)])
        typer.echo(f"STOPPED {err.summary}; to go on from there, run: {again}", err=True)
        raise typer.Exit(err.exit_code) from err


def parse_crop_size(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise InputError("--crop-size", f"expected N or Z,Y,X integers, got {text!r}") from err


StoreOrDetections = Annotated[
    Path,
    typer.Argument(help="A store (.npz) from `attrackt prepare`, or a detections parquet file."),
]


SequencesOption = Annotated[
    str | None,
    typer.Option(help="Sequences to use, comma-separated names or suffixes (e.g. 01,02) [all]."),
]


def parse_sizes(text: str, option: str) -> int | tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise InputError(option, f"expected N or Z,Y,X integers, got {text!r}") from err
    return values[0] if len(values) == 1 else values


def training_data(path: Path, sequences: str | None) -> tuple[Detections, np.ndarray | None]:
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


TracksFolder = Annotated[Path, typer.Argument(help="Tracks folder (attrackt link --out).")]


Journal = Annotated[Path, typer.Argument(help="Answers journal (JSON lines).")]


DeviceOption = Annotated[str, typer.Option(help="auto, cpu, cuda or mps.")]


SeedOption = Annotated[int, typer.Option(help="Random seed.")]
