"""Segmentations people have (label folders, stacks, zarr, napari layers) and points tables,
read by ``prepare_segmentation`` and checked against the movie."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pandas as pd
import pytest
import tifffile

from attrackt.errors import InputError
from attrackt.prepare import PrepareConfig, prepare_segmentation
from attrackt.synthetic import SyntheticConfig, generate

CONFIG = PrepareConfig(crop_size=16, crop_pixels=16, masks=True)
FRAMES = 4


@pytest.fixture(scope="module")
def movie():
    return generate(SyntheticConfig(shape=(64, 64), frames=FRAMES, density=8.0, seed=5))


def _pairs(labels: np.ndarray) -> list[tuple[int, int]]:
    """The ``(t, label)`` of every cell of a label stack."""
    return [(t, int(v)) for t, frame in enumerate(labels) for v in np.unique(frame) if v]


def _cells(store) -> list[tuple[int, int]]:
    table = store.detections.table
    return list(zip(table["t"].tolist(), table["label"].tolist(), strict=True))


def _write(folder, names, stack, png=False):
    folder.mkdir(exist_ok=True)
    for name, frame in zip(names, stack, strict=True):
        if png:
            iio.imwrite(folder / f"{name}.png", frame)
        else:
            tifffile.imwrite(folder / f"{name}.tif", frame, photometric="minisblack")
    return folder


# ---- label folders ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["mask", "man_seg"])
def test_ctc_label_folder(movie, tmp_path, prefix) -> None:
    images = _write(tmp_path / "01", [f"t{t:03d}" for t in range(FRAMES)], movie.images)
    masks = _write(tmp_path / "seg", [f"{prefix}{t:03d}" for t in range(FRAMES)], movie.masks)
    store = prepare_segmentation(images, masks, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)
    np.testing.assert_array_equal(store.masks["01"], movie.masks)
    assert store.meta["cells"] == "masks" and store.meta["sources"] == {"01": str(images)}
    assert "area" in store.detections.feature_columns


def test_cellpose_folder_beside_the_images_in_natural_order(movie, tmp_path) -> None:
    names = ["img_1", "img_2", "img_10", "img_11"]  # as text, img_10 would come before img_2
    folder = _write(tmp_path / "cp", names, movie.images)
    _write(folder, [f"{n}_cp_masks" for n in names], movie.masks.astype(np.uint16), png=True)
    tifffile.imwrite(folder / "img_1_flows.tif", movie.images[0])  # Cellpose's, not a frame
    store = prepare_segmentation(folder, folder, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_cellpose_masks_folder_of_tiffs(movie, tmp_path) -> None:
    names = [f"cells{t}" for t in range(FRAMES)]
    images = _write(tmp_path / "images", names, movie.images)
    masks = _write(tmp_path / "masks", [f"{n}_masks" for n in names], movie.masks)
    store = prepare_segmentation(images, masks, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_stardist_labels_named_like_the_images(movie, tmp_path) -> None:
    names = [f"pos3_frame{t}" for t in range(FRAMES)]
    images = _write(tmp_path / "images", names, movie.images)
    labels = _write(tmp_path / "labels", names, movie.masks.astype(np.int32))
    store = prepare_segmentation(images, labels, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_a_label_folder_for_an_image_stack_goes_in_natural_order(movie, tmp_path) -> None:
    tifffile.imwrite(tmp_path / "movie.tif", movie.images, photometric="minisblack")
    labels = _write(tmp_path / "labels", [f"f{t}" for t in (1, 2, 10, 11)], movie.masks)
    store = prepare_segmentation(tmp_path / "movie.tif", labels, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_an_extra_label_image_is_named(movie, tmp_path) -> None:
    names = [f"img{t}" for t in range(FRAMES)]
    images = _write(tmp_path / "images", names, movie.images)
    masks = _write(tmp_path / "masks", [f"{n}_masks" for n in names], movie.masks)
    tifffile.imwrite(masks / "other_masks.tif", movie.masks[0])
    with pytest.raises(InputError, match="other_masks.tif: matches no image"):
        prepare_segmentation(images, masks, config=CONFIG)


def test_a_frame_without_a_label_image_is_named(movie, tmp_path) -> None:
    images = _write(tmp_path / "01", [f"t{t:03d}" for t in range(FRAMES)], movie.images)
    masks = _write(tmp_path / "seg", [f"mask{t:03d}" for t in range(FRAMES)], movie.masks)
    (masks / "mask002.tif").unlink()
    with pytest.raises(InputError, match=r"t002.tif: has no label image in .*seg"):
        prepare_segmentation(images, masks, config=CONFIG)


def test_a_label_folder_with_too_few_frames_for_a_stack(movie, tmp_path) -> None:
    tifffile.imwrite(tmp_path / "movie.tif", movie.images, photometric="minisblack")
    labels = _write(tmp_path / "labels", ["a", "b"], movie.masks[:2])
    with pytest.raises(InputError, match="holds 2 label images .* for the 4 frames of"):
        prepare_segmentation(tmp_path / "movie.tif", labels, config=CONFIG)


def test_an_image_folder_is_not_its_own_segmentation(movie, tmp_path) -> None:
    folder = _write(tmp_path / "images", [f"img{t}" for t in range(FRAMES)], movie.images)
    with pytest.raises(InputError, match="holds the images but no label images"):
        prepare_segmentation(folder, folder, config=CONFIG)


# ---- stacks, zarr, napari ----------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tif", ".npy"])
def test_single_label_stack(movie, tmp_path, suffix) -> None:
    path = tmp_path / f"labels{suffix}"
    if suffix == ".tif":
        tifffile.imwrite(path, movie.masks, photometric="minisblack")
    else:
        np.save(path, movie.masks)
    store = prepare_segmentation(movie.images, path, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_array_in_a_store(movie, tmp_path, zarr_format) -> None:
    import zarr

    root = zarr.open_group(str(tmp_path / "seg.zarr"), mode="w", zarr_format=zarr_format)
    cells = root.create_group("labels").create_array(
        "cells", shape=movie.masks.shape, dtype=movie.masks.dtype, chunks=(1, 64, 64)
    )
    cells[:] = movie.masks
    store = prepare_segmentation(movie.images, tmp_path / "seg.zarr/labels/cells", config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)
    # a group holding one array stands for it
    store = prepare_segmentation(movie.images, tmp_path / "seg.zarr/labels", config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_ome_zarr_labels_read_their_full_resolution(movie, tmp_path) -> None:
    import zarr

    group = zarr.open_group(str(tmp_path / "image.zarr"), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [{"datasets": [{"path": "0"}, {"path": "1"}]}]
    group.create_array("0", shape=movie.masks.shape, dtype=np.uint32)[:] = movie.masks
    group.create_array("1", shape=(FRAMES, 32, 32), dtype=np.uint32)
    store = prepare_segmentation(movie.images, tmp_path / "image.zarr", config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_a_zarr_group_with_several_arrays_asks_for_one(movie, tmp_path) -> None:
    import zarr

    group = zarr.open_group(str(tmp_path / "seg.zarr"), mode="w")
    for name in ("a", "b"):
        group.create_array(name, shape=movie.masks.shape, dtype=np.uint16)
    with pytest.raises(InputError, match=r"is a zarr group; name one of its arrays \(a, b\)"):
        prepare_segmentation(movie.images, tmp_path / "seg.zarr", config=CONFIG)


def test_arrays_and_a_napari_labels_layer(movie) -> None:
    store = prepare_segmentation(movie.images, movie.masks, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)
    assert store.meta["sources"] == {"01": "<ndarray>"}
    layers = pytest.importorskip("napari.layers")
    image, labels = layers.Image(movie.images), layers.Labels(movie.masks)
    store = prepare_segmentation(image, labels, config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


# ---- checks -----------------------------------------------------------------------------------


def test_a_stack_of_another_shape_names_both_files_and_shapes(movie, tmp_path) -> None:
    tifffile.imwrite(tmp_path / "movie.tif", movie.images, photometric="minisblack")
    tifffile.imwrite(tmp_path / "short.tif", movie.masks[:3], photometric="minisblack")
    tifffile.imwrite(tmp_path / "narrow.tif", movie.masks[:, :, :60], photometric="minisblack")
    with pytest.raises(InputError) as err:
        prepare_segmentation(tmp_path / "movie.tif", tmp_path / "short.tif", config=CONFIG)
    text = str(err.value)
    assert "short.tif" in text and "movie.tif" in text
    assert "(3, 64, 64) (3 frames of 64 x 64 pixels)" in text and "(4, 64, 64)" in text
    with pytest.raises(InputError, match=r"narrow.tif: masks of shape \(4, 64, 60\)"):
        prepare_segmentation(tmp_path / "movie.tif", tmp_path / "narrow.tif", config=CONFIG)


def test_a_singleton_axis_more_is_fine(movie) -> None:
    store = prepare_segmentation(movie.images, movie.masks[:, None], config=CONFIG)
    assert _cells(store) == _pairs(movie.masks)


def test_non_integer_labels(movie) -> None:
    with pytest.raises(InputError, match="non-integer values"):
        prepare_segmentation(movie.images, movie.masks + 0.5, config=CONFIG)
    whole = prepare_segmentation(movie.images, movie.masks.astype(np.float32), config=CONFIG)
    assert _cells(whole) == _pairs(movie.masks)


def test_a_binary_mask_needs_labelling(movie) -> None:
    with pytest.raises(InputError, match="binary mask"):
        prepare_segmentation(movie.images, movie.masks > 0, config=CONFIG)
    with pytest.raises(InputError, match="binary mask"):
        prepare_segmentation(movie.images, (movie.masks > 0).astype(np.uint8), config=CONFIG)


def test_negative_labels(movie) -> None:
    labels = movie.masks.astype(np.int32)
    labels[2, 0, 0] = -1
    with pytest.raises(InputError, match=r"negative labels \(frame 2\)"):
        prepare_segmentation(movie.images, labels, config=CONFIG)


def test_empty_frames_are_fine_an_empty_movie_is_not(movie) -> None:
    labels = movie.masks.copy()
    labels[1] = 0
    store = prepare_segmentation(movie.images, labels, config=CONFIG)
    assert 1 not in store.detections.times and _cells(store) == _pairs(labels)
    with pytest.raises(InputError, match="holds no labelled cell"):
        prepare_segmentation(movie.images, np.zeros_like(labels), config=CONFIG)


def test_masks_or_points(movie) -> None:
    with pytest.raises(InputError, match="either as masks or as points"):
        prepare_segmentation(movie.images, config=CONFIG)


# ---- points -----------------------------------------------------------------------------------


def _points(movie) -> pd.DataFrame:
    tracks = movie.tracks()
    return tracks.detections.table[["t", "y", "x", "label"]].rename(columns={"label": "track_id"})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_points_table(movie, tmp_path, suffix) -> None:
    table = _points(movie).assign(id=lambda d: np.arange(len(d)) * 10 + 7, note="x")
    path = tmp_path / f"points{suffix}"
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path)
    store = prepare_segmentation(movie.images, points=path, config=CONFIG)
    det = store.detections
    assert det.ids.tolist() == table["id"].tolist()
    assert det.labels.tolist() == table["track_id"].tolist()
    np.testing.assert_allclose(det.positions(), table[["y", "x"]].to_numpy())
    assert det.feature_columns == [] and not store.masks  # no mask: appearance from crops
    assert store.crops.shape == (len(table), 16, 16) and store.meta["cells"] == "points"


def test_points_in_3d(tmp_path) -> None:
    movie = generate(SyntheticConfig(shape=(12, 48, 48), frames=3, density=8.0, seed=2))
    table = movie.tracks().detections.table[["t", "z", "y", "x"]]
    store = prepare_segmentation(
        movie.images, points=table, config=PrepareConfig(crop_size=8, crop_pixels=8)
    )
    assert store.detections.spatial_axes == ("z", "y", "x") and len(store.detections) == len(table)
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['z'\]"):
        prepare_segmentation(movie.images, points=table.drop(columns="z"), config=CONFIG)


def test_points_outside_the_movie(movie, tmp_path) -> None:
    table = _points(movie)
    path = tmp_path / "points.csv"
    table.assign(x=table["x"] + np.where(np.arange(len(table)) == 3, 100, 0)).to_csv(path)
    with pytest.raises(InputError, match=r"points.csv: row 3: point \(y=.*, x=.*\) lies outside"):
        prepare_segmentation(movie.images, points=path, config=CONFIG)
    table.assign(t=FRAMES).to_csv(path)
    with pytest.raises(InputError, match=r"row 0: frame t=4 is not in the movie .*4 frames"):
        prepare_segmentation(movie.images, points=path, config=CONFIG)


def test_points_table_problems(movie, tmp_path) -> None:
    path = tmp_path / "points.csv"
    _points(movie).drop(columns="x").to_csv(path, index=False)
    with pytest.raises(InputError, match=r"lacks the column\(s\) \['x'\]"):
        prepare_segmentation(movie.images, points=path, config=CONFIG)
    _points(movie).assign(t=1.5).to_csv(path, index=False)
    with pytest.raises(InputError, match="column 't' must be an integer, got 1.5"):
        prepare_segmentation(movie.images, points=path, config=CONFIG)
    _points(movie).assign(z=0).to_csv(path, index=False)
    with pytest.raises(InputError, match="has a z column but the movie"):
        prepare_segmentation(movie.images, points=path, config=CONFIG)
    with pytest.raises(InputError, match="no such points table"):
        prepare_segmentation(movie.images, points=tmp_path / "none.csv", config=CONFIG)


def test_the_crops_field_follows_the_cells_size() -> None:
    """The same movie at twice the magnification: twice the field, the same stored crops."""
    small = generate(SyntheticConfig(shape=(96, 96), frames=3, density=6.0, radius=6.0, seed=4))
    big_images = np.kron(small.images, np.ones((1, 2, 2), small.images.dtype))
    big_masks = np.kron(small.masks, np.ones((1, 2, 2), small.masks.dtype))
    config = PrepareConfig(crop_pixels=16)
    a = prepare_segmentation(small.images, small.masks, config=config)
    b = prepare_segmentation(big_images, big_masks, config=config)
    diameter = float(np.median(a.detections.diameters()))
    field = max(16, round(config.crop_cells * diameter))
    assert a.meta["crop_size"] == [field, field] and field > 16  # typical cell diameters
    assert abs(b.meta["crop_size"][0] - 2 * field) <= 1
    same = np.abs(a.crops.astype(int) - b.crops.astype(int)).mean()
    assert same < 0.1 * a.crops.std()  # the cells and their neighbours at one scale
    fixed = prepare_segmentation(big_images, big_masks, config=PrepareConfig(crop_size=40))
    assert fixed.meta["crop_size"] == [40, 40]  # a fixed field wins
    points = small.tracks().detections.table[["t", "y", "x"]]
    no_area = prepare_segmentation(small.images, points=points, config=config)
    assert no_area.meta["crop_size"] == [64, 64]  # points have no size: the fallback
    with pytest.raises(InputError, match="crop_cells must be positive"):
        PrepareConfig(crop_cells=0)
