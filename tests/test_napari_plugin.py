"""The napari plugin in a real viewer (offscreen Qt): reader, widget, writer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets", reason="napari is here but Qt cannot load")

from attrackt.data import Annotations, Associations, Tracks  # noqa: E402
from attrackt.io.geff import read_geff  # noqa: E402
from attrackt.napari.layers import tracks_from_layer  # noqa: E402
from attrackt.napari.session import ProofreadSession  # noqa: E402
from attrackt.synthetic import SyntheticConfig, generate  # noqa: E402

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "attrackt" / "napari" / "napari.yaml"


def _prime_gl_limits() -> None:
    """napari asks OpenGL for its limits when it makes a layer's visual; on a machine without
    OpenGL (a headless CI runner) the answer is None and napari fails. Give it modest limits
    there; nothing is drawn in these tests (the viewer is never shown)."""
    from types import SimpleNamespace

    try:
        from napari._vispy.utils import gl as napari_gl

        napari_gl.get_gl_extensions()
        return  # a real OpenGL context answered
    except AttributeError:
        pass
    except ImportError:
        pytest.skip("no OpenGL here, and napari's OpenGL helpers moved")
    real = napari_gl.gl
    napari_gl.get_max_texture_sizes.cache_clear()
    napari_gl.gl = SimpleNamespace(
        GL_EXTENSIONS=real.GL_EXTENSIONS,
        GL_MAX_TEXTURE_SIZE=real.GL_MAX_TEXTURE_SIZE,
        glGetParameter=lambda name: "" if name == real.GL_EXTENSIONS else 2048,
    )
    try:
        napari_gl.get_gl_extensions()
        napari_gl.get_max_texture_sizes()
    finally:
        napari_gl.gl = real


@pytest.fixture(scope="module")
def viewer():
    """One offscreen viewer for the module, with the plugin registered (from the manifest
    file where the installed package does not declare it yet)."""
    import npe2

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    manager = npe2.PluginManager.instance()
    try:
        manager.get_manifest("attrackt")
    except KeyError:
        manager.register(npe2.PluginManifest.from_file(MANIFEST))
    _prime_gl_limits()
    view = napari.Viewer(show=False)
    yield view
    view.close()


@pytest.fixture(autouse=True)
def empty(viewer):
    viewer.layers.clear()
    viewer.window.remove_dock_widget("all")
    yield


@pytest.fixture
def launched(viewer, monkeypatch):
    """``attrackt napari`` on the module's viewer, without napari's event loop; the list gets
    what :func:`open_viewer` returned, ``(viewer, widget)``, then ``"run"``."""
    from attrackt.napari import viewer as launcher

    made = []
    real = launcher.open_viewer
    monkeypatch.setattr(launcher, "open_viewer", lambda *a, **k: made.append(real(*a, **k)))
    monkeypatch.setattr(napari, "Viewer", lambda show=True: viewer)
    monkeypatch.setattr(napari, "run", lambda: made.append("run"))
    return made


@pytest.fixture(scope="module")
def clip():
    return generate(
        SyntheticConfig(shape=(64, 64), frames=6, density=10, division_rate=0.2, step=3, seed=3)
    )


def settle(widget, seconds: float = 60.0) -> None:
    """Let Qt deliver the worker's signals until it is done."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while widget.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    QApplication.processEvents()
    assert not widget.busy


def test_reader_gives_image_labels_and_tracks_of_a_ctc_folder(viewer, clip, tmp_path):
    from attrackt.napari._reader import get_reader

    clip.write(tmp_path / "ctc", "01")
    assert get_reader(str(tmp_path)) is None  # an empty folder is not for this reader
    layers = viewer.open(str(tmp_path / "ctc"), plugin="attrackt")
    kinds = {type(layer).__name__: layer for layer in layers}
    assert [layer.name for layer in layers] == ["ctc/01 image", "ctc/01 masks", "ctc/01 tracks"]
    np.testing.assert_array_equal(kinds["Image"].data, clip.images)
    np.testing.assert_array_equal(kinds["Labels"].data, clip.masks)
    truth = clip.tracks("ctc/01")
    layer = kinds["Tracks"]
    back = tracks_from_layer(layer.data, layer.graph, layer.features, layer.metadata)
    assert np.array_equal(back.detections.ids, truth.detections.ids)
    assert np.array_equal(back.edges, truth.edges)
    np.testing.assert_allclose(back.detections.positions(), truth.detections.positions())


def test_writer_writes_a_geff_that_reads_back_equal(viewer, clip, tmp_path):
    clip.write(tmp_path / "ctc", "01")
    layer = viewer.open(str(tmp_path / "ctc" / "01_GT" / "TRA"), plugin="attrackt")[-1]
    written = napari.save_layers(str(tmp_path / "out.geff"), [layer], plugin="attrackt")
    assert written == [str(tmp_path / "out.geff")]
    truth = clip.tracks("ctc/01")
    assert read_geff(tmp_path / "out.geff").equals(truth)
    again = viewer.open(str(tmp_path / "out.geff"), plugin="attrackt")
    assert [type(a).__name__ for a in again] == ["Tracks"]
    np.testing.assert_array_equal(again[0].data, layer.data)


