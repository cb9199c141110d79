"""CTC track tables: one row ``label start end parent`` per track; a track's label is in its
masks in every frame from ``start`` to ``end``. Parsing with issues (:func:`parse_track_table`),
reading that raises (:func:`read_track_table`) and the text written (:func:`format_track_table`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from attrackt.io.checks import Issue, error, raise_on_errors

TRACK_COLUMNS = ("label", "start", "end", "parent")


def parse_track_table(path: str | Path) -> tuple[pd.DataFrame | None, list[Issue]]:
    """Read a CTC track table; malformed rows are skipped, each reported as an error."""
    path = Path(path)
    if not path.is_file():
        return None, [error(path, "missing track table")]
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        return None, [error(path, f"unreadable track table ({err})")]
    rows, issues = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            values = [int(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4 or min(values) < 0:
            issues.append(
                error(
                    path,
                    f"line {number}: expected 4 integers >= 0 'label start end parent', "
                    f"got {line.strip()!r}",
                )
            )
            continue
        rows.append(values)
    table = pd.DataFrame(np.asarray(rows, np.int64).reshape(-1, 4), columns=list(TRACK_COLUMNS))
    return table, issues


def read_track_table(path: str | Path) -> pd.DataFrame:
    """Read a CTC track table (``label start end parent`` per line); raises on a bad row."""
    table, issues = parse_track_table(path)
    raise_on_errors(issues)
    return table


def format_track_table(table: pd.DataFrame) -> str:
    """The table as a CTC track file's text, one line per track."""
    rows = table[list(TRACK_COLUMNS)].to_numpy(np.int64)
    return "".join(f"{a} {b} {c} {d}\n" for a, b, c, d in rows.tolist())
