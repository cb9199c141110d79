"""Seconds per pipeline stage, kept in ``PROJECT/stage_times.json`` (the report shows them).

The record maps a stage to ``{"seconds": float, "finished": ISO time}`` of its last run; a run
that reuses a stage's output keeps the entry of the run that made it.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from attrackt.io.atomic import atomic_write_text

TIMES_FILE = "stage_times.json"


def read_stage_times(project: str | Path) -> dict[str, dict]:
    """The stage times recorded in a project folder (``{}`` when none or unreadable)."""
    path = Path(project) / TIMES_FILE
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


class StageClock:
    """Times the stages of one run into ``project/stage_times.json``."""

    def __init__(self, project: str | Path) -> None:
        self.project = Path(project)
        self._running: str | None = None
        self._since = 0.0

    def lap(self, stage: str | None) -> None:
        """End the running stage (recording its seconds) and start ``stage`` (``None``: none)."""
        now = time.perf_counter()
        if self._running is not None:
            record = read_stage_times(self.project)
            record[self._running] = {
                "seconds": round(now - self._since, 3),
                "finished": datetime.now().astimezone().isoformat(timespec="seconds"),
            }
            atomic_write_text(self.project / TIMES_FILE, json.dumps(record, indent=1))
        self._running, self._since = stage, now
