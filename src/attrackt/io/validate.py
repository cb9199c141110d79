"""``attrackt validate``: every problem of a CTC dataset or sequence, each naming its file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from attrackt.io.checks import ERROR, WARNING, Issue
from attrackt.io.ctc import inspect_ctc


@dataclass
class ValidationReport:
    """The errors (data that cannot be used) and warnings (usable, but worth a look) found."""

    path: Path
    issues: list[Issue] = field(default_factory=list)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.level == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.level == WARNING]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    def summary(self) -> str:
        verdict = "valid" if self.ok else "INVALID"
        return f"{self.path}: {verdict}, {len(self.errors)} errors, {len(self.warnings)} warnings"


def validate_ctc(path: str | Path, sequence: str | None = None) -> ValidationReport:
    """Check a CTC dataset folder (all its sequences), one sequence, or a TRA/RES folder.

    Errors: a missing frame (a gap in the numbering, or no mask for an image frame), images and
    masks of different shapes or counts, non-integer masks, a track table row that disagrees
    with the masks (a track absent from a frame of its span, a label outside its span or without
    a row, a parent that does not exist, a malformed row), an unreadable TIFF, NaN in an image.
    Warnings: an empty frame, a label in disconnected pieces. The CTC readers run the same
    checks and raise the first error as an :class:`~attrackt.errors.InputError`.
    """
    return ValidationReport(Path(path), inspect_ctc(path, sequence))
