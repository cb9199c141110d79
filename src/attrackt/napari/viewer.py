"""Open napari on a project, a CTC folder or a geff store, with the proof-reading widget docked
(what ``attrackt napari`` does)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from attrackt.data import Annotations
from attrackt.errors import InputError
from attrackt.napari.layers import layer_scale, tracks_from_layer
from attrackt.napari.project import is_project, rounds_folder
from attrackt.napari.session import ProofreadSession, SessionConfig

logger = logging.getLogger(__name__)


def open_viewer(
    path: str | Path | None = None,
    *,
    journal: str | Path | None = None,
    sequence: str | None = None,
    checkpoint: str | Path | None = None,
    images: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    config: SessionConfig | None = None,
    show: bool = True,
) -> tuple[Any, Any]:
    """A napari viewer with the data of ``path`` and the proof-reading widget docked; returns
    ``(viewer, widget)``.

    ``path``: a project folder (``attrackt run``'s: see :mod:`attrackt.napari.session`; its
    movie and masks are shown where ``images`` and ``masks`` are not given), a CTC dataset,
    sequence, TRA or RES folder, or a geff store; ``None`` opens the widget alone. For CTC and
    geff input the answers go to ``journal`` (default ``./answers.jsonl``), the rounds to
    ``proofread/`` beside it, and the tracks layer of ``sequence`` (default: the first) is
    proof-read. ``images`` and ``masks`` are added as layers under the tracks.
    """
    import napari

    from attrackt.napari._reader import get_reader, read_layers
    from attrackt.napari._widget import ProofreadWidget

    session, layer = None, None
    layers = []
    if path is not None:
        path = Path(path)
        if is_project(path):
            session = ProofreadSession.open(
                path, sequence=sequence, journal=journal, checkpoint=checkpoint, config=config
            )
        elif get_reader(str(path)) is not None:
            layers = read_layers(str(path))
        else:
            raise InputError(path, "not a project, CTC folder or geff store")
    viewer = napari.Viewer(show=show)
    scale = None if session is None else layer_scale(session.detections)  # a project's
    if images is not None:
        viewer.add_image(np.asarray(images), name="image", scale=scale)
    if masks is not None:
        viewer.add_labels(np.asarray(masks), name="masks", opacity=0.4, scale=scale)
    added = [getattr(viewer, f"add_{kind}")(data, **kwargs) for data, kwargs, kind in layers]
    tracks = [a for a, (_, _, kind) in zip(added, layers, strict=True) if kind == "tracks"]
    if tracks:
        layer = _choose(tracks, sequence)
        journal = Path(journal) if journal is not None else Path.cwd() / "answers.jsonl"
        logger.info("answers go to %s", journal)
        found = tracks_from_layer(
            layer.data, layer.graph, layer.features, layer.metadata, sequence=layer.name
        )
        session = ProofreadSession(
            None,
            found,
            None,
            Annotations.load(journal),
            checkpoint=checkpoint,
            config=config,
            work_dir=rounds_folder(journal.parent, layer.name.removesuffix(" tracks")),
        )
    widget = ProofreadWidget(viewer, session, layer, config=config)
    viewer.window.add_dock_widget(widget, name="attrackt proof-reading", area="right")
    return viewer, widget


def _choose(layers: list[Any], sequence: str | None) -> Any:
    if sequence is None:
        return layers[0]
    hits = [a for a in layers if a.name.removesuffix(" tracks").endswith(sequence)]
    if len(hits) != 1:
        names = [a.name for a in layers]
        raise InputError("--sequence", f"{sequence!r} names none or several of {names}")
    return hits[0]
