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
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import html
import io
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attrackt.data import Tracks
from attrackt.io.atomic import atomic_write_text
from attrackt.link.config import LinkConfig
from attrackt.store import Store
from attrackt.timings import read_stage_times

logger = logging.getLogger(__name__)

REPORT_FILE = "report.html"
GUARD_FILE = "guard.json"
SCORE_KEYS = ("AOGM", "TRA", "DET", "LNK", "fp_edges", "fn_edges", "ws_edges", "division_f1")
SETTINGS = (  # (section, key) of config.json worth a line of their own
    ("prepare", "crop_size"),
    ("prepare", "crop_pixels"),
    ("prepare", "gt_detections"),
    ("prepare", "voxel_size"),
    ("embed", "train.steps"),
    ("train", "train.steps"),
    ("train", "minutes"),
    ("train", "train.device"),
    ("link", "k"),
    ("link", "solver"),
    ("link", "association_weight"),
    ("rank", "strategy"),
)
_VERDICT_CLASS = {"use": "good", "down-weighted": "warn", "off": "bad"}
_MAX_TREES = 30
_GREY = colormaps["gray"].with_extremes(bad="#dce6f0")  # beyond the image: pale blue

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


# --------------------------------------------------------------------------------------------
# HTML pieces
# --------------------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _number(value: Any) -> str:
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
    return f'<p class="note">{_esc(text)}</p>'


def png_uri(fig: Figure, dpi: int = 100) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(fig: Figure, caption: str, alt: str, dpi: int = 100) -> str:
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


# --------------------------------------------------------------------------------------------
# What the project holds
# --------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    """A JSON file's content, ``None`` when absent; an unreadable one raises ``ValueError``."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path.name} is not readable JSON ({err})") from err


def _recorded_link(config: dict | None) -> LinkConfig:
    """The linking settings recorded in ``config.json`` (defaults for what is missing)."""
    raw = (config or {}).get("link", {})
    known = {f.name for f in dataclasses.fields(LinkConfig)}
    return LinkConfig(**{k: v for k, v in raw.items() if k in known})


@dataclasses.dataclass
class _Project:
    """What a report is made of, read once from the project folder."""

    root: Path
    config: dict | None
    store: Store | None
    tracks: Tracks | None
    metrics: dict
    link: LinkConfig

    @classmethod
    def read(cls, root: Path, link: LinkConfig | None) -> _Project:
        config = _read_json(root / "config.json")
        store = Store.load(root / "store.npz") if (root / "store.npz").is_file() else None
        tracks = Tracks.load(root / "tracks") if (root / "tracks").is_dir() else None
        metrics = _read_json(root / "metrics.json") or {}
        return cls(root, config, store, tracks, metrics, link or _recorded_link(config))

    @functools.cached_property
    def movies(self) -> dict[str, np.ndarray]:
        """The movie of each sequence, read again from where ``prepare`` read it, if it can."""
        from attrackt.io.images import read_images

        out = {}
        for sequence, source in (self.store.meta.get("sources") or {}).items():
            if source.startswith("<"):  # an array in memory
                continue
            try:
                out[sequence] = read_images(source).array
            except Exception as err:  # moved, deleted or unreadable: the report goes on without
                logger.info("report: no images for %s (%s)", sequence, err)
        return out

    @functools.cached_property
    def ours(self) -> dict[str, Tracks]:
        """attrackt's tracks per sequence."""
        return dict(self.tracks.by_sequence()) if self.tracks is not None else {}

    @functools.cached_property
    def position(self) -> dict[str, Tracks]:
        """Tracks per sequence linked by position only (the same settings, no associations)."""
        from attrackt.link import link

        return dict(link(self.store.detections, None, None, self.link).tracks.by_sequence())


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------


