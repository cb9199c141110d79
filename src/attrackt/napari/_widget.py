"""The proof-reading dock widget: buttons over a :class:`~attrackt.napari.session.ProofreadSession`.

Every decision is the session's; the widget turns clicks into its calls and shows the result:
the viewer steps to the current cell's frame and centres on it, a points layer marks the cell
(yellow), its solver children (cyan), the model's best children (magenta) and the answered ones
(green), in their frame and in the cell's, and a second points layer takes the clicks that give
children by hand. Re-solving and
fine-tuning run in a worker thread with their progress shown.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from attrackt.data import Annotations
from attrackt.errors import InputError
from attrackt.napari.layers import tracks_from_layer, tracks_layer
from attrackt.napari.session import ProofreadSession, SessionConfig

logger = logging.getLogger(__name__)

ROLE_COLOURS = {"cell": "yellow", "solver": "cyan", "model": "magenta", "answer": "lime"}
TRACKS_NAME = "attrackt tracks"
HIGHLIGHTS_NAME = "attrackt cell"
CLICKS_NAME = "attrackt clicks"


def _children_text(children: tuple[int, ...] | None, scores: tuple[float, ...] = ()) -> str:
    if children is None:
        return "-"
    if not children:
        return "none"
    if scores:
        return ", ".join(f"{c} ({s:.2f})" for c, s in zip(children, scores, strict=True))
    return ", ".join(map(str, children))


class ProofreadWidget(QWidget):
    """Load a project or the viewer's tracks layer, step through the ranked cells, answer,
    undo, re-solve, fine-tune. ``session`` (and the ``tracks`` layer that shows its tracks)
    may be given at once, as ``attrackt napari`` does."""

    def __init__(
        self,
        napari_viewer: Any,
        session: ProofreadSession | None = None,
        tracks: Any = None,
        config: SessionConfig | None = None,
    ) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.session: ProofreadSession | None = None
        self.config = config or SessionConfig()
        self.tracks_layer = tracks
        self.worker: Any = None
        self._build()
        if session is not None:
            self.set_session(session, tracks)
        else:
            self._refresh_layer_choice()
            self._enable(False)

    # ---- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)

        load = QGroupBox("Data")
        form = QFormLayout(load)
        self.project_edit = QLineEdit()
        self.project_edit.setPlaceholderText("folder with tracks/, detections.parquet, ...")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_project)
        self.sequence_edit = QLineEdit()
        self.sequence_edit.setPlaceholderText("(only if the project has several)")
        self.open_button = QPushButton("Open project")
        self.open_button.clicked.connect(self._open_project)
        self.journal_edit = QLineEdit()
        self.journal_edit.setPlaceholderText("answers.jsonl (the project's by default)")
        self.layer_combo = QComboBox()
        self.layer_button = QPushButton("Proof-read this layer")
        self.layer_button.clicked.connect(self._use_layer)
        form.addRow("Project", _row(self.project_edit, browse))
        form.addRow("Sequence", _row(self.sequence_edit, self.open_button))
        form.addRow("Journal", self.journal_edit)
        form.addRow("Tracks layer", _row(self.layer_combo, self.layer_button))
        layout.addWidget(load)

        cell = QGroupBox("Cell")
        column = QVBoxLayout(cell)
        self.cell_label = QLabel("no session")
        self.cell_label.setWordWrap(True)
        self.previous_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.rank_spin = QSpinBox()
        self.rank_spin.setMinimum(1)
        self.jump_button = QPushButton("Go to rank")
        self.previous_button.clicked.connect(lambda: self._navigate(self.session.previous))
        self.next_button.clicked.connect(lambda: self._navigate(self.session.next))
        self.jump_button.clicked.connect(
            lambda: self._navigate(lambda: self.session.jump(self.rank_spin.value()))
        )
        column.addWidget(self.cell_label)
        column.addWidget(
            _row(self.previous_button, self.next_button, self.rank_spin, self.jump_button)
        )
        layout.addWidget(cell)

        answer = QGroupBox("Answer")
        column = QVBoxLayout(answer)
        self.accept_button = QPushButton("Accept the solver's children")
        self.alternative_combo = QComboBox()
        self.pick_button = QPushButton("Pick the model's")
        self.none_button = QPushButton("No children")
        self.clicks_button = QPushButton("Use clicked children")
        self.clicks_button.setToolTip(
            f"Click one or two children in a later frame on the '{CLICKS_NAME}' layer"
        )
        self.undo_button = QPushButton("Undo last answer")
        self.advance_check = QCheckBox("Next cell after answering")
        self.advance_check.setChecked(True)
        self.accept_button.clicked.connect(lambda: self._answer(self.session.accept))
        self.pick_button.clicked.connect(
            lambda: self._answer(lambda: self.session.pick(self.alternative_combo.currentIndex()))
        )
        self.none_button.clicked.connect(lambda: self._answer(self.session.no_children))
        self.clicks_button.clicked.connect(self._answer_clicks)
        self.undo_button.clicked.connect(self._undo)
        column.addWidget(self.accept_button)
        column.addWidget(_row(self.alternative_combo, self.pick_button))
        column.addWidget(_row(self.none_button, self.clicks_button))
        column.addWidget(_row(self.undo_button, self.advance_check))
        self.conflict_list = QListWidget()
        self.conflict_list.setToolTip("Double-click a conflict to go to its cell")
        self.conflict_list.itemDoubleClicked.connect(self._go_to_conflict)
        column.addWidget(QLabel("Conflicts"))
        column.addWidget(self.conflict_list)
        layout.addWidget(answer)

        solve = QGroupBox("Solve")
        column = QVBoxLayout(solve)
        self.resolve_button = QPushButton("Re-solve")
        self.finetune_button = QPushButton("Fine-tune + re-solve")
        self.resolve_button.clicked.connect(lambda: self._run(self.session.resolve_steps))
        self.finetune_button.clicked.connect(lambda: self._run(self.session.retrain_steps))
        self.progress = QProgressBar()
        self.progress.setValue(0)
        column.addWidget(_row(self.resolve_button, self.finetune_button))
        column.addWidget(self.progress)
        layout.addWidget(solve)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _enable(self, on: bool) -> None:
        for widget in (
            self.previous_button,
            self.next_button,
            self.rank_spin,
            self.jump_button,
            self.accept_button,
            self.alternative_combo,
            self.pick_button,
            self.none_button,
            self.clicks_button,
            self.undo_button,
            self.resolve_button,
            self.finetune_button,
            self.open_button,
            self.layer_button,
        ):
            widget.setEnabled(on)
        if self.session is None:
            self.open_button.setEnabled(True)
            self.layer_button.setEnabled(True)

    @property
    def busy(self) -> bool:
        """Whether a re-solve or fine-tuning is running."""
        return self.worker is not None

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b" if error else "")
        (logger.warning if error else logger.info)(text)

    # ---- loading ---------------------------------------------------------------------------
    def _browse_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Proof-reading project")
        if folder:
            self.project_edit.setText(folder)

    def _refresh_layer_choice(self) -> None:
        self.layer_combo.clear()
        self.layer_combo.addItems(
            [layer.name for layer in self.viewer.layers if type(layer).__name__ == "Tracks"]
        )

    def _open_project(self) -> None:
        try:
            folder = self.project_edit.text().strip()
            if not folder:
                raise InputError("project", "choose a project folder")
            session = ProofreadSession.open(
                folder,
                sequence=self.sequence_edit.text().strip() or None,
                journal=self.journal_edit.text().strip() or None,
                config=self.config,
            )
        except InputError as err:
            self._say(str(err), error=True)
            return
        self.set_session(session)

    def _use_layer(self) -> None:
        self._refresh_layer_choice()
        try:
            name = self.layer_combo.currentText()
            if not name:
                raise InputError("tracks layer", "the viewer has no tracks layer")
            journal = self.journal_edit.text().strip()
            if not journal:
                raise InputError("journal", "give the journal file the answers go to")
            layer = self.viewer.layers[name]
            tracks = tracks_from_layer(
                layer.data, layer.graph, layer.features, layer.metadata, sequence=name
            )
            session = ProofreadSession(
                None, tracks, None, Annotations.load(journal), config=self.config
            )
        except InputError as err:
            self._say(str(err), error=True)
            return
        self.set_session(session, layer)

    def set_session(self, session: ProofreadSession, tracks: Any = None) -> None:
        """Proof-read with ``session``; ``tracks`` is the layer that shows its tracks (a new
        one when ``None``)."""
        self.session = session
        self.tracks_layer = tracks
        self._show_tracks()
        self._points_layers()
        self._enable(True)
        self._show()
        self._say(f"{session.summary()}; answers go to {session.annotations.path or 'memory'}")

    # ---- layers ----------------------------------------------------------------------------
    def _show_tracks(self) -> None:
        data, kwargs, _ = tracks_layer(self.session.tracks, TRACKS_NAME)
        layer = self.tracks_layer
        if layer is None or layer not in self.viewer.layers:
            self.tracks_layer = self.viewer.add_tracks(data, **kwargs)
            return
        layer.data = data
        layer.features = kwargs["features"]
        layer.graph = kwargs["graph"]
        layer.metadata.update(kwargs["metadata"])

    def _points_layers(self) -> None:
        ndim = 1 + self.session.detections.ndim
        for name in (HIGHLIGHTS_NAME, CLICKS_NAME):
            if name in self.viewer.layers:
                self.viewer.layers.remove(name)
        self.highlights = self.viewer.add_points(
            np.zeros((0, ndim)),
            name=HIGHLIGHTS_NAME,
            size=12,
            face_color="transparent",
            border_width=0.15,
            text={"string": "{role} {id}", "color": "white", "size": 8, "anchor": "upper_left"},
            features={"role": np.zeros(0, str), "id": np.zeros(0, np.int64)},
        )
        self.clicks = self.viewer.add_points(
            np.zeros((0, ndim)), name=CLICKS_NAME, size=8, face_color="lime"
        )

    def _show(self) -> None:
        """Show the current cell: text, alternatives, highlights, the viewer's step and centre."""
        session = self.session
        cell = session.current
        self.rank_spin.setMaximum(max(len(session.ranking), 1))
        self.alternative_combo.clear()
        self.conflict_list.clear()
        self.conflict_list.addItems([c.message for c in session.conflicts])
        highlights = session.highlights(cell)
        if cell is not None:  # the children also where the cell is, to see both at once
            beside = highlights[highlights["role"] != "cell"].assign(t=cell.t)
            highlights = pd.concat([highlights, beside], ignore_index=True)
        axes = list(session.detections.spatial_axes)
        self.highlights.data = highlights[["t", *axes]].to_numpy(np.float64)
        self.highlights.features = highlights[["role", "id"]]
        self.highlights.border_color = [ROLE_COLOURS[r] for r in highlights["role"]] or "white"
        self.clicks.data = np.zeros((0, 1 + len(axes)))
        if cell is None:
            self.cell_label.setText(f"No cell left to proof-read. {session.summary()}")
            return
        where = f"rank {cell.rank} of {len(session.ranking)}" if cell.rank else "not ranked"
        self.cell_label.setText(
            f"<b>cell {cell.id}</b> · frame {cell.t} · {where} · score {cell.score:.2f}<br>"
            f"solver: {_children_text(cell.solver_children)} · model: "
            f"{_children_text(cell.model_children, cell.model_scores)} · answer: "
            f"{_children_text(cell.answer)}"
        )
        if cell.rank:
            self.rank_spin.setValue(cell.rank)
        for option in session.alternatives(cell):
            self.alternative_combo.addItem(f"children {_children_text(option)}")
        self.pick_button.setEnabled(self.alternative_combo.count() > 0 and not self.busy)
        self.viewer.dims.set_point(0, cell.t)
        for axis, value in enumerate(cell.position[:-2], start=1):  # z in 3D
            self.viewer.dims.set_point(axis, value)
        _camera(self.viewer).center = cell.position[-2:]
        self.viewer.layers.selection.active = self.clicks
        self.clicks.mode = "add"

    # ---- actions ---------------------------------------------------------------------------
    def _navigate(self, step) -> None:
        try:
            step()
        except InputError as err:
            self._say(str(err), error=True)
            return
        self._show()

    def _answer(self, give) -> None:
        try:
            answer = give()
        except InputError as err:
            self._say(str(err), error=True)
            return
        if self.advance_check.isChecked() and self.session.current.rank is not None:
            self.session.next()
        self._show()
        conflicts = len(self.session.conflicts)
        note = f"; {conflicts} conflict(s): see the list" if conflicts else ""
        self._say(
            f"cell {answer.id}: children {_children_text(answer.children)} saved{note}",
            error=bool(conflicts),
        )

    def _answer_clicks(self) -> None:
        self._answer(lambda: self.session.give_at(np.asarray(self.clicks.data)))

    def _undo(self) -> None:
        answer = self.session.undo()
        self._show()
        if answer is None:
            self._say("nothing to undo in this session")
        else:
            self._say(
                f"undone: cell {answer.id} is back to {_children_text(self.session.current.answer)}"
            )

    def _go_to_conflict(self, item) -> None:
        row = self.conflict_list.row(item)
        conflict = self.session.conflicts[row]
        self._navigate(lambda: self.session.go_to(conflict.parents[0]))

    def _run(self, steps_of) -> None:
        """Run the session's ``(label, call)`` steps in a worker thread, showing progress."""
        from napari.qt.threading import thread_worker

        try:
            steps = steps_of()
        except InputError as err:
            self._say(str(err), error=True)
            return

        def work():
            for done, (label, step) in enumerate(steps):
                yield done, label
                step()
            yield len(steps), "done"

        self.progress.setRange(0, len(steps))
        self.worker = thread_worker(work)()
        self.worker.yielded.connect(self._progress)
        self.worker.errored.connect(lambda err: self._say(str(err), error=True))
        self.worker.finished.connect(self._finished)
        self._enable(False)
        self.worker.start()

    def _progress(self, state: tuple[int, str]) -> None:
        done, label = state
        self.progress.setValue(done)
        self.progress.setFormat(f"{label} (%v/%m)")
        self._say(f"{label}…" if label != "done" else self.session.summary())

    def _finished(self) -> None:
        self.worker = None
        self._enable(True)
        self._show_tracks()
        self._show()


def _camera(viewer: Any) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def _row(*widgets: QWidget) -> QWidget:
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return box
