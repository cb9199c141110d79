"""The store: CTC sequences -> one compact .npz, and back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
from _ctc_movie import tiny_movie, write_raw_ctc
from scipy import ndimage

from attrackt.errors import InputError
from attrackt.features import regionprops_features
from attrackt.io.ctc import gt_detections, load_ctc
from attrackt.prepare import PrepareConfig, prepare, resample_crops
from attrackt.store import Store
from attrackt.synthetic import SyntheticConfig, generate


def _with_silver_truth(root, masks, name="01"):
    """Write ``NN_ST/SEG``: every cell grown by one pixel, labelled in another order."""
    seg = root / f"{name}_ST" / "SEG"
    seg.mkdir(parents=True)
    for t, frame in enumerate(masks):
        grown = ndimage.grey_dilation(frame, size=(3, 3))
        relabelled = np.where(grown > 0, 50 - grown, 0).astype(np.uint16)
        tifffile.imwrite(seg / f"man_seg{t:03d}.tif", relabelled)


@pytest.fixture
def two_sequences(tmp_path):
    root = tmp_path / "DS"
    for name, seed in (("01", 0), ("02", 1)):
        images, masks, table = tiny_movie(seed=seed)
        write_raw_ctc(root, images, masks, table, name)
        _with_silver_truth(root, masks, name)
    return root


def test_round_trip_gives_back_the_source_detections_edges_and_features(two_sequences, tmp_path):
    config = PrepareConfig(gt_detections=True, crop_size=8, crop_pixels=4, masks=True)
    store = prepare([two_sequences], config)
    path = tmp_path / "store.npz"
    store.save(path)
    loaded = Store.load(path)
    assert loaded.equals(store)
    assert loaded.sequences == ["DS/01", "DS/02"]

    offset = 0
    for name in ("01", "02"):
        source = gt_detections(two_sequences, name)
        ours = loaded.tracks[f"DS/{name}"]
        det = ours.detections
        want = regionprops_features(source.images, source.masks, source.tracks.detections)
        columns = ["t", "y", "x", "label", *want.feature_columns]
        assert np.array_equal(det.ids, want.ids + offset)  # ids shifted to stay unique
        np.testing.assert_array_equal(det.table[columns].to_numpy(), want.table[columns].to_numpy())
        np.testing.assert_array_equal(ours.edges, source.tracks.edges + offset)
        np.testing.assert_array_equal(loaded.masks[f"DS/{name}"], source.masks)
        offset += len(want)
    # the full cells are bigger than the TRA markers they were painted from
    markers = load_ctc(two_sequences, "01").tracks.detections
    assert (loaded.select(["01"]).detections.table["area"].to_numpy() > markers.table["area"]).all()
    assert loaded.crops.dtype == np.uint8 and loaded.crops.shape == (len(loaded.detections), 4, 4)
    assert loaded.detections.meta["image_shape"] == {"DS/01": [24, 40], "DS/02": [24, 40]}
    assert loaded.meta["crop_size"] == [8, 8] and loaded.meta["crop_pixels"] == [4, 4]


def test_crops_cover_the_field_of_view_at_the_stored_resolution(tmp_path):
    images = np.zeros((2, 40, 40), np.uint16)
    masks = np.zeros((2, 40, 40), np.uint16)
    images[:, 16:24, 16:24] = 1000  # an 8x8 cell ...
    masks[:, 16:24, 16:24] = 1
    images[:, 0:4, 0:4] = 1000  # ... and a 4x4 one in the corner
    masks[:, 0:4, 0:4] = 2
    table = pd.DataFrame({"label": [1, 2], "start": [0, 0], "end": [1, 1], "parent": [0, 0]})
    write_raw_ctc(tmp_path / "DS", images, masks, table)
    store = prepare([tmp_path / "DS" / "01"], PrepareConfig(crop_size=16, crop_pixels=4))
    crops = store.crops.astype(float) / 255
    centred = crops[store.detections.labels == 1][0]
    # a 16-pixel field averaged down to 4x4: the 8x8 cell fills the middle 2x2 exactly
    np.testing.assert_allclose(centred[1:3, 1:3], 1.0, atol=1 / 255)
    assert centred.sum() == pytest.approx(4.0, abs=0.05)
    # at the border the crop is padded with background, not an error: the 4x4 cell (centred
    # at pixel 2) covers crop pixels 6..9, a quarter of each of the blocks (1..2, 1..2)
    corner = crops[store.detections.labels == 2][0]
    np.testing.assert_allclose(corner[1:3, 1:3], 0.25, atol=1 / 255)
    assert corner.sum() == pytest.approx(1.0, abs=0.02)


def test_area_resampling_averages_blocks():
    crops = np.arange(2 * 4 * 6, dtype=np.float32).reshape(2, 4, 6)
    out = resample_crops(crops, (2, 3))
    want = crops.reshape(2, 2, 2, 3, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(out, want)


def test_a_synthetic_movie_store_is_small(tmp_path):
    movie = generate(SyntheticConfig(shape=(192, 192), frames=10, density=6, seed=3))
    movie.write(tmp_path / "S", "01")
    store = prepare([tmp_path / "S"], PrepareConfig(crop_size=32, crop_pixels=16))
    path = tmp_path / "s.npz"
    store.save(path)
    n = len(store.detections)
    assert n > 50 and store.edges() is not None and len(store.edges()) > n // 2
    # crops are 256 bytes a cell uncompressed; everything together stays below that
    assert path.stat().st_size < 256 * n + 20_000
    assert Store.load(path, masks=False).equals(store)


def test_select_and_edges_by_sequence(two_sequences):
    store = prepare([two_sequences / "01", two_sequences / "02"], PrepareConfig(crop_pixels=8))
    second = store.select(["02"])
    assert second.sequences == ["DS/02"] and set(second.tracks) == {"DS/02"}
    assert np.array_equal(second.edges(), store.tracks["DS/02"].edges)
    assert len(second.crops) == len(second.detections)
    assert len(store.edges()) == sum(len(t.edges) for t in store.tracks.values())
    with pytest.raises(InputError, match="'03' matches no sequence"):
        store.select(["03"])
    no_gt = Store(store.detections, {"DS/01": store.tracks["DS/01"]})
    assert no_gt.edges() is None and no_gt.edges(["DS/01"]) is not None


def test_bad_store_files_are_named(tmp_path):
    with pytest.raises(InputError, match="no such store file"):
        Store.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    with pytest.raises(InputError, match="other.npz: not an attrackt store"):
        Store.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file")
    with pytest.raises(InputError, match="junk.npz"):
        Store.load(tmp_path / "junk.npz")
    images, masks, table = tiny_movie()
    write_raw_ctc(tmp_path / "DS", images, masks, table)
    store = prepare([tmp_path / "DS"], PrepareConfig(crop_pixels=8))
    good = tmp_path / "good.npz"
    store.save(good)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.npz"):
        Store.load(cut)


def test_prepare_refuses_crops_finer_than_their_field(tmp_path):
    images, masks, table = tiny_movie()
    write_raw_ctc(tmp_path / "DS", images, masks, table)
    with pytest.raises(InputError, match="crop_pixels"):
        prepare([tmp_path / "DS"], PrepareConfig(crop_size=16, crop_pixels=32))


@pytest.mark.realdata
def test_a_real_movie_store_takes_under_800_bytes_a_cell(shared_data, tmp_path):
    source = shared_data / "ci" / "Fluo-N2DL-HeLa_01_t0-40_crop350x550"
    store = prepare([source], PrepareConfig(crop_size=64, crop_pixels=32))
    path = tmp_path / "ci.npz"
    store.save(path)
    truth = load_ctc(source, "01").tracks
    assert np.array_equal(store.detections.ids, truth.detections.ids)
    assert np.array_equal(store.edges(), truth.edges)
    # HeLa 01 + 02 (34k cells) at this rate: under 27 MiB
    assert path.stat().st_size < 800 * len(store.detections)