@pytest.fixture
def session(clip, tmp_path):
    """A session whose solver missed one link, with associations scoring the true links."""
    gt = clip.tracks("s")
    wrong = next(p for p, c in gt.children().items() if len(c) == 1)
    solver = Tracks(gt.detections, gt.edges[gt.edges[:, 0] != wrong])
    assoc = Associations.from_arrays(gt.edges[:, 0], gt.edges[:, 1], np.full(len(gt.edges), 0.9))
    journal = Annotations.load(tmp_path / "answers.jsonl")
    return ProofreadSession(None, solver, assoc, journal, work_dir=tmp_path / "rounds")


def test_widget_docks_steps_to_the_ranked_cell_and_journals_answers(viewer, session, clip):
    from attrackt.napari._widget import ProofreadWidget, _camera

    dock, plugin_widget = viewer.window.add_plugin_dock_widget("attrackt", "Proof-reading")
    assert isinstance(plugin_widget, ProofreadWidget) and plugin_widget.session is None
    widget = ProofreadWidget(viewer, session)
    viewer.window.add_dock_widget(widget, name="proof-reading test")
    last = clip.images.shape[0] - 1
    viewer.dims.set_point(0, last)  # no ranked cell is in the last frame
    widget.next_button.click()
    cell = session.current
    assert cell.rank == 2
    assert viewer.dims.current_step[0] == cell.t != last
    np.testing.assert_allclose(_camera(viewer).center[-2:], cell.position)
    marked = widget.highlights.features
    assert marked.loc[marked["role"] == "cell", "id"].tolist() == [cell.id]

    widget.accept_button.click()
    journal = Annotations.load(session.annotations.path).latest()
    assert journal == {cell.id: cell.solver_children}
    assert session.current.rank == 3  # on to the next cell

    target = session.current
    child = next(iter(session.tracks.children().get(target.id, [])), None)
    det = session.detections
    if child is None:
        child = int(det.ids[det.times == target.t + 1][0])
    row = det.rows_of([child])[0]
    widget.clicks.add(np.r_[det.times[row], det.positions()[row]])
    widget.clicks_button.click()
    assert Annotations.load(session.annotations.path).latest()[target.id] == (child,)

    widget.undo_button.click()
    assert target.id not in Annotations.load(session.annotations.path).latest()
    assert session.current.id == target.id


def test_resolve_runs_in_a_worker_and_updates_the_tracks_layer(viewer, session, clip):
    from attrackt.napari._widget import ProofreadWidget

    widget = ProofreadWidget(viewer, session)
    first = session.current  # the cell whose link the solver missed
    assert not first.solver_children
    widget.pick_button.click()
    answered = Annotations.load(session.annotations.path).latest()[first.id]
    assert answered  # the model's child
    widget.resolve_button.click()
    settle(widget)
    layer = widget.tracks_layer
    shown = tracks_from_layer(layer.data, layer.graph, layer.features, layer.metadata)
    assert (first.id, answered[0]) in set(map(tuple, shown.edges.tolist()))
    assert widget.progress.value() == widget.progress.maximum() == 1


def test_cli_opens_a_project_with_the_widget_docked(viewer, session, clip, launched, tmp_path):
    from typer.testing import CliRunner

    from attrackt.cli import app
    from attrackt.napari._widget import TRACKS_NAME
    from attrackt.store import Store

    project = tmp_path / "project"  # as attrackt run leaves it
    Store(session.detections, masks={"s": clip.masks}).save(project / "embedded.npz")
    session.tracks.save(project / "tracks")
    session.associations.save(project / "associations.parquet")
    result = CliRunner().invoke(app, ["napari", str(project), "--author", "ann"])
    assert result.exit_code == 0, result.output
    (opened, widget), run = launched
    assert opened is viewer and run == "run"
    assert widget.session.current.id == session.current.id  # the same ranking
    assert viewer.dims.current_step[0] == session.current.t
    assert TRACKS_NAME in viewer.layers
    np.testing.assert_array_equal(viewer.layers["masks"].data, clip.masks)
    widget.none_button.click()
    answer = Annotations.load(project / "answers.jsonl").history[-1]
    assert (answer.id, answer.children, answer.author) == (session.current.id, (), "ann")


def test_cli_opens_a_ctc_folder_and_proofreads_its_tracks_layer(viewer, clip, launched, tmp_path):
    from typer.testing import CliRunner

    from attrackt.cli import app

    clip.write(tmp_path / "ctc", "01")
    journal = tmp_path / "mine.jsonl"
    result = CliRunner().invoke(
        app, ["napari", str(tmp_path / "ctc"), "--journal", str(journal), "--sequence", "01"]
    )
    assert result.exit_code == 0, result.output
    widget = launched[0][1]
    assert widget.tracks_layer is viewer.layers["ctc/01 tracks"]
    assert widget.session.strategy == "random"  # no model: no confidence
    cell = widget.session.current
    widget.accept_button.click()
    assert Annotations.load(journal).latest() == {cell.id: cell.solver_children}
