"""The napari writer: a tracks layer to a geff store."""

from __future__ import annotations

from typing import Any

from attrackt.napari.layers import tracks_from_layer


def write_tracks_geff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Write a tracks layer (its data, graph, features and metadata) as a geff store."""
    from attrackt.io.geff import write_geff

    tracks = tracks_from_layer(
        data,
        attributes.get("graph"),
        attributes.get("features"),
        attributes.get("metadata"),
        sequence=str(attributes.get("name", "")),
    )
    write_geff(tracks, path, overwrite=True)
    return [str(path)]
