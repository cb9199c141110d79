"""A 3D project (``attrackt run`` with a voxel size, a few training steps) in napari (offscreen):
its layers shown true to shape, the widget stepping to a cell's frame and plane, one cell
proof-read by a click on its child."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _movie3d import CHO, CHO_VOXEL, movie_3d, needs_cho, z_sampled
from _tiny_project import tiny_config

pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets", reason="napari is here but Qt cannot load")

from test_napari_plugin import empty  # noqa: E402, F401 (conftest's offscreen viewer, cleared)

from attrackt.data import Annotations  # noqa: E402
from attrackt.pipeline import run_pipeline  # noqa: E402

VOXEL = (2.0, 1.0, 1.0)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("napari3d")
    z_sampled(movie_3d()).write(root / "data", "01")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_pipeline([root / "data" / "01"], root / "p", tiny_config().with_voxel_size(VOXEL))
    finally:
        torch.set_num_threads(threads)
    return root / "p"


def test_a_3d_project_opens_true_to_shape_and_a_cell_is_proofread(viewer, project) -> None:  # noqa: F811
    layers = viewer.open(str(project), plugin="attrackt")
    assert [type(a).__name__ for a in layers] == ["Image", "Labels", "Tracks"]
    assert layers[0].data.shape == (6, 8, 64, 64)  # data in pixels ...
    for layer in layers:  # ... shown with planes 2 px apart
        np.testing.assert_allclose(layer.scale, (1.0, *VOXEL))

    _, widget = viewer.window.add_plugin_dock_widget("attrackt", "Proof-reading")
    widget.layer_button.click()
    session = widget.session
    cell = session.current
    assert cell is not None and len(cell.position) == 3
    assert viewer.dims.current_step[:2] == (cell.t, round(cell.position[0]))  # frame, plane
    np.testing.assert_allclose(widget.view.clicks.scale, (1.0, *VOXEL))

    det = session.detections
    later = np.flatnonzero(det.times == cell.t + 1)
    child = later[np.argmin(np.linalg.norm(det.positions()[later] - cell.position, axis=1))]
    widget.view.clicks.add(np.r_[cell.t + 1, det.positions()[child]])  # in pixels, as napari
    widget.clicks_button.click()
    answers = Annotations.load(project / "answers.jsonl").latest()
    assert answers[cell.id] == (int(det.ids[child]),)


@needs_cho
def test_the_cho_movie_opens_true_to_shape_from_its_project(viewer, tmp_path) -> None:  # noqa: F811
    """A real 3D movie (5 planes 1 µm apart, pixels 0.202 µm) through attrackt run's pipeline
    and into napari: the layers keep the data in pixels and show it true to shape, in units of
    the finest axis (planes 1 / 0.202 = 4.95 pixels apart)."""
    folder = CHO
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_pipeline(
            [folder / "Fluo-N3DH-CHO_02_img.tif"], tmp_path / "p",
            tiny_config().with_voxel_size(CHO_VOXEL),
            masks=folder / "Fluo-N3DH-CHO_02_ERR_SEG.tif",
        )  # fmt: skip
    finally:
        torch.set_num_threads(threads)
    layers = viewer.open(str(tmp_path / "p"), plugin="attrackt")
    assert [type(a).__name__ for a in layers] == ["Image", "Labels", "Tracks"]
    assert layers[0].data.shape == (20, 5, 443, 512)
    for layer in layers:
        np.testing.assert_allclose(layer.scale, (1.0, 1.0 / 0.202, 1.0, 1.0))
    _, widget = viewer.window.add_plugin_dock_widget("attrackt", "Proof-reading")
    widget.layer_button.click()
    cell = widget.session.current
    assert cell is not None and viewer.dims.current_step[:2] == (cell.t, round(cell.position[0]))
