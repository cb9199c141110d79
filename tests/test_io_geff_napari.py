"""geff and napari Tracks-layer round trips."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.geff import read_geff, write_geff
from attrackt.io.napari_tracks import (
    tracks_from_layer_data,
    tracks_layer_data,
    tracks_layer_features,
)
from attrackt.synthetic import SyntheticConfig, generate


def _tracks(ndim: int, seed: int = 0) -> Tracks:
    shape = (96, 112) if ndim == 2 else (16, 96, 96)
    cfg = SyntheticConfig(shape=shape, frames=10, density=12, division_rate=0.1, seed=seed)
    tracks = generate(cfg).tracks(sequence="01")
    det = tracks.detections
    rng = np.random.default_rng(seed)
    det = det.with_columns(
        area=rng.uniform(50, 200, len(det)), edge=rng.uniform(size=len(det)) > 0.5
    )
    det = det.with_vectors(embedding=rng.normal(size=(len(det), 5)).astype(np.float32))
    det.meta["scale"] = [2.0] * (ndim - 2) + [0.5, 0.5]
    return Tracks(det, tracks.edges)


@pytest.mark.parametrize("ndim", [2, 3])
def test_geff_round_trip_is_lossless(tmp_path: Path, ndim: int) -> None:
    tracks = _tracks(ndim)
    assert len(tracks.divisions()) > 0
    write_geff(tracks, tmp_path / "t.geff")
    back = read_geff(tmp_path / "t.geff")
    assert back.equals(tracks)


def test_geff_round_trip_without_edges_and_of_two_sequences(tmp_path: Path) -> None:
    a = _tracks(2, seed=1)
    det = a.detections
    b = Detections(det.table.assign(id=det.ids + 10_000, sequence="02"), det.vectors, det.meta)
    both = Tracks(Detections.concat([det, b]), np.zeros((0, 2), np.int64))
    write_geff(both, tmp_path / "empty.geff")
    assert read_geff(tmp_path / "empty.geff").equals(both)


def test_geff_holds_what_viewers_need(tmp_path: Path) -> None:
    import zarr
    from geff.core_io import read_to_memory
    from geff.validate.data import ValidationConfig, validate_data

    tracks = _tracks(3)
    write_geff(tracks, tmp_path / "t.geff")
    memory = read_to_memory(str(tmp_path / "t.geff"))
    # geff's own checks of the declared tracklet and lineage ids
    validate_data(memory, ValidationConfig(graph=True, tracklet=True, lineage=True))
    meta = memory["metadata"]
    assert [(a.name, a.type, a.unit) for a in meta.axes] == [
        ("t", "time", "frame"),
        ("z", "space", "pixel"),
        ("y", "space", "pixel"),
        ("x", "space", "pixel"),
    ]
    assert [a.scale for a in meta.axes[1:]] == [2.0, 0.5, 0.5]
    props = memory["node_props"]
    assert np.array_equal(props["seg_id"]["values"], tracks.detections.labels)
    labels, _ = tracks.tracklets()
    assert np.array_equal(props["track_id"]["values"], labels)
    assert props["embedding"]["values"].shape == (len(tracks.detections), 5)
    assert "geff" in dict(zarr.open(str(tmp_path / "t.geff"), mode="r").attrs)


def test_geff_write_refuses_to_clobber_and_is_atomic(tmp_path: Path, monkeypatch) -> None:
    import geff.core_io

    tracks = _tracks(2)
    target = tmp_path / "t.geff"
    write_geff(tracks, target)
    with pytest.raises(InputError, match="already exists"):
        write_geff(tracks, target)
    bad = Tracks(tracks.detections.with_columns(seg_id=tracks.detections.labels), tracks.edges)
    with pytest.raises(InputError, match="seg_id"):
        write_geff(bad, target, overwrite=True)

    def crash(store, *args, **kwargs):
        Path(store).mkdir()
        (Path(store) / "half").write_text("written")
        raise OSError("disk full")

    monkeypatch.setattr(geff.core_io, "write_arrays", crash)
    with pytest.raises(OSError, match="disk full"):
        write_geff(_tracks(2, seed=5), target, overwrite=True)
    monkeypatch.undo()
    assert read_geff(target).equals(tracks)  # the failed writes left the old store intact
    other = _tracks(2, seed=5)
    write_geff(other, target, overwrite=True)
    assert read_geff(target).equals(other)
    assert [p.name for p in tmp_path.iterdir()] == ["t.geff"]


def test_foreign_geff_is_read_through_its_axes(tmp_path: Path) -> None:
    import geff

    graph = nx.DiGraph()
    graph.add_node(1, frame=0, row=10.0, col=20.0, seg_id=3, score=0.5)
    graph.add_node(2, frame=1, row=11.0, col=21.0, seg_id=4, score=0.7)
    graph.add_node(3, frame=1, row=30.0, col=5.0, seg_id=5, score=0.1)
    graph.add_edge(1, 2)
    graph.add_edge(1, 3)
    geff.write(
        graph,
        tmp_path / "f.geff",
        axis_names=["frame", "row", "col"],
        axis_types=["time", "space", "space"],
    )
    tracks = read_geff(tmp_path / "f.geff", sequence="s")
    table = tracks.detections.table
    assert table["t"].tolist() == [0, 1, 1]
    assert table["y"].tolist() == [10.0, 11.0, 30.0]
    assert table["x"].tolist() == [20.0, 21.0, 5.0]
    assert table["label"].tolist() == [3, 4, 5]
    assert table["score"].tolist() == [0.5, 0.7, 0.1]
    assert set(table["sequence"]) == {"s"}
    assert tracks.divisions().tolist() == [1]


def test_reading_a_missing_or_broken_geff_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such geff"):
        read_geff(tmp_path / "none.geff")
    (tmp_path / "junk.geff").mkdir()
    with pytest.raises(InputError, match="junk.geff"):
        read_geff(tmp_path / "junk.geff")


# ---- napari ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_napari_layer_data_has_the_documented_structure(ndim: int) -> None:
    tracks = _tracks(ndim)
    data, graph = tracks_layer_data(tracks)
    assert data.shape == (len(tracks.detections), 2 + ndim)
    # rows sorted by track id, then time; integer ids and times
    assert np.array_equal(data[:, 0], np.round(data[:, 0]))
    order = np.lexsort((data[:, 1], data[:, 0]))
    assert np.array_equal(order, np.arange(len(data)))
    # one point per track and frame
    assert len({(a, b) for a, b in data[:, :2].tolist()}) == len(data)
    # graph: daughter -> [mother]; two daughters per division; mother ends before daughters
    ids = set(data[:, 0].astype(int).tolist())
    assert len(graph) == 2 * len(tracks.divisions())
    for child, parents in graph.items():
        assert len(parents) == 1 and child in ids and parents[0] in ids
        assert data[data[:, 0] == parents[0], 1].max() < data[data[:, 0] == child, 1].min()
    assert sorted(np.bincount([p[0] for p in graph.values()])[1:].tolist())[-1] == 2
    # positions are the detections' own
    feats = tracks_layer_features(tracks)
    rows = tracks.detections.rows_of(feats["id"])
    assert np.array_equal(data[:, 2:], tracks.detections.positions()[rows])
    assert np.array_equal(data[:, 1], tracks.detections.times[rows])


@pytest.mark.parametrize("ndim", [2, 3])
def test_napari_layer_round_trip_keeps_the_lineage(ndim: int) -> None:
    tracks = _tracks(ndim)
    data, graph = tracks_layer_data(tracks)
    back = tracks_from_layer_data(data, graph)
    feats = tracks_layer_features(tracks)  # row i of data is detection feats.id[i]
    original = {tuple(e) for e in tracks.edges.tolist()}
    rebuilt = {(int(feats["id"][p]), int(feats["id"][c])) for p, c in back.edges.tolist()}
    assert rebuilt == original
    assert np.array_equal(back.tracklets()[1], tracks.tracklets()[1])


def test_napari_layer_data_errors() -> None:
    data = np.array([[1, 0, 5.0, 5.0], [1, 0, 6.0, 6.0]])
    with pytest.raises(InputError, match="two points in one frame"):
        tracks_from_layer_data(data)
    data = np.array([[1, 0, 5.0, 5.0], [2, 1, 6.0, 6.0], [3, 1, 7.0, 7.0], [4, 2, 7.0, 7.0]])
    with pytest.raises(InputError, match="merge"):
        tracks_from_layer_data(data, {4: [2, 3]})
    with pytest.raises(InputError, match="absent"):
        tracks_from_layer_data(data, {9: [1]})
    with pytest.raises(InputError, match=r"\(N, 4\)"):
        tracks_from_layer_data(np.zeros((3, 3)))


@pytest.mark.parametrize("ndim", [2, 3])
def test_an_empty_tracks_layer_gives_empty_tracks(ndim: int) -> None:
    back = tracks_from_layer_data(np.zeros((0, 2 + ndim)), {})
    assert len(back.detections) == 0 and back.edges.shape == (0, 2)
    assert back.detections.positions().shape == (0, ndim)
    with pytest.raises(InputError, match="absent"):  # a graph still has to name real tracks
        tracks_from_layer_data(np.zeros((0, 2 + ndim)), {2: [1]})
