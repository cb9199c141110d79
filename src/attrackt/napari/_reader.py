"""The napari reader: projects (``attrackt run``'s folder: movie, masks and the current tracks,
which the proof-reading widget opens as the project), CTC folders (image, tracked labels and
tracks layers) and geff stores (tracks layers). napari itself is not imported here."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from attrackt.errors import InputError
from attrackt.napari.layers import LayerTuple, layer_scale, tracks_layer
from attrackt.napari.project import is_project


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], list[LayerTuple]] | None:
    """The reader for a project, a geff store or a CTC dataset, sequence, TRA or RES folder,
    else None."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    path = Path(path)
    if not path.is_dir():
        return None
    if is_project(path) or is_geff(path) or _ctc_sources(path):
        return read_layers
    return None


def read_layers(path: str | list[str]) -> list[LayerTuple]:
    """The layers of a project, a geff store or a CTC folder (see :func:`get_reader`)."""
    path = Path(path[0] if isinstance(path, list) else path)
    if is_project(path):
        return project_layers(path)
    return geff_layers(path) if is_geff(path) else ctc_layers(path)


def project_layers(path: str | Path) -> list[LayerTuple]:
    """Per sequence of a project: its movie (where the store says it is), its masks and its
    current tracks (the latest round's), the tracks layer naming the project and sequence in
    its metadata (the widget's *Proof-read this layer* opens the project on it)."""
    from attrackt.napari.project import DETECTION_FILES, current_tracks, image_source, read_images
    from attrackt.store import Store

    path = Path(path).absolute()
    found = next((path / n for n in DETECTION_FILES[:2] if (path / n).is_file()), None)
    store = Store.load(found) if found is not None else None
    parts = list(current_tracks(path).by_sequence())
    layers: list[LayerTuple] = []
    for name, part in parts:
        prefix = "" if len(parts) == 1 else f"{name} "
        scale = layer_scale(part.detections)
        scaled = {} if scale is None else {"scale": scale}
        source = None if store is None else image_source(store.meta, name)
        if source is not None:
            layers.append((read_images(source), {"name": f"{prefix}image", **scaled}, "image"))
        if store is not None and name in store.masks:
            kwargs = {"name": f"{prefix}masks", "opacity": 0.4, **scaled}
            layers.append((store.masks[name], kwargs, "labels"))
        data, kwargs, kind = tracks_layer(part, f"{name} tracks")
        kwargs["metadata"]["attrackt"].update(project=str(path), sequence=name)
        layers.append((data, kwargs, kind))
    return layers


def is_geff(path: str | Path) -> bool:
    """Whether ``path`` is a zarr group with geff metadata (zarr 2 or 3)."""
    path = Path(path)
    for name, key in ((".zattrs", None), ("zarr.json", "attributes")):
        try:
            raw = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        attrs = raw.get(key, {}) if key else raw
        if isinstance(attrs, dict) and "geff" in attrs:
            return True
    return False


def geff_layers(path: str | Path) -> list[LayerTuple]:
    """One tracks layer per sequence of a geff store."""
    from attrackt.io.geff import read_geff

    path = Path(path)
    parts = list(read_geff(path, sequence=path.stem).by_sequence())
    return [
        tracks_layer(part, f"{path.stem} tracks" if len(parts) == 1 else f"{name} tracks")
        for name, part in parts
    ]


def _ctc_sources(path: Path) -> list[tuple[str, Path | None, Path | None]]:
    """``(name, tracking folder, image folder)`` of each sequence ``path`` holds or is; the
    tracking folder is a tracker's result (``NN_RES``) where there is one, else the ground
    truth (``NN_GT/TRA``). Empty when ``path`` is not CTC data."""
    from attrackt.io.ctc import find_sequences, locate_sequence

    if (path / "man_track.txt").is_file() or (path / "res_track.txt").is_file():
        try:
            seq = locate_sequence(path)
        except InputError:
            return [(path.name, path, None)]
        return [(seq.label, path, seq.images if seq.images.is_dir() else None)]
    try:
        sequences = find_sequences(path)
    except InputError:
        return []
    sources = []
    for seq in sequences:
        folder = seq.result if seq.result.is_dir() else seq.tra if seq.tra.is_dir() else None
        images = seq.images if seq.images.is_dir() else None
        if folder is not None or images is not None:
            sources.append((seq.label, folder, images))
    return sources


def ctc_layers(path: str | Path) -> list[LayerTuple]:
    """Per sequence: the image, the tracked labels and the tracks (images alone where there
    is no tracking folder)."""
    from attrackt.io.ctc import load_ctc
    from attrackt.io.tiff import frame_files, read_frames

    path = Path(path).absolute()
    sources = _ctc_sources(path)
    if not sources:
        raise InputError(path, "not a CTC dataset, sequence, TRA or RES folder")
    layers: list[LayerTuple] = []
    for name, folder, image_folder in sources:
        if folder is None:
            frames = frame_files(image_folder, "t")
            images = read_frames([paths[0] for paths in frames.values()])
            layers.append((images, {"name": f"{name} image"}, "image"))
            continue
        data = load_ctc(folder)
        if data.images is not None:
            layers.append((data.images, {"name": f"{name} image"}, "image"))
        layers.append((data.masks, {"name": f"{name} masks", "opacity": 0.4}, "labels"))
        layers.append(tracks_layer(data.tracks, f"{name} tracks"))
    return layers