def _summary(p: _Project) -> str:
    rows: list[tuple[str, Any]] = [("project", str(p.root.resolve()))]
    if p.store is not None:
        meta = p.store.meta
        for name, source in (meta.get("sources") or {}).items():
            rows.append((f"images of {name}", source))
        if "cells" in meta:  # a segmentation or points table
            cells = {"masks": "the segmentation (masks)", "points": "the points table"}
            rows.append(("cells from", cells.get(meta["cells"], meta["cells"])))
        else:
            over = " over the silver-truth segmentation" if meta.get("gt_detections") else ""
            rows.append(("cells from", f"the ground truth's tracking markers{over}"))
        shapes = p.store.detections.meta.get("image_shape", {})
        table = p.store.detections.table
        for name in p.store.sequences:
            masks = p.store.masks.get(name)
            frames = (
                len(masks)
                if masks is not None
                else table.loc[table["sequence"] == name, "t"].max() + 1
            )
            shape = " x ".join(map(str, shapes.get(name, [])))
            rows.append((f"sequence {name}", f"{frames} frames of {shape} pixels"))
    if p.tracks is not None:
        t = p.tracks
        rows += [
            ("cells (detections)", len(t.detections)),
            ("links", len(t.edges)),
            ("divisions", len(t.divisions())),
        ]
    return _table(None, rows)


def _guard(p: _Project) -> str:
    guard = _read_json(p.root / GUARD_FILE)
    if guard is None:
        return ""
    verdict = str(guard.get("verdict", "?"))
    weight = guard.get("association_weight")
    lines = [
        f'<p>Verdict: <span class="verdict {_VERDICT_CLASS.get(verdict, "warn")}">'
        f"{_esc(verdict)}</span>"
        + ("" if weight is None else f" &nbsp; association weight {_number(float(weight))}")
        + "</p>",
        "<p>The guard checks, without labels, whether the learned associations help the "
        "linking; it decides how much weight they get.</p>",
    ]
    if guard.get("reason"):
        lines.append(f"<p>Reason: {_esc(guard['reason'])}</p>")
    criterion = guard.get("criterion") or {}
    if criterion:
        lines.append(_table(("criterion", "value"), sorted(criterion.items())))
    return "".join(lines)


def _scores(p: _Project) -> str:
    if p.metrics:
        out = [
            "<p>Scores against the ground truth: attrackt's links and those of linking by "
            "position only (no learned associations). AOGM counts errors (lower is better); "
            "TRA, DET, LNK and division F1 lie between 0 and 1 (higher is better).</p>"
        ]
        for name, by_method in p.metrics.items():
            keys = [k for k in SCORE_KEYS if any(k in s for s in by_method.values())]
            rows = [(m, *(s.get(k, np.nan) for k in keys)) for m, s in by_method.items()]
            out.append(f"<h3>{_esc(name)}</h3>" + _table(("linking", *keys), rows))
        return "".join(out)
    if p.tracks is None or p.store is None:
        return _note("No tracks yet: the run stopped before linking.")
    out = [
        _note(
            "No ground truth: these figures compare attrackt's links with linking by position "
            "only. They show where the learned associations changed the result, not which "
            "result is right; proof-read the cells below to find out."
        )
    ]
    rows = []
    for name, ours in p.ours.items():
        position = p.position[name]
        same, only_ours, only_position = _link_sets(ours, position)
        rows.append(
            (
                name,
                len(ours.edges),
                len(position.edges),
                len(same),
                len(only_ours),
                len(only_position),
                len(ours.divisions()),
                len(position.divisions()),
            )
        )
    header = (
        "sequence",
        "attrackt links",
        "position-only links",
        "shared",
        "attrackt only",
        "position only",
        "attrackt divisions",
        "position-only divisions",
    )
    return "".join(out) + _table(header, rows)


def _link_sets(a: Tracks, b: Tracks) -> tuple[set, set, set]:
    """The links (id pairs) in both, only in ``a``, only in ``b``."""
    sa, sb = set(map(tuple, a.edges.tolist())), set(map(tuple, b.edges.tolist()))
    return sa & sb, sa - sb, sb - sa


