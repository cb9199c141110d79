"""A 3D project (``attrackt run`` with a voxel size, a few training steps) in napari (offscreen):
its layers shown true to shape, the widget stepping to a cell's frame and plane, one cell
proof-read by a click on its child."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _movie3d import movie_3d, z_sampled
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
