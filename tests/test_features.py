"""Region features, movie normalisation and crops on hand-made movies."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from skimage.measure import regionprops

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.features import (
    PAD_VALUE,
    extract_crops,
    feature_names,
    normalise_movie,
    regionprops_features,
)


def _detections(rows, ndim=2):
    """rows: (t, label, *position)."""
    rows = np.asarray(rows, dtype=float)
    return Detections.from_arrays(
        rows[:, 0].astype(int), rows[:, 2 : 2 + ndim], labels=rows[:, 1].astype(int)
    )


def _movie_2d():
    """Three frames: a 4x6 rectangle (label 3) and an ellipse (label 7) in frame 0, a single
    pixel (label 5) in frame 2, nothing in frame 1."""
    images = np.zeros((3, 40, 50), np.float32)
    masks = np.zeros((3, 40, 50), np.int32)
    masks[0, 2:6, 10:16] = 3
    images[0, 2:6, 10:16] = np.arange(24).reshape(4, 6)
    yy, xx = np.mgrid[:40, :50]
    ellipse = ((yy - 25) / 6.0) ** 2 + ((xx - 30) / 12.0) ** 2 <= 1
    masks[0][ellipse] = 7
    images[0][ellipse] = 5.0
    masks[2, 30, 40] = 5
    images[2, 30, 40] = 9.0
    det = _detections([[0, 3, 3.5, 12.5], [0, 7, 25, 30], [2, 5, 30, 40]])
    return images, masks, det


def test_area_and_intensity_statistics_of_a_rectangle():
    images, masks, det = _movie_2d()
    out = regionprops_features(images, masks, det).table.set_index("label")
    values = np.arange(24.0)
    assert out.loc[3, "area"] == 24
    assert out.loc[3, "intensity_mean"] == pytest.approx(values.mean())
    assert out.loc[3, "intensity_std"] == pytest.approx(values.std())
    assert (out.loc[3, "intensity_min"], out.loc[3, "intensity_max"]) == (0, 23)
    assert out.loc[3, "equivalent_diameter_area"] == pytest.approx(np.sqrt(4 * 24 / np.pi))
    assert out.loc[3, "extent"] == pytest.approx(1.0)
    # a discrete run of n pixels has variance (n^2 - 1) / 12 along it
    assert out.loc[3, "axis_major_length"] == pytest.approx(4 * np.sqrt(35 / 12))
    assert out.loc[3, "axis_minor_length"] == pytest.approx(4 * np.sqrt(15 / 12))
    assert list(out.columns[-len(feature_names(2)) :]) == feature_names(2)


def test_shape_features_agree_with_skimage_for_an_ellipse():
    images, masks, det = _movie_2d()
    ours = regionprops_features(images, masks, det).table.set_index("label").loc[7]
    ref = next(r for r in regionprops(masks[0], intensity_image=images[0]) if r.label == 7)
    assert ours["area"] == ref.area
    assert ours["axis_major_length"] == pytest.approx(ref.axis_major_length, rel=1e-6)
    assert ours["axis_minor_length"] == pytest.approx(ref.axis_minor_length, rel=1e-6)
    assert ours["eccentricity"] == pytest.approx(ref.eccentricity, rel=1e-6)
    assert ours["extent"] == pytest.approx(ref.extent)
    assert 0.4 < ours["axis_ratio"] < 0.6  # semi-axes 6 and 12


def test_a_single_pixel_gets_zero_shape_features_with_a_warning(caplog):
    images, masks, det = _movie_2d()
    with caplog.at_level(logging.WARNING):
        out = regionprops_features(images, masks, det).table.set_index("label").loc[5]
    assert "too thin" in caplog.text and "t=2" in caplog.text
    assert out["area"] == 1 and out["intensity_mean"] == 9 and out["intensity_std"] == 0
    assert out["eccentricity"] == 0 and out["axis_ratio"] == 0
    values = out[feature_names(2)].to_numpy(dtype=float)
    assert np.isfinite(values).all()


def test_3d_box_volume_axes_and_scale():
    images = np.zeros((1, 8, 12, 16), np.float32)
    masks = np.zeros((1, 8, 12, 16), np.uint16)
    masks[0, 1:3, 2:5, 3:13] = 4  # 2 x 3 x 10 box
    images[0, 1:3, 2:5, 3:13] = 2.0
    images[0, 1, 2, 3] = 8.0
    det = _detections([[0, 4, 1.5, 3, 7.5]], ndim=3)
    out = regionprops_features(images, masks, det).table.iloc[0]
    assert out["area"] == 60 and out["intensity_max"] == 8 and out["intensity_min"] == 2
    assert out["intensity_mean"] == pytest.approx((59 * 2 + 8) / 60)
    variances = np.array([99, 8, 3]) / 12  # (n^2 - 1) / 12 for n = 10, 3, 2
    assert out["axis_major_length"] == pytest.approx(2 * np.sqrt(5 * variances[0]))
    assert out["axis_intermediate_length"] == pytest.approx(2 * np.sqrt(5 * variances[1]))
    assert out["axis_minor_length"] == pytest.approx(2 * np.sqrt(5 * variances[2]))
    assert out["equivalent_diameter_area"] == pytest.approx(np.cbrt(6 * 60 / np.pi))
    assert out["gyration_radius"] == pytest.approx(np.sqrt(variances.sum()))
    scaled = regionprops_features(images, masks, det, scale=(2.0, 1.0, 1.0)).table.iloc[0]
    assert scaled["area"] == 120
    # z twice as long: its variance (4 x 3/12) now ranks between x and y
    assert scaled["axis_intermediate_length"] == pytest.approx(2 * np.sqrt(5 * 4 * variances[2]))
    assert scaled["axis_minor_length"] == pytest.approx(2 * np.sqrt(5 * variances[1]))


def test_a_label_missing_from_the_mask_is_named():
    images, masks, det = _movie_2d()
    det = det.with_columns(label=np.array([3, 8, 5]))
    with pytest.raises(InputError, match=r"t=0, label 8.*frame 0"):
        regionprops_features(images, masks, det)


def test_nan_images_and_bad_masks_are_refused():
    images, masks, det = _movie_2d()
    images[2, 0, 0] = np.nan
    with pytest.raises(InputError, match="frame 2 contains NaN"):
        regionprops_features(images, masks, det)
    with pytest.raises(InputError, match="integer"):
        regionprops_features(images, masks.astype(float), det)
    with pytest.raises(InputError, match="frame 5"):
        regionprops_features(images[:, :, :], masks, _detections([[5, 3, 3, 12]]))


def test_empty_detections_get_empty_columns():
    images, masks, det = _movie_2d()
    out = regionprops_features(images, masks, det.take(np.zeros(3, bool)))
    assert len(out) == 0 and set(feature_names(2)) <= set(out.table.columns)


# ---- normalisation ----------------------------------------------------------------------


def test_normalisation_maps_percentiles_to_zero_and_one():
    movie = np.arange(2 * 10 * 10, dtype=np.uint16).reshape(2, 10, 10)
    out = normalise_movie(movie, low=0, high=100)
    assert out.dtype == np.float32 and out.min() == 0 and out.max() == pytest.approx(1)
    lo, hi = np.percentile(movie, [1, 99.8])
    assert normalise_movie(movie)[1, 5, 5] == pytest.approx((movie[1, 5, 5] - lo) / (hi - lo))


def test_normalisation_of_a_constant_movie_is_finite_and_of_nan_an_error():
    out = normalise_movie(np.full((3, 4, 4), 7, np.uint8))
    assert np.array_equal(out, np.zeros((3, 4, 4), np.float32))
    movie = np.ones((3, 4, 4), np.float32)
    movie[1, 2, 2] = np.nan
    with pytest.raises(InputError, match="frame 1"):
        normalise_movie(movie)


# ---- crops ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 9, (6, 11)])
def test_the_detection_pixel_lands_at_the_crop_centre_2d(size):
    images = np.zeros((2, 30, 40), np.float32)
    points = [(0, 10, 20), (0, 15, 7), (1, 22, 33)]
    for t, y, x in points:
        images[t, y, x] = 1.0
    det = _detections([[t, 0, y + 0.3, x - 0.4] for t, y, x in points])  # rounds back
    crops = extract_crops(images, det, size)
    sy, sx = (size, size) if isinstance(size, int) else size
    assert crops.shape == (3, sy, sx) and crops.dtype == np.float32
    for crop in crops:
        assert np.unravel_index(crop.argmax(), crop.shape) == (sy // 2, sx // 2)
        assert crop.sum() == 1.0  # no other bright pixel is near


def test_the_detection_voxel_lands_at_the_crop_centre_3d():
    images = np.zeros((1, 10, 20, 20), np.float32)
    images[0, 3, 12, 5] = 1.0
    det = _detections([[0, 0, 3, 12, 5]], ndim=3)
    crops = extract_crops(images, det, (4, 8, 8))
    assert crops.shape == (1, 4, 8, 8)
    assert np.unravel_index(crops[0].argmax(), (4, 8, 8)) == (2, 4, 4)


def test_crops_across_the_border_are_padded_with_the_documented_value():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.5, 1.0, (1, 12, 12)).astype(np.float32)
    det = _detections([[0, 0, 0, 11]])  # top-right corner
    crop = extract_crops(images, det, 8)[0]
    # rows -4..3 and columns 7..14 of the image: only rows 0..3 and columns 7..11 exist
    assert np.array_equal(crop[4:, :5], images[0, 0:4, 7:12])
    assert (crop[:4] == PAD_VALUE).all() and (crop[:, 5:] == PAD_VALUE).all()


def test_masking_out_other_cells_keeps_own_cell_and_background():
    images = np.full((1, 20, 20), 0.5, np.float32)
    masks = np.zeros((1, 20, 20), np.int32)
    masks[0, 8:12, 8:12] = 1
    masks[0, 8:12, 13:16] = 2
    det = _detections([[0, 1, 10, 10], [0, 2, 10, 14]])
    crops = extract_crops(images, det, 10, masks=masks, mask_others=True)
    window = masks[0, 5:15, 5:15]
    assert (crops[0][window == 2] == PAD_VALUE).all()
    assert (crops[0][window != 2] == 0.5).all()
    assert (crops[1][masks[0, 5:15, 9:19] == 1] == PAD_VALUE).all()
    plain = extract_crops(images, det, 10)
    assert (plain == 0.5).all()
    with pytest.raises(InputError, match="masks"):
        extract_crops(images, det, 10, mask_others=True)


def test_bad_crop_inputs_are_refused():
    images = np.zeros((2, 10, 10), np.float32)
    with pytest.raises(InputError, match=r"detection 0 .*outside the image"):
        extract_crops(images, _detections([[0, 0, 3, 12]]), 4)
    nan = images.copy()
    nan[1, 0, 0] = np.nan
    with pytest.raises(InputError, match="frame 1 contains NaN"):
        extract_crops(nan, _detections([[1, 0, 5, 5]]), 4)
    with pytest.raises(InputError, match="overflow float16"):
        extract_crops(images + 1e5, _detections([[0, 0, 5, 5]]), 4, dtype=np.float16)
    with pytest.raises(InputError, match="crop size"):
        extract_crops(images, _detections([[0, 0, 5, 5]]), (4, 4, 4))
    with pytest.raises(InputError, match=r"2D detections need a \(T, Y, X\) movie"):
        extract_crops(images[:, None], _detections([[0, 0, 5, 5]]), 4)


def test_crops_of_a_movie_with_an_empty_frame():
    images = np.arange(3 * 10 * 10, dtype=np.float32).reshape(3, 10, 10)
    det = _detections([[0, 0, 5, 5], [2, 0, 4, 6]])  # frame 1 has no detections
    crops = extract_crops(images, det, 2)
    assert np.array_equal(crops[0], images[0, 4:6, 4:6])
    assert np.array_equal(crops[1], images[2, 3:5, 5:7])
    assert extract_crops(images, det.take(np.zeros(2, bool)), 2).shape == (0, 2, 2)


@pytest.mark.realdata
def test_real_markers_agree_with_the_ctc_reader(shared_data):
    from attrackt.io.ctc import load_ctc

    data = load_ctc(shared_data / "ci" / "Fluo-N2DL-HeLa_01_t0-40_crop350x550" / "01_GT" / "TRA")
    det = data.tracks.detections
    out = regionprops_features(data.images, data.masks, det).table
    # the reader counted pixels and averaged intensities its own way: both must agree
    assert np.array_equal(out["area"], det.table["area"])
    np.testing.assert_allclose(out["intensity_mean"], det.table["intensity_mean"], rtol=1e-9)
    assert (out["intensity_min"] <= out["intensity_mean"]).all()
    assert np.isfinite(out[feature_names(2)].to_numpy(dtype=float)).all()
    crops = extract_crops(normalise_movie(data.images), det, 32, dtype=np.float16)
    assert crops.shape == (len(det), 32, 32) and np.isfinite(crops).all()
    # a marker's centroid lies on bright nucleus: the crop centre outshines the crop corners
    assert np.median(crops[:, 16, 16]) > np.median(crops[:, :4, :4])


def _synthetic_movie(shape: tuple[int, ...]):
    """A synthetic movie (3 frames) plus a one-pixel-thin line (label 999) in frame 0."""
    from attrackt.synthetic import SyntheticConfig, generate

    movie = generate(SyntheticConfig(shape=shape, frames=3, density=10, radius=5, seed=4))
    masks = movie.masks.copy()
    line = (0,) * (len(shape) - 1) + (1, slice(1, 7))
    assert not masks[line].any()
    masks[line] = 999
    position = [[0] * (len(shape) - 2) + [1, 3.5]]
    thin = Detections.from_arrays([0], position, ids=[10**6], labels=[999])
    det = Detections.concat([movie.tracks().detections, thin])
    return movie.images, masks, det


# Per feature, sum(value_i * (1 + (i % 7) / 7)) over the detections of _synthetic_movie,
# recorded with the hand-written moments this package had before it used regionprops_table.
REFERENCE_FEATURES = {
    "2d": {
        "area": 3682.285714285714,
        "intensity_mean": 30666.771154478345,
        "intensity_std": 12796.18374390293,
        "intensity_min": 3960.285714285714,
        "intensity_max": 55720.999999999985,
        "equivalent_diameter_area": 485.11926529143165,
        "axis_major_length": 548.7575746761453,
        "axis_minor_length": 433.13959153202023,
        "eccentricity": 29.00371379690626,
        "axis_ratio": 40.911112866274784,
        "gyration_radius": 175.88336141683737,
        "extent": 42.04731315421792,
    },
    "3d": {
        "area": 10324.857142857143,
        "intensity_mean": 8433.097694044875,
        "intensity_std": 3900.0561653704253,
        "intensity_min": 397.42857142857144,
        "intensity_max": 17836.0,
        "equivalent_diameter_area": 166.44348623366477,
        "axis_major_length": 277.5722319892501,
        "axis_intermediate_length": 151.16164235646585,
        "axis_minor_length": 111.50840208705667,
        "eccentricity": 14.885444282384132,
        "axis_ratio": 6.314359430371061,
        "gyration_radius": 75.78892688537938,
        "extent": 10.121412054533748,
    },
}


@pytest.mark.parametrize(
    ("shape", "scale"), [((96, 96), None), ((12, 64, 64), (2.0, 1.0, 1.0))], ids=["2d", "3d"]
)
def test_features_of_a_synthetic_movie_match_the_recorded_ones(shape, scale, caplog):
    images, masks, det = _synthetic_movie(shape)
    with caplog.at_level(logging.WARNING):
        table = regionprops_features(images, masks, det, scale=scale).table
    weights = 1 + (np.arange(len(table)) % 7) / 7
    got = {c: float(table[c].to_numpy(float) @ weights) for c in feature_names(len(shape))}
    assert len(table) == (37 if len(shape) == 2 else 12) and "too thin" not in caplog.text
    want = REFERENCE_FEATURES[f"{len(shape)}d"]
    assert got == pytest.approx(want, rel=1e-9)
