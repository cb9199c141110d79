"""The command-line face of attrackt: one thin command per stage, plus the whole pipeline."""

from __future__ import annotations

import logging

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


# ---- evaluation --------------------------------------------------------------------------


# ---- linking -----------------------------------------------------------------------------


# ---- features and embeddings -------------------------------------------------------------


# ---- association model: prepare, train, predict ------------------------------------------


# ---- proof-reading: rank, finetune, loop -------------------------------------------------


# ---- the whole pipeline ------------------------------------------------------------------
