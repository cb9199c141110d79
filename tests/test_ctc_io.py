"""CTC reading and writing: layout, masks -> detections and tracks, round trips, GT detections."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from _ctc_movie import N_FRAMES, TABLE, box, tiny_movie, write_raw_ctc
from traccuracy.loaders import load_ctc_data

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.ctc import (
    detections_from_masks,
    find_sequences,
    gt_detections,
    load_ctc,
    locate_sequence,
    paint_markers,
    read_track_table,
    tracks_from_ctc,
    write_ctc_result,
    write_ctc_sequence,
)
from attrackt.io.tiff import frame_files, frame_name, read_frames


def _node_key(tracks: Tracks) -> dict[int, tuple[int, int]]:
    """detection id -> (t, label)."""
    table = tracks.detections.table
    return dict(zip(table["id"], zip(table["t"], table["label"], strict=True), strict=True))


def _edge_set(tracks: Tracks) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    key = _node_key(tracks)
    return {(key[p], key[c]) for p, c in tracks.edges.tolist()}


def _traccuracy_edges(graph) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    nodes = graph.graph.nodes
    key = {n: (int(a["t"]), int(a["segmentation_id"])) for n, a in nodes(data=True)}
    return {(key[p], key[c]) for p, c in graph.graph.edges()}


# ---- layout and TIFF folders ------------------------------------------------------------------


def test_locate_sequence_accepts_each_way_to_name_it(tmp_path):
    images, masks, table = tiny_movie()
    root = write_raw_ctc(tmp_path / "DS", images, masks, table)
    (root / "01_RES").mkdir()
    want = locate_sequence(root, "01")
    assert want.images == (root / "01").absolute()
    for path in (root / "01", root / "01_GT" / "TRA", root / "01_RES", root / "01_GT"):
        assert locate_sequence(path) == want
    assert find_sequences(root) == [want]
    assert find_sequences(root / "01") == [want]
    assert want.label == "DS/01"
    with pytest.raises(InputError, match="has no sequence '02'"):
        locate_sequence(root, "02")
    with pytest.raises(InputError, match="not a CTC sequence folder"):
        locate_sequence(tmp_path)


def test_frames_are_read_in_numeric_order(tmp_path):
    for t in (10, 2, 1, 0):
        tifffile.imwrite(tmp_path / f"mask{t}.tif", np.full((3, 4), t, np.uint16))
    tifffile.imwrite(tmp_path / "other5.tif", np.zeros((3, 4), np.uint16))
    frames = frame_files(tmp_path, "mask")
    assert list(frames) == [0, 1, 2, 10]
    stack = read_frames([paths[0] for paths in frames.values()])
    assert stack.shape == (4, 3, 4)
    assert stack[:, 0, 0].tolist() == [0, 1, 2, 10]


def test_an_unreadable_or_odd_frame_is_named(tmp_path):
    paths = [tmp_path / f"t{t:03d}.tif" for t in range(3)]
    tifffile.imwrite(paths[0], np.zeros((3, 4), np.uint16))
    tifffile.imwrite(paths[1], np.zeros((3, 5), np.uint16))
    paths[2].write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match=r"t001\.tif: shape \(3, 5\) differs from t000\.tif"):
        read_frames(paths[:2])
    with pytest.raises(InputError, match=r"t002\.tif: not a readable TIFF"):
        read_frames([paths[0], paths[2]])


def test_frame_names_follow_ctc_width():
    assert frame_name("t", 7, 92) == "t007.tif"
    assert frame_name("mask", 999, 999) == "mask999.tif"
    assert frame_name("mask", 7, 1000) == "mask0007.tif"


def test_track_table_rows_are_parsed_and_bad_rows_named(tmp_path):
    path = tmp_path / "man_track.txt"
    path.write_text("1 0 4 0\n\n2 5 9 1\n")
    table = read_track_table(path)
    assert table.to_numpy().tolist() == [[1, 0, 4, 0], [2, 5, 9, 1]]
    path.write_text("1 0 4 0\n2 5 x 1\n")
    with pytest.raises(InputError, match=r"man_track\.txt: line 2: expected 4 integers"):
        read_track_table(path)


# ---- masks -> detections and tracks -------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_detections_sit_at_mask_centroids(ndim):
    images, masks, _ = tiny_movie(ndim)
    det = detections_from_masks(masks, "seq", images)
    pairs = [(t, lab) for t in range(N_FRAMES) for lab in np.unique(masks[t]) if lab]
    assert list(zip(det.times, det.labels, strict=True)) == pairs
    assert det.ids.tolist() == list(range(len(pairs)))
    assert det.ndim == ndim
    assert det.meta["image_shape"] == list(masks.shape[1:])
    for row, (t, lab) in enumerate(pairs):
        where = masks[t] == lab
        assert np.allclose(det.positions()[row], np.argwhere(where).mean(axis=0))
        assert det.table["area"][row] == where.sum()
        assert det.table["intensity_mean"][row] == pytest.approx(images[t][where].mean())
    assert set(det.table["sequence"]) == {"seq"}


def test_detections_handle_huge_labels_and_empty_frames():
    masks = np.zeros((2, 5, 6), np.uint32)
    masks[0, 1:3, 1:3] = 4_000_000_000
    masks[0, 4, 5] = 7
    det = detections_from_masks(masks)
    assert det.labels.tolist() == [7, 4_000_000_000]
    assert det.positions().tolist() == [[4.0, 5.0], [1.5, 1.5]]
    with pytest.raises(InputError, match="integer labels"):
        detections_from_masks(masks.astype(np.float32))


@pytest.mark.parametrize("ndim", [2, 3])
def test_tracks_link_appearances_gaps_and_divisions(ndim):
    _, masks, table = tiny_movie(ndim)
    tracks = tracks_from_ctc(masks, table)
    within = {
        ((t, lab), (t + 1, lab))
        for lab, start, end, _ in TABLE.itertuples(index=False)
        for t in range(start, end)
    }
    between = {((2, 1), (3, 4)), ((2, 1), (3, 5)), ((1, 3), (3, 6))}
    assert _edge_set(tracks) == within | between
    assert sorted(_node_key(tracks)[d] for d in tracks.divisions()) == [(2, 1)]


@pytest.mark.parametrize("ndim", [2, 3])
def test_our_reading_agrees_with_traccuracy(tmp_path, ndim):
    images, masks, table = tiny_movie(ndim)
    root = write_raw_ctc(tmp_path, images, masks, table)
    ours = load_ctc(root, "01")
    theirs = load_ctc_data(str(root / "01_GT" / "TRA"))
    assert _edge_set(ours.tracks) == _traccuracy_edges(theirs)
    assert len(ours.tracks.detections) == theirs.graph.number_of_nodes()
    assert np.array_equal(ours.images, images)
    assert np.array_equal(ours.masks, masks)


# ---- writing results --------------------------------------------------------------------------


@pytest.mark.parametrize("ndim", [2, 3])
def test_result_round_trip_gives_the_same_tracks(tmp_path, ndim):
    images, masks, table = tiny_movie(ndim)
    root = write_raw_ctc(tmp_path / "DS", images, masks, table)
    first = load_ctc(root / "01", images=False)
    res = write_ctc_result(root / "01_RES", first.tracks, first.masks)
    again = load_ctc(res, images=False)
    assert again.tracks.equals(first.tracks)
    pd.testing.assert_frame_equal(again.track_table, table)
    assert np.array_equal(again.masks, masks)
    graph = load_ctc_data(str(res))
    assert _traccuracy_edges(graph) == _edge_set(first.tracks)
    assert sorted((root / "01_RES").iterdir())[0].name == "mask000.tif"


def test_result_relabels_regions_by_track_and_splits_gaps(tmp_path):
    # three frames, per-frame segmentation labels (not track labels), one edge skipping a frame
    masks = np.zeros((4, 10, 10), np.uint16)
    masks[0, 1:3, 1:3] = 5
    masks[1, 1:3, 2:4] = 9
    masks[3, 1:3, 3:5] = 2
    masks[3, 6:8, 6:8] = 3  # a region that no detection claims: dropped
    det = Detections.from_arrays(
        [0, 1, 3], [[1.5, 1.5], [1.5, 2.5], [1.5, 3.5]], ids=[10, 11, 12], labels=[5, 9, 2]
    )
    tracks = Tracks(det, np.array([[10, 11], [11, 12]]))
    res = write_ctc_result(tmp_path / "01_RES", tracks, masks)
    written = read_track_table(res / "res_track.txt")
    assert written.to_numpy().tolist() == [[1, 0, 1, 0], [2, 3, 3, 1]]
    back = read_frames(sorted(res.glob("mask*.tif")))
    assert set(np.unique(back[0])) == {0, 1} and set(np.unique(back[1])) == {0, 1}
    assert set(np.unique(back[3])) == {0, 2}
    assert np.array_equal(back[3] > 0, masks[3] == 2)
    graph = load_ctc_data(str(res))  # traccuracy's CTC checks accept the split gap
    assert _traccuracy_edges(graph) == {((0, 1), (1, 1)), ((1, 1), (3, 2))}


def test_result_writer_refuses_a_detection_without_region_and_keeps_the_old_folder(tmp_path):
    masks = np.zeros((2, 6, 6), np.uint16)
    masks[0, 1:3, 1:3] = 1
    det = Detections.from_arrays([0, 1], [[1.5, 1.5], [1.5, 1.5]], ids=[0, 1], labels=[1, 4])
    target = tmp_path / "01_RES"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(InputError, match=r"detection 1 \(t=1, label 4\) has no region"):
        write_ctc_result(target, Tracks(det, np.array([[0, 1]])), masks)
    assert (target / "keep.txt").read_text() == "old"
    masks[1, 1:3, 1:3] = 4
    write_ctc_result(target, Tracks(det, np.array([[0, 1]])), masks)
    assert sorted(p.name for p in target.iterdir()) == [
        "mask000.tif",
        "mask001.tif",
        "res_track.txt",
    ]


@pytest.mark.parametrize("ndim", [2, 3])
def test_written_sequence_reads_back_here_and_in_traccuracy(tmp_path, ndim):
    images, masks, table = tiny_movie(ndim)
    path = write_ctc_sequence(tmp_path / "synth", "01", images, masks, table)
    assert path == tmp_path / "synth" / "01"
    data = load_ctc(path)
    assert np.array_equal(data.images, images)
    assert np.array_equal(data.masks, masks)
    pd.testing.assert_frame_equal(data.track_table, table)
    graph = load_ctc_data(str(tmp_path / "synth" / "01_GT" / "TRA"))
    assert _traccuracy_edges(graph) == _edge_set(data.tracks)


def test_sequence_writer_checks_the_table_before_writing(tmp_path):
    images, masks, table = tiny_movie()
    table.loc[table["label"] == 2, "end"] = 3  # but label 2 is in frames 4 and 5
    with pytest.raises(
        InputError,
        match=r"man_track\.txt: track 2 spans frames 0-3 but its label "
        r"is also in man_track004\.tif, man_track005\.tif",
    ):
        write_ctc_sequence(tmp_path, "01", images, masks, table)
    assert not (tmp_path / "01").exists()


# ---- GT detections ------------------------------------------------------------------------------


def test_paint_markers_follows_the_documented_rule():
    markers = np.zeros((1, 12, 20), np.uint16)
    inst = np.zeros_like(markers)
    inst[0, 0:5, 0:5] = 1  # marker 7 inside: painted whole
    markers[0, 2, 2] = 7
    inst[0, 0:5, 8:20] = 2  # markers 3 (left) and 4 (right) share it: split by nearest marker
    markers[0, 2, 9] = 3
    markers[0, 2, 18] = 4
    markers[0, 9:11, 2:4] = 5  # overlaps no instance: kept as is
    inst[0, 7:12, 8:12] = 6  # no marker: dropped
    inst[0, 7:12, 14:16] = 8  # marker 9 overlaps 8 by 1 px and 10 by 4 px: takes 10
    inst[0, 7:12, 16:20] = 10
    markers[0, 9, 15:20] = 9
    out = paint_markers(markers, inst)[0]
    assert (out[0:5, 0:5] == 7).all()
    assert (out[0:5, 8:14] == 3).all() and (out[0:5, 14:20] == 4).all()
    assert np.array_equal(out == 5, markers[0] == 5)
    assert (out[7:12, 8:12] == 0).all()
    assert (out[7:12, 16:20] == 9).all()
    assert set(np.unique(out[7:12, 14:16])) == {0, 9}  # only the marker's own pixels there


@pytest.mark.parametrize("ndim", [2, 3])
def test_gt_detections_grow_markers_into_silver_truth(tmp_path, ndim):
    images, masks, table = tiny_movie(ndim)
    root = write_raw_ctc(tmp_path, images, masks, table)
    st_dir = root / "01_ST" / "SEG"
    st_dir.mkdir(parents=True)
    markers = np.zeros_like(masks)
    full = np.zeros_like(masks)
    for label, start, end, _ in table.itertuples(index=False):
        for t in range(start, end + 1):
            region = box(label, t, ndim)
            full[t][region] = label
            markers[t][tuple(slice(s.start, s.start + 1) for s in region)] = label
    for t in range(N_FRAMES):
        tifffile.imwrite(root / "01_GT" / "TRA" / f"man_track{t:03d}.tif", markers[t])
        st = np.where(full[t] > 0, 100 - full[t], 0).astype(np.uint16)  # other ids than TRA
        tifffile.imwrite(st_dir / f"man_seg{t:03d}.tif", st)
    data = gt_detections(root, "01")
    assert np.array_equal(data.masks, full)
    assert _edge_set(data.tracks) == _edge_set(tracks_from_ctc(markers, table))
    assert (data.tracks.detections.table["area"] > 1).all()


# ---- real data --------------------------------------------------------------------------------


def test_real_ci_cut_has_the_documented_counts(shared_data):
    data = load_ctc(shared_data / "ci" / "Fluo-N2DL-HeLa_01_t0-40_crop350x550" / "01")
    assert len(data.track_table) == 32
    children = data.track_table.loc[data.track_table["parent"] > 0, "parent"].value_counts()
    assert (children == 2).sum() == 9
    assert len(data.tracks.divisions()) == 9
    assert len(data.tracks.detections) == 575
    assert data.images.shape == (40, 350, 550)


def test_real_gt_detections_are_full_cells_with_tra_labels(shared_data):
    seq = shared_data / "Fluo-N2DL-HeLa" / "01"
    markers = load_ctc(seq, images=False)
    full = gt_detections(seq, images=False)
    got, want = full.tracks.detections, markers.tracks.detections
    assert np.array_equal(got.times, want.times) and np.array_equal(got.labels, want.labels)
    assert (full.masks[markers.masks > 0] == markers.masks[markers.masks > 0]).all()
    marker_area = np.median(markers.tracks.detections.table["area"])
    full_area = np.median(full.tracks.detections.table["area"])
    assert marker_area == pytest.approx(193, abs=5)
    assert full_area > 2 * marker_area
    assert np.array_equal(full.tracks.edges, markers.tracks.edges)
