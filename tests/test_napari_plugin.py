"""The napari plugin in a real viewer (offscreen Qt): reader, widget, writer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytest.importorskip("qtpy.QtWidgets", reason="napari is here but Qt cannot load")

from attrackt.data import Annotations, Associations, Tracks  # noqa: E402
from attrackt.io.geff import read_geff  # noqa: E402
from attrackt.napari.layers import tracks_from_layer  # noqa: E402
from attrackt.napari.session import ProofreadSession, SessionConfig  # noqa: E402
from attrackt.synthetic import SyntheticConfig, generate  # noqa: E402


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
    from attrackt.napari._display import camera
    from attrackt.napari._widget import ProofreadWidget

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
    y, x = cell.position  # the view centres between the cell and its next-frame panel
    np.testing.assert_allclose(camera(viewer).center[-2:], (y, x + widget.view.shift / 2))
    assert f"cell {cell.id}" in widget.view.labels.features["label"].tolist()

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
    widget.view.clicks.add(np.r_[det.times[row], det.positions()[row]])
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
    from attrackt.napari._display import TRACKS_NAME
    from attrackt.store import Store

    project = tmp_path / "project"  # as attrackt run leaves it
    Store(session.detections, masks={"s": clip.masks}).save(project / "embedded.npz")
    session.tracks.save(project / "tracks")
    session.associations.save(project / "associations.parquet")
    result = CliRunner().invoke(app, ["napari", str(project), "--author", "ann"])
    assert result.exit_code == 0, result.output
    (opened, widget), run = launched
    assert opened is viewer and run == "run"
    assert widget.project_edit.text() == str(project)  # the Project field names it
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
    widget.resolve_button.click()  # the rounds go beside the journal, not to a temporary folder
    settle(widget)
    assert (tmp_path / "proofread" / "ctc_01" / "round001" / "tracks").is_dir()
    assert str(tmp_path / "proofread" / "ctc_01" / "round001") in widget.round_label.text()


# ---- the issue "proof-reading that a biologist can use all day" ------------------------------


def wait_for(condition, seconds: float = 60.0) -> None:
    """Let Qt deliver signals until ``condition()`` holds."""
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)
    assert condition()


def make_project(root: Path, clip, tracks: Tracks, associations=None) -> Path:
    """A project as attrackt run leaves it: the store (masks; the movie's folder in its meta),
    the solver's tracks and the associations."""
    from attrackt.store import Store

    clip.write(root / "ctc", "01")
    store = Store(
        tracks.detections,
        masks={"s": clip.masks},
        meta={"sources": {"s": str(root / "ctc" / "01")}},
    )
    store.save(root / "project" / "embedded.npz")
    tracks.save(root / "project" / "tracks")
    if associations is not None:
        associations.save(root / "project" / "associations.parquet")
    return root / "project"


@pytest.fixture
def docked(viewer, session, clip):
    """The widget on ``session``, docked, over the movie and its masks."""
    from attrackt.napari._widget import ProofreadWidget

    viewer.add_image(clip.images, name="image")
    viewer.add_labels(clip.masks, name="masks")
    widget = ProofreadWidget(viewer, session)
    viewer.window.add_dock_widget(widget, name="proof-reading test")
    return widget


def test_view_zooms_to_the_cell_marks_roles_apart_and_shows_the_next_frame_beside(
    viewer, docked, session, clip
):
    """Point 1: zoomed to the cell, distinct markers, one label per cell, dimmed tracks with
    the lineage bright, the cell's frame and the next side by side (S toggles)."""
    from attrackt.napari._display import (
        DIM,
        FIELD_CELLS,
        GAP,
        LINEAGE_NAME,
        PANEL_IMAGE,
        ROLES,
        canvas_size,
    )
    from attrackt.napari._display import camera as camera_of

    widget, view = docked, docked.view
    cell = session.current  # the solver ends it; the model gives it a child
    assert cell.model_children and not cell.solver_children
    height, width = canvas_size(viewer)
    zoom = camera_of(viewer).zoom
    # the field: a few cells around the cell (here the whole 64 px movie), zoomed to the canvas
    assert view.field == pytest.approx(min(FIELD_CELLS * session.cell_size(), 64))
    assert zoom * (view.field + view.shift) <= width + 1e-6
    assert zoom * view.field == pytest.approx(
        0.94 * min(height, width * view.field / (view.field + view.shift))
    )

    symbols = [str(v) for v in view.highlights.symbol]
    colours = {tuple(c) for c in view.highlights.border_color.tolist()}
    assert "ring" in symbols[0] and ROLES["model"][0] in symbols[-1]
    assert len(set(symbols)) == len(colours) == 2  # cell and model child: apart by both
    texts = view.labels.features["label"].tolist()
    child = cell.model_children[0]
    assert texts[0] == f"cell {cell.id}"
    assert sum(text.startswith(f"M {child} (0.90)") for text in texts) == 2  # there and beside
    assert len(texts) == len(view.labels.data) == 3  # one label per cell and place

    panel = viewer.layers[PANEL_IMAGE]
    t = cell.t
    top, left = (int(np.floor(v - view.field / 2)) for v in cell.position)
    assert panel.translate[0] == t and panel.translate[2] == pytest.approx(
        left + view.field * (1 + GAP)
    )
    y0, x0 = max(top, 0), max(left, 0)
    crop = clip.images[t + 1, y0 : top + panel.data.shape[1], x0 : left + panel.data.shape[2]]
    np.testing.assert_array_equal(
        panel.data[0, y0 - top : y0 - top + crop.shape[0], x0 - left : x0 - left + crop.shape[1]],
        crop,
    )
    assert view.frames.features["title"].tolist() == [f"frame {t}", f"frame {t + 1}"]
    assert widget.tracks_layer.opacity == DIM
    lineage = viewer.layers[LINEAGE_NAME]
    assert cell.id in lineage.features["id"].tolist()
    assert set(lineage.features["id"]) == set(session.lineage(cell)["id"])

    beside = panel  # a click in the panel picks the child in the next frame
    det = session.detections
    row = det.rows_of([child])[0]
    view.clicks.add(np.r_[t, det.positions()[row] + [0, view.shift]])
    np.testing.assert_allclose(view.clicked(), [np.r_[t + 1, det.positions()[row]]])
    widget.clear_button.click()
    assert not len(view.clicks.data)
    widget.beside_check.setChecked(False)
    assert not beside.visible
    np.testing.assert_allclose(camera_of(viewer).center[-2:], session.current.position)


def test_labels_are_moved_apart_where_they_would_overlap():
    from attrackt.napari._display import apart

    anchors = np.array([[3, 10.0, 10.0], [3, 12.0, 14.0], [4, 10.0, 10.0], [3, 10.0, 90.0]])
    placed = apart(anchors, ["M+S 430", "M+S 429", "cell 1", "S 7"], height=5.0, char=2.0)
    np.testing.assert_array_equal(placed[[0, 2, 3]], anchors[[0, 2, 3]])  # nothing in the way
    assert placed[1, 1] == 5.0 and placed[1, 2] == 14.0  # one label's height above the first


def test_lineage_view_marks_the_cell_and_goes_to_a_clicked_cell(docked, session):
    from qtpy.QtCore import QPoint, Qt
    from qtpy.QtTest import QTest

    widget = docked
    kids = session.tracks.children()
    start = min(kids, key=lambda p: session.detections.times[session.detections.rows_of([p])[0]])
    widget._go_to_id(start)  # a cell with a lineage
    lineage = session.lineage()
    assert start in lineage["id"].tolist() and len(lineage) > 2
    assert set(kids[start]) <= set(lineage["id"])
    view = widget.lineage_view
    view.resize(300, view.height())
    other = next(
        i for i in lineage["id"].tolist() if i != session.current.id and i in session._table.index
    )
    point = view._layout()[other]
    QTest.mouseClick(view, Qt.MouseButton.LeftButton, pos=QPoint(int(point.x()), int(point.y())))
    assert session.current.id == other


def test_help_explains_every_key_and_the_score(docked):
    from attrackt.napari._widget import KEYS

    text = docked.help_label.text()
    assert "Score" in text and "disagrees" in text
    assert all(key in text for action, (key, _) in KEYS.items() if action not in ("pick2", "pick3"))
    assert "1–4" in text
    assert text.count("<br>") == 1  # two lines


@pytest.fixture(scope="module")
def big_clip():
    return generate(
        SyntheticConfig(shape=(128, 128), frames=8, density=22, division_rate=0.1, step=3, seed=5)
    )


def test_keyboard_alone_answers_100_cells_steps_and_undoes(viewer, big_clip, tmp_path):
    """Point 7 and "done when": every answer, next/previous and undo are keys; 100 cells are
    answered with the keyboard alone."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest
    from qtpy.QtWidgets import QApplication

    from attrackt.napari._widget import ProofreadWidget

    gt = big_clip.tracks("s")
    assoc = Associations.from_arrays(gt.edges[:, 0], gt.edges[:, 1], np.full(len(gt.edges), 0.6))
    journal = Annotations.load(tmp_path / "answers.jsonl")
    session = ProofreadSession(None, gt, assoc, journal, work_dir=tmp_path / "rounds")
    assert len(session.ranking) > 110
    widget = ProofreadWidget(viewer, session)
    viewer.window.add_dock_widget(widget, name="keys")
    viewer.window.show()
    window = widget.window()
    window.activateWindow()
    QApplication.processEvents()

    def press(key: str) -> None:
        QTest.keyClick(window, key if len(key) == 1 else getattr(Qt.Key, f"Key_{key}"))
        QApplication.processEvents()

    first = session.current
    press("n")
    assert session.current.rank == 2
    press("p")
    assert session.current.id == first.id
    keys = ["a", "0", "1", "a", "2"]
    expected = {}
    for number in range(100):
        cell = session.current
        options = session.alternatives(cell)
        key = keys[number % len(keys)]
        if key in "12" and len(options) < int(key):
            key = "a"
        expected[cell.id] = {
            "a": cell.solver_children,
            "0": (),
            "1": options[0] if options else None,
            "2": options[1] if len(options) > 1 else None,
        }[key]
        press(key)
    latest = Annotations.load(tmp_path / "answers.jsonl").latest()
    assert len(latest) == 100
    assert {i: tuple(c) for i, c in latest.items()} == {i: tuple(c) for i, c in expected.items()}
    last = list(expected)[-1]
    press("u")
    assert last not in Annotations.load(tmp_path / "answers.jsonl").latest()
    assert session.current.id == last

    det = session.detections  # clicks and C, Esc
    child = int(det.ids[det.times == session.current.t + 1][0])
    row = det.rows_of([child])[0]
    widget.view.clicks.add(np.r_[det.times[row], det.positions()[row]])
    press("Escape")
    assert not len(widget.view.clicks.data)
    widget.view.clicks.add(np.r_[det.times[row], det.positions()[row]])
    press("c")
    assert Annotations.load(tmp_path / "answers.jsonl").latest()[last] == (child,)
    press("s")
    assert not widget.beside_check.isChecked()
    viewer.window._qt_window.hide()


def test_undo_goes_on_across_sessions(docked, session, tmp_path):
    from attrackt.napari._widget import ProofreadWidget

    cell = session.current
    docked.accept_button.click()
    docked.none_button.click()
    reopened = ProofreadSession(
        None, session.tracks, session.associations, Annotations.load(tmp_path / "answers.jsonl")
    )
    widget = ProofreadWidget(docked.viewer, reopened)
    widget.undo_button.click()
    widget.undo_button.click()
    assert Annotations.load(tmp_path / "answers.jsonl").latest() == {}
    assert reopened.current.id == cell.id
    widget.undo_button.click()
    assert "nothing to undo" in widget.status.text()


@pytest.fixture(scope="module")
def base_model(clip, tmp_path_factory):
    """A tiny association model trained for 4 steps on the clip."""
    import torch

    from attrackt.features import regionprops_features
    from attrackt.model import TransformerConfig, WindowConfig
    from attrackt.train import TrainConfig
    from attrackt.training import AssociationTrainConfig, train_association_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("base")
    gt = clip.tracks("s")
    det = regionprops_features(clip.images, clip.masks, gt.detections)
    det = det.with_vectors(embedding=det.table[det.feature_columns].to_numpy(np.float32))
    fast = TrainConfig(steps=4, batch_size=4, lr=1e-3, device="cpu", progress=False)
    model = TransformerConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1)
    windows = WindowConfig(window=3)
    config = AssociationTrainConfig(
        model=model, windows=windows, train=fast, heads_width=8, val_frames=0
    )
    train_association_model(det, None, config, out)
    torch.set_num_threads(threads)
    return det, out / "last.pt"


def endless_finetuning():
    """Fine-tuning that runs until cancelled (10,000 steps of a tiny model)."""
    from attrackt.finetune import FinetuneConfig
    from attrackt.model.lora import LoRAConfig
    from attrackt.predict import PredictConfig
    from attrackt.train import TrainConfig

    train = TrainConfig(
        steps=10, batch_size=2, lr=1e-3, device="cpu", progress=False, checkpoint_every=0
    )
    return SessionConfig(
        finetune=FinetuneConfig(lora=LoRAConfig(rank=2, alpha=2.0), min_steps=10_000, train=train),
        predict=PredictConfig(tta=False, device="cpu", progress=False),
    )


@pytest.fixture
def tuning(viewer, session, base_model, tmp_path, single_thread):
    """The widget on a session that can fine-tune (for ever), one answer given."""
    from attrackt.napari._widget import ProofreadWidget

    det, checkpoint = base_model
    tunable = ProofreadSession(
        det, session.tracks, session.associations, session.annotations,
        checkpoint=checkpoint, config=endless_finetuning(), work_dir=tmp_path / "rounds",
    )  # fmt: skip
    widget = ProofreadWidget(viewer, tunable)
    viewer.window.add_dock_widget(widget, name="tuning")
    widget.accept_button.click()
    return widget


def test_fine_tuning_shows_steps_and_time_left_answers_go_on_and_cancel_keeps_no_round(
    tuning, tmp_path
):
    """Point 2 and "done when": progress with steps and time left, answering during the job
    (into the next round), Cancel, and no half-written round."""
    widget = tuning
    widget.finetune_button.click()
    assert widget.busy and widget.cancel_button.isEnabled()
    assert not widget.finetune_button.isEnabled() and not widget.resolve_button.isEnabled()
    wait_for(lambda: "left" in widget.progress.format())
    text = widget.progress.format()
    assert text.startswith("fine-tuning (1/3)") and "/10000 steps" in text
    assert widget.progress.maximum() == 10_000 and widget.progress.value() >= 1
    cell = widget.session.current
    assert widget.accept_button.isEnabled()
    widget.accept_button.click()  # answering goes on
    assert Annotations.load(tmp_path / "answers.jsonl").latest()[cell.id] == cell.solver_children
    assert "next round" in widget.status.text()
    widget.cancel_button.click()
    settle(widget)
    assert widget.last_round == "cancelled" and widget.progress.format() == "cancelled"
    assert "cancelled" in widget.status.text() and "ff6b6b" not in widget.status.styleSheet()
    assert list((tmp_path / "rounds").glob("*")) == []  # no round, no partial folder
    assert widget.finetune_button.isEnabled()


def test_closing_the_window_during_fine_tuning_cancels_it_at_once(tuning, tmp_path, caplog):
    """Point 6: closing stops the job promptly, says so, and keeps no empty round."""
    from qtpy.QtGui import QCloseEvent

    widget = tuning
    widget.finetune_button.click()
    wait_for(lambda: widget.progress.value() >= 1)
    widget.viewer.window.show()  # the widget, shown, watches the window it is docked in
    try:
        with caplog.at_level("WARNING"):
            widget.eventFilter(widget.window(), QCloseEvent())
            assert not widget.busy  # stopped before the window goes
    finally:
        widget.viewer.window._qt_window.hide()
    settle(widget, 5)
    assert (
        "cancelling fine-tuning" in caplog.text and "nothing of the round was kept" in caplog.text
    )
    assert list((tmp_path / "rounds").glob("*")) == []


def test_errors_show_in_red_and_leave_no_running_job(docked, session, tmp_path, monkeypatch):
    """Point 3: a contradictory answer and a failing step are red errors, the bar is not left
    running, and the status stays in sight in a window 960 px high."""
    from qtpy.QtCore import QPoint

    import attrackt.link

    widget = docked
    kids = session.tracks.children()
    first, second = [p for p, c in kids.items() if len(c) == 1][:2]
    session.go_to(first)
    session.give(kids[first])
    session.go_to(second)
    session.give(kids[first])  # the same child for two parents
    widget.resolve_button.click()
    assert not widget.busy and "contradictory" in widget.status.text()
    assert "ff6b6b" in widget.status.styleSheet()
    session.give(kids[second])

    def broken(*args, **kwargs):
        raise RuntimeError("the solver broke")

    monkeypatch.setattr(attrackt.link, "link", broken)
    widget.resolve_button.click()
    settle(widget)
    assert widget.last_round == "failed" and widget.progress.format() == "failed"
    assert "the solver broke" in widget.status.text() and "ff6b6b" in widget.status.styleSheet()
    assert not (tmp_path / "rounds").exists() or list((tmp_path / "rounds").glob("*")) == []

    widget.resize(420, 960)
    widget.show()
    bottom = widget.status.mapTo(widget, QPoint(0, widget.status.height())).y()
    assert bottom < 960


def test_file_open_and_the_plugin_menu_open_a_project_with_its_movie(
    viewer, session, clip, tmp_path
):
    """Point 4: File > Open reads a project (movie, masks, tracks) and the widget opens it;
    Plugins > Proof-reading > Open project shows the movie and masks too."""
    from attrackt.napari._reader import get_reader

    project = make_project(tmp_path, clip, session.tracks, session.associations)
    assert get_reader(str(project)) is not None
    layers = viewer.open(str(project), plugin="attrackt")
    assert [type(a).__name__ for a in layers] == ["Image", "Labels", "Tracks"]
    np.testing.assert_array_equal(layers[0].data, clip.images)
    _, widget = viewer.window.add_plugin_dock_widget("attrackt", "Proof-reading")
    assert widget.project_edit.text() == str(project.absolute())
    widget.layer_button.click()
    assert widget.session is not None and widget.session.project == project.absolute()
    assert widget.session.annotations.path == project.absolute() / "answers.jsonl"
    assert [type(a).__name__ for a in viewer.layers].count("Image") == 2  # the movie + the panel

    viewer.layers.clear()
    viewer.window.remove_dock_widget("all")
    _, widget = viewer.window.add_plugin_dock_widget("attrackt", "Proof-reading")
    widget.project_edit.setText(str(project))
    widget.open_button.click()
    np.testing.assert_array_equal(viewer.layers["image"].data, clip.images)
    np.testing.assert_array_equal(viewer.layers["masks"].data, clip.masks)


def test_a_round_is_summarised_keeps_the_project_current_and_exports(
    viewer, session, clip, tmp_path, monkeypatch
):
    """Point 5: after a re-solve the widget says what changed, the project's tracks.geff and
    result/ hold the new tracks, and Export writes geff and CTC where asked."""
    from qtpy.QtWidgets import QFileDialog

    from attrackt.napari._widget import ProofreadWidget

    project = make_project(tmp_path, clip, session.tracks, session.associations)
    opened = ProofreadSession.open(project)
    widget = ProofreadWidget(viewer, opened)
    widget.pick_button.click()  # the link the solver missed
    widget.resolve_button.click()
    settle(widget)
    text = widget.round_label.text()
    assert "round001: 1 links changed (+1, −0) with 1 answers pinned" in text
    assert "Answered 1 of the top" in text and "cells left with score ≥ 0.5" in text
    assert "tracks.geff" in text and "s_RES" in text
    assert "the model's associations are" in text  # the guard's verdict, in words
    assert read_geff(project / "tracks.geff").edges.tolist() == opened.tracks.edges.tolist()
    assert (project / "result" / "s_RES" / "res_track.txt").is_file()

    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a: str(tmp_path / "out"))
    widget.export_button.click()
    assert (
        read_geff(tmp_path / "out" / "tracks.geff").edges.tolist() == opened.tracks.edges.tolist()
    )
    assert (tmp_path / "out" / "s_RES" / "res_track.txt").is_file()


def test_the_widget_keeps_none_alive_against_pysides_lost_references(viewer):
    """A PySide6 bug takes references from None on each Qt event; a day's events would free it
    and abort Python (Python < 3.12). The widget gives None references to spare."""
    import sys

    from attrackt.napari._pyside import _SPARE
    from attrackt.napari._widget import ProofreadWidget

    ProofreadWidget(viewer)
    if sys.version_info < (3, 12) and "PySide6" in sys.modules:
        assert sys.getrefcount(None) > _SPARE // 2
