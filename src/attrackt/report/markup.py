"""The report's HTML building blocks: escaped text, tables, notes, figures as PNG data URIs,
sections that fail alone, and the page's style sheet."""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222;
       max-width: 1100px; margin: 0 auto; padding: 1em 1.5em 4em; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; }
nav a { margin-right: 1em; } .muted { color: #666; }
table { border-collapse: collapse; margin: 0.6em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.8em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 0.9em; }
.verdict { display: inline-block; padding: 0.15em 0.7em; border-radius: 0.8em; font-weight: 600; }
.good { background: #d8f0d8; } .warn { background: #fbe8c0; } .bad { background: #f6d0d0; }
.note { background: #f6f6f6; border-left: 4px solid #bbb; padding: 0.4em 0.8em; }
.thumbs td img { display: block; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
"""


def _esc(value: Any) -> str:
    """Any value as HTML text (quotes escaped too)."""
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
    """A number with 4 significant digits (``–`` when not finite); anything else escaped."""
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}" if np.isfinite(value) else "–"
    return _esc(value)


class _Html(str):
    """Text that is HTML already (not escaped again)."""


def _table(header: Sequence[str] | None, rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """An HTML table: numbers right-aligned, :class:`_Html` cells as they are."""

    def cell(value: Any) -> str:
        if isinstance(value, _Html):
            return f"<td>{value}</td>"
        numeric = isinstance(value, (int, float, np.integer, np.floating))
        return f'<td class="num">{_number(value)}</td>' if numeric else f"<td>{_esc(value)}</td>"

    head = "<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>" for row in rows)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}>{head}{body}</table>"


def _note(text: str) -> str:
    """A grey note paragraph."""
    return f'<p class="note">{_esc(text)}</p>'


def png_uri(fig: Figure, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(fig: Figure, caption: str, alt: str, dpi: int = 100) -> str:
    """A ``<figure>``: the figure inlined as PNG, with its caption."""
    return (
        f'<figure><img src="{png_uri(fig, dpi)}" alt="{_esc(alt)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _section(anchor: str, title: str, body: Callable[[], str]) -> str:
    """A ``<section>``; a body that fails becomes a note (the rest of the report goes on)."""
    try:
        content = body()
    except Exception as err:  # a figure or file that breaks one section must not lose the page
        logger.warning("report: the section %r could not be drawn", title, exc_info=True)
        content = _note(f"This section could not be drawn: {type(err).__name__}: {err}")
    if not content:
        return ""
    return f'<section id="{anchor}"><h2>{_esc(title)}</h2>{content}</section>'