def _agreement_figure(ours: Tracks, position: Tracks, image: np.ndarray | None) -> Figure:
    """attrackt's links over the image: shared grey, attrackt's own red, position-only's blue."""
    nodes = pd.concat([ours.detections.table, position.detections.table]).drop_duplicates("id")
    xy = nodes.set_index("id")[["x", "y"]]
    shared, only_ours, only_position = _link_sets(ours, position)
    fig = Figure(figsize=(7, 7), layout="constrained")
    ax = fig.add_subplot()
    if image is not None:
        ax.imshow(image, cmap="gray", interpolation="nearest")
    styles = (
        (shared, "0.6", "solid", 0.8, "links both make"),
        (only_ours, "tab:red", "solid", 1.8, "links only attrackt makes"),
        (only_position, "tab:blue", "dashed", 1.6, "links only position-only linking makes"),
    )
    handles = []
    for pairs, colour, style, width, text in styles:
        ids = np.asarray(sorted(pairs), np.int64).reshape(-1, 2)
        segments = np.stack([xy.loc[ids[:, 0]].to_numpy(), xy.loc[ids[:, 1]].to_numpy()], 1)
        ax.add_collection(LineCollection(segments, colors=colour, linestyles=style, lw=width))
        handles.append(
            Line2D([], [], color=colour, ls=style, lw=width, label=f"{text} ({len(ids)})")
        )
    if image is None:
        ax.autoscale_view()
        ax.set_aspect("equal")
        ax.invert_yaxis()
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")
    ax.legend(handles=handles, loc="upper right", fontsize="small", framealpha=0.8)
    return fig


def _projection(movie: np.ndarray | None) -> np.ndarray | None:
    """The movie's maximum over time (and z): the background of the overlays."""
    return None if movie is None else np.asarray(movie).max(axis=tuple(range(movie.ndim - 2)))


def _sequences(p: _Project) -> str:
    from attrackt.plots import plot_lineage, plot_track_errors, track_errors

    if p.tracks is None or p.store is None:
        return ""
    parts = []
    ours = p.ours
    for name in ours:
        image = _projection(p.movies.get(name))
        gt = p.store.tracks.get(name)
        figures = [f"<h3>{_esc(name)}</h3>"]
        if gt is not None:
            errors = track_errors(ours[name], gt)
            overlay = plot_track_errors(ours[name], gt, errors=errors, image=image)
            lineage = plot_lineage(ours[name], errors=errors, max_trees=_MAX_TREES)
            what = "Errors against the ground truth"
        else:
            overlay = _agreement_figure(ours[name], p.position[name], image)
            lineage = plot_lineage(ours[name], max_trees=_MAX_TREES)
            what = "Where attrackt's links differ from position-only linking"
        over = " over the movie's maximum projection" if image is not None else ""
        figures.append(_figure(overlay, f"{what}{over}.", "overlay"))
        figures.append(
            _figure(
                lineage,
                f"attrackt's lineages (the {_MAX_TREES} largest), time downwards"
                + ("; errors in colour." if gt is not None else "."),
                "lineage",
            )
        )
        parts.append("".join(figures))
    return "".join(parts)


def _training(p: _Project) -> str:
    from attrackt.plots import plot_learning_curves

    logs = {
        "auto-encoder (cell appearance)": p.root / "autoencoder" / "log.jsonl",
        "association model": p.root / "model" / "log.jsonl",
    }
    logs = {name: path for name, path in logs.items() if path.is_file()}
    if not logs:
        return ""
    fig = Figure(figsize=(4.5 * len(logs), 3.2), layout="constrained")
    for ax, (name, path) in zip(
        np.atleast_1d(fig.subplots(1, len(logs))), logs.items(), strict=True
    ):
        plot_learning_curves({name: path}, keys=("loss", "val_loss"), ax=ax)
        ax.set_title(name, fontsize="medium")
    return _figure(fig, "Training: the loss per step (val_loss: on held-out frames).", "training")


