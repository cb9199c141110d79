"""The report's sections from a project: summary, guard verdict, scores, tracks per sequence,
training curves, settings and times (the cells to proof-read: :mod:`.proofread`)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from attrackt.data import Tracks
from attrackt.report.markup import _esc, _figure, _note, _number, _table
from attrackt.report.project import GUARD_FILE, _Project, _read_json
from attrackt.timings import read_stage_times

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


def _summary(p: _Project) -> str:
    """Where the movie and the cells came from; the cells, links and divisions found."""
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
    """The guard's verdict (``guard.json``); empty without one."""
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
    """Scores against the ground truth, or else attrackt's links against position-only ones."""
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
    """Per sequence, the error (or difference) overlay and the lineages."""
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
    """The loss curves of the auto-encoder and the association model."""
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


def _lookup(config: dict, section: str, key: str) -> Any:
    """``config[section]`` followed along the dotted ``key``; ``None`` where it ends."""
    value: Any = config.get(section, {})
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _seconds(value: float) -> str:
    """A duration in words: ``1 h 2 min``, ``3 min 4 s`` or ``5.6 s``."""
    minutes, seconds = divmod(float(value), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{int(hours)} h {int(minutes)} min"
    return f"{int(minutes)} min {seconds:.0f} s" if minutes else f"{seconds:.1f} s"


def _settings(p: _Project) -> str:
    """The stage times, ``stages.json``, the main settings and ``config.json``."""
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
