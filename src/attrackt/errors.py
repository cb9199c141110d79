"""Errors a user can act on: each names the file (or object) and the problem."""

from __future__ import annotations

from pathlib import Path


class AttracktError(Exception):
    """Base class of every error attrackt raises on purpose."""


class InputError(AttracktError, ValueError):
    """Bad input data: the message names the file and what is wrong with it."""

    def __init__(self, source: str | Path | None, problem: str) -> None:
        self.source = None if source is None else str(source)
        self.problem = problem
        super().__init__(problem if source is None else f"{source}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str | None, str]]:
        # rebuilt from both arguments (an error raised in a worker process reaches the parent)
        return type(self), (self.source, self.problem)


class SolverError(AttracktError, RuntimeError):
    """The linking solver failed or stopped without a usable solution."""