# ---- cells to proof-read -------------------------------------------------------------------


def _window(frame: np.ndarray, centre: np.ndarray, half: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``2 half + 1`` square around ``centre`` of a 2D frame (3D: the slice at the centre's
    z) as float32, NaN beyond the frame's border; and the window's corner in the frame."""
    if frame.ndim == 3:
        z = int(np.clip(round(centre[0]), 0, frame.shape[0] - 1))
        frame, centre = frame[z], centre[1:]
    lo = np.round(centre).astype(int) - half
    a, b = np.maximum(lo, 0), np.minimum(lo + 2 * half + 1, frame.shape)
    out = np.full((2 * half + 1, 2 * half + 1), np.nan, np.float32)
    out[a[0] - lo[0] : b[0] - lo[0], a[1] - lo[1] : b[1] - lo[1]] = frame[a[0] : b[0], a[1] : b[1]]
    return out, lo


def _thumbnail(
    movie: np.ndarray,
    masks: np.ndarray | None,
    cell: pd.Series,
    axes: Sequence[str],
    children: dict[str, list[np.ndarray]],
    half: int,
) -> Figure:
    """Frame t and t+1 around a cell: its outline and position, its children's positions."""
    t = int(cell["t"])
    centre = cell[list(axes)].to_numpy(float)
    fig = Figure(figsize=(3.2, 1.7), layout="constrained")
    panels = fig.subplots(1, 2)
    for ax, dt in zip(panels, (0, 1), strict=True):
        ax.set_axis_off()
        if t + dt >= len(movie):
            continue
        crop, corner = _window(np.asarray(movie[t + dt]), centre, half)
        lo, hi = np.nanpercentile(crop, [1, 99.8])
        ax.imshow(crop, cmap=_GREY, vmin=lo, vmax=max(hi, lo + 1e-9), interpolation="nearest")
        if masks is not None and dt == 0:
            own = _window(np.asarray(masks[t]), centre, half)[0] == cell["label"]
            if own.any():
                ax.contour(own, levels=[0.5], colors="yellow", linewidths=0.8)
        points = [(centre, "yellow", "+")] if dt == 0 else []
        if dt == 1:
            points += [(c, "cyan", "o") for c in children["solver"]]
            points += [(c, "magenta", "x") for c in children["model"]]
        for position, colour, marker in points:  # beyond the window: on its border
            y, x = np.clip(position[-2:] - corner, 0, 2 * half)
            ax.plot(x, y, marker=marker, color=colour, mfc="none", ms=5, mew=1)
        ax.set_xlim(-0.5, 2 * half + 0.5)
        ax.set_ylim(2 * half + 0.5, -0.5)
        ax.set_title(f"t={t + dt}", fontsize=7, pad=2)
    return fig


def _stored_crops(store: Store, ids: list[int]) -> Figure:
    """The store's crops of a cell and its first child, each centred on its cell (the
    movie itself is gone)."""
    rows = store.detections.rows_of(ids)
    fig = Figure(figsize=(3.2, 1.7), layout="constrained")
    for ax, row in zip(fig.subplots(1, 2), rows, strict=False):
        crop = store.crops[row]
        ax.imshow(crop if crop.ndim == 2 else crop.max(axis=0), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"t={store.detections.times[row]} (stored crop)", fontsize=7, pad=2)
    for ax in fig.axes:
        ax.set_axis_off()
    return fig


def _ids(text: Any) -> list[int]:
    if isinstance(text, (list, tuple, np.ndarray)):
        return [int(v) for v in text]
    return [int(v) for v in str(text).split(";") if v.strip()]


def _at(table: pd.DataFrame, ids: list[int], axes: Sequence[str]) -> list[np.ndarray]:
    """The positions of the detections ``ids`` (``table`` indexed by id) that it holds."""
    return [table.loc[i, list(axes)].to_numpy(float) for i in ids if i in table.index]


def _proofread(p: _Project, top: int) -> str:
    from attrackt.active import load_ranking

    path = p.root / "ranking.csv"
    if not path.is_file() or p.store is None:
        return ""
    ranking = load_ranking(path).head(top)
    if not len(ranking):
        return _note("No cell is left to proof-read.")
    detections = p.store.detections
    axes = detections.spatial_axes
    table = detections.table.set_index("id")
    size = p.store.meta.get("crop_size") or [32] * len(axes)
    half = int(max(size[-2:]))  # twice the crop's field of view: room for the next frame's moves
    rows = []
    for _, cell in ranking.iterrows():
        solver, model = _ids(cell["solver_children"]), _ids(cell["model_children"])
        movie = p.movies.get(cell["sequence"])
        if movie is not None:
            children = {"solver": _at(table, solver, axes), "model": _at(table, model[:1], axes)}
            masks = p.store.masks.get(cell["sequence"])
            fig = _thumbnail(movie, masks, table.loc[int(cell["id"])], axes, children, half)
        elif p.store.crops is not None:
            fig = _stored_crops(p.store, [int(cell["id"]), *solver[:1]])
        else:
            fig = None
        picture = "(no images)" if fig is None else _Html(f'<img src="{png_uri(fig)}" alt="cell">')
        where = ", ".join(f"{a}={float(cell[a]):.0f}" for a in axes)
        rows.append(
            (
                int(cell["rank"]),
                int(cell["id"]),
                f"t={int(cell['t'])}, {where}",
                float(cell["score"]),
                " ".join(map(str, solver)) or "none",
                " ".join(map(str, model)) or "none",
                picture,
            )
        )
    intro = (
        f"<p>The {len(ranking)} cells where the learned associations and the linking disagree "
        "most: check them first (in napari: <code>attrackt napari "
        f"{_esc(p.root)}</code>). Each picture shows the cell in its frame (yellow: its outline "
        "or position) and the next frame (cyan circles: the children the linking gave it; "
        "magenta cross: the model's most likely child; on the border when it lies beyond).</p>"
    )
    header = ("rank", "cell id", "where", "score", "linked to", "model's choices", "t and t+1")
    return intro + _table(header, rows, "thumbs")


# ---- settings and times --------------------------------------------------------------------


def _lookup(config: dict, section: str, key: str) -> Any:
    value: Any = config.get(section, {})
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _seconds(value: float) -> str:
    minutes, seconds = divmod(float(value), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{int(hours)} h {int(minutes)} min"
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _settings(p: _Project) -> str:
    out = []
    times = read_stage_times(p.root)
    if times:
        rows = [(s, _seconds(r.get("seconds", 0)), r.get("finished", "")) for s, r in times.items()]
        total = sum(float(r.get("seconds", 0)) for r in times.values())
        rows.append(("total", _seconds(total), ""))
        out.append("<h3>Times</h3>" + _table(("stage", "took", "finished"), rows))
    else:
        out.append(_note("No stage times were recorded."))
    stages = _read_json(p.root / "stages.json")
    if stages is not None:
        out.append(
            "<details><summary>stages.json (what each stage's output was made from)</summary>"
            f"<pre>{_esc(json.dumps(stages, indent=1))}</pre></details>"
        )
    if p.config:
        rows = [
            (f"{section}.{key}", _lookup(p.config, section, key))
            for section, key in SETTINGS
            if _lookup(p.config, section, key) is not None
        ]
        out.append("<h3>Settings</h3>" + _table(("setting", "value"), rows))
        out.append(
            "<details><summary>config.json (every setting of the run)</summary>"
            f"<pre>{_esc(json.dumps(p.config, indent=1))}</pre></details>"
        )
    return "".join(out)


# --------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------


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
