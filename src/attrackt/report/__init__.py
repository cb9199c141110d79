"""``PROJECT/report.html``: one self-contained page about a run, for the person who ran it.

It holds, from what the project folder has:

- a summary: the cells and links found, where the movie and the cells came from;
- the guard's verdict on the learned associations (``guard.json``; left out without one);
- the scores: against the ground truth when there is one (``metrics.json``: attrackt and
  position-only linking); otherwise how far attrackt's links differ from position-only linking;
- per sequence, the error overlay (or the links that differ) over the movie and the lineages;
- the training curves of the auto-encoder and the association model;
- the cells to proof-read first (``ranking.csv``), each with its frame and the next;
- the run's settings (``config.json``) and the seconds each stage took (``stage_times.json``,
  and ``stages.json`` when present).

Figures are PNG data URIs; the page loads nothing else (no script, no network). A section
that cannot be drawn says why and the others are still written.

The page is put together here from :mod:`.project` (what the folder holds, read once),
:mod:`.sections` and :mod:`.proofread` (the sections) and :mod:`.markup` (the HTML pieces).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from attrackt.io.atomic import atomic_write_text
from attrackt.link.config import LinkConfig
from attrackt.report.markup import _CSS, _esc, _section, png_uri
from attrackt.report.project import GUARD_FILE, _Project
from attrackt.report.proofread import _proofread
from attrackt.report.sections import (
    SCORE_KEYS,
    SETTINGS,
    _guard,
    _scores,
    _sequences,
    _settings,
    _summary,
    _training,
)

__all__ = [
    "GUARD_FILE",
    "REPORT_FILE",
    "SCORE_KEYS",
    "SETTINGS",
    "build_report",
    "png_uri",
    "write_report",
]

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def build_report(project: str | Path, *, link: LinkConfig | None = None, top: int = 12) -> str:
    """The HTML of the report of the project folder ``project`` (see the module docstring).

    ``link``: the linking settings for the position-only comparison (default: those recorded
    in ``config.json``); ``top``: how many of the ranking's cells to show.
    """
    from attrackt import __version__

    p = _Project.read(Path(project), link)
    sections = [
        ("summary", "Summary", lambda: _summary(p)),
        ("guard", "Guard: are the learned associations used?", lambda: _guard(p)),
        ("scores", "Scores", lambda: _scores(p)),
        ("sequences", "Tracks", lambda: _sequences(p)),
        ("training", "Training", lambda: _training(p)),
        ("proofread", "Cells to proof-read first", lambda: _proofread(p, top)),
        ("settings", "Settings and times", lambda: _settings(p)),
    ]
    body = [_section(anchor, title, fn) for anchor, title, fn in sections]
    shown = [(a, t) for (a, t, _), b in zip(sections, body, strict=True) if b]
    nav = "".join(f'<a href="#{a}">{_esc(t.split(":")[0])}</a>' for a, t in shown)
    written = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>attrackt report: {_esc(p.root.resolve().name)}</title>"
        f"<style>{_CSS}</style></head><body>"
        f"<h1>attrackt report: {_esc(p.root.resolve().name)}</h1>"
        f'<p class="muted">written {written} by attrackt {_esc(__version__)}</p>'
        f"<nav>{nav}</nav>{''.join(body)}</body></html>\n"
    )


def write_report(project: str | Path, *, link: LinkConfig | None = None, top: int = 12) -> Path:
    """Write ``project/report.html`` (see :func:`build_report`) atomically; return its path."""
    path = Path(project) / REPORT_FILE
    atomic_write_text(path, build_report(project, link=link, top=top))
    logger.info("report: %s", path)
    return path
