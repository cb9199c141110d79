"""The proof-reading dock widget: buttons and keys over a
:class:`~attrackt.napari.session.ProofreadSession`.

Every decision is the session's; the widget turns clicks and keys into its calls and shows the
result: :class:`~attrackt.napari.display.CellView` zooms to the current cell with its next frame
beside it, a lineage tree shows the cell's track, and rounds (re-solve, fine-tune) run in a
worker thread with their progress, time left and a Cancel button, while answering goes on.

Its panels are built in :mod:`~attrackt.napari._panels`, its keys bound in
:mod:`~attrackt.napari._shortcuts`, its words written in :mod:`~attrackt.napari._widget_text`
and its rounds run by :mod:`~attrackt.napari._widget_rounds`.
"""

from __future__ import annotations

import logging
from typing import Any

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from attrackt.data import Annotations
from attrackt.errors import InputError
from attrackt.napari._display import TRACKS_NAME, CellView, movie_layers
from attrackt.napari._panels import answer_panel, cell_panel, data_panel, solve_panel
from attrackt.napari._pyside import keep_none_alive
from attrackt.napari._shortcuts import KEYS, bind_keys
from attrackt.napari._widget_rounds import RoundsMixin
from attrackt.napari._widget_text import HELP, cell_text, children_text
from attrackt.napari._worker import JobThread
from attrackt.napari.layers import layer_scale, tracks_from_layer, tracks_layer
from attrackt.napari.session import ProofreadSession, SessionConfig

__all__ = ["KEYS", "ProofreadWidget"]

logger = logging.getLogger(__name__)


class ProofreadWidget(RoundsMixin, QWidget):
    """Load a project or the viewer's tracks layer, step through the ranked cells, answer,
    undo, re-solve, fine-tune, export. ``session`` (and the ``tracks`` layer that shows its
    tracks) may be given at once, as ``attrackt napari`` does."""

    def __init__(
        self,
        napari_viewer: Any,
        session: ProofreadSession | None = None,
        tracks: Any = None,
        config: SessionConfig | None = None,
    ) -> None:
        super().__init__()
        keep_none_alive()  # a PySide6 bug would end the session in minutes (see _pyside)
        self.viewer = napari_viewer
        self.session: ProofreadSession | None = None
        self.config = config or SessionConfig()
        self.tracks_layer = tracks
        self.view: CellView | None = None
        self.thread: JobThread | None = None
        self.last_round = ""  # how the last round ended: done, cancelled or failed
        self._watched: QObject | None = None
        self._build()
        self._shortcuts()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.viewer.layers.events.inserted.connect(self._refresh_layer_choice)
        if session is not None:
            self.set_session(session, tracks)
        else:
            self._refresh_layer_choice()
            self._enable(False)

    # ---- layout ----------------------------------------------------------------------------
    def _build(self) -> None:
        """The help line, the panels (:mod:`attrackt.napari._panels`) and the status line, in
        a scroll area."""
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        outer.addWidget(scroll)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        scroll.setWidget(body)
        layout = QVBoxLayout(body)
        self._scroll, self._body = scroll, body

        self.help_label = QLabel(HELP)
        self.help_label.setWordWrap(True)
        self.help_label.setStyleSheet("font-size: 11px")
        layout.addWidget(self.help_label)
        layout.addWidget(data_panel(self))
        layout.addWidget(cell_panel(self))
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.status)
        layout.addWidget(answer_panel(self))
        layout.addWidget(solve_panel(self))
        layout.addStretch(1)
        for combo in (self.layer_combo, self.alternative_combo):  # no widening by content
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(12)
        self._fit_width()

    def _fit_width(self) -> None:
        """As wide as the content needs, so nothing is cut off."""
        bar = self._scroll.verticalScrollBar().sizeHint().width()
        self._scroll.setMinimumWidth(self._body.minimumSizeHint().width() + bar + 4)

    def _shortcuts(self) -> None:
        """One window-wide key per action (:data:`KEYS`); a text field being typed in keeps
        its keys."""
        actions = {
            "next": self.next_button.click,
            "previous": self.previous_button.click,
            "accept": self.accept_button.click,
            **{f"pick{k}": (lambda k=k: self._pick(k - 1)) for k in range(1, 5)},
            "none": self.none_button.click,
            "clicks": self.clicks_button.click,
            "clear": self.clear_button.click,
            "undo": self.undo_button.click,
            "beside": self.beside_check.toggle,
            "back": self.back_button.click,
        }
        self.shortcuts = bind_keys(self, actions)

    def _enable(self, on: bool) -> None:
        answering = (
            self.previous_button,
            self.next_button,
            self.rank_spin,
            self.jump_button,
            self.accept_button,
            self.alternative_combo,
            self.pick_button,
            self.none_button,
            self.clicks_button,
            self.clear_button,
            self.undo_button,
            self.back_button,
            self.beside_check,
            self.export_button,
        )
        for widget in answering:
            widget.setEnabled(on)
        for widget in (self.resolve_button, self.finetune_button):
            widget.setEnabled(on and not self.busy)
        self.cancel_button.setEnabled(self.busy)
        for widget in (self.open_button, self.layer_button):
            widget.setEnabled(not self.busy)

    def _say(self, text: str, error: bool = False) -> None:
        self.status.setText(text)
        self.status.setStyleSheet("color: #ff6b6b" if error else "")
        (logger.warning if error else logger.info)(text)

    # ---- loading ---------------------------------------------------------------------------
    def _browse_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Proof-reading project")
        if folder:
            self.project_edit.setText(folder)

    def _refresh_layer_choice(self, *_: Any) -> None:
        tracks = [a for a in self.viewer.layers if type(a).__name__ == "Tracks"]
        names = [a.name for a in tracks if not a.name.startswith("attrackt ")]
        if names != [self.layer_combo.itemText(i) for i in range(self.layer_combo.count())]:
            self.layer_combo.clear()
            self.layer_combo.addItems(names)
        if self.session is None and not self.project_edit.text():
            found = next((_project_of(a) for a in tracks if _project_of(a)), None)
            if found:  # a project opened with File > Open
                self.project_edit.setText(found[0])
                self.sequence_edit.setText(found[1])

    def _open_project(self) -> None:
        try:
            folder = self.project_edit.text().strip()
            if not folder:
                raise InputError("project", "choose a project folder (Browse…)")
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
                raise InputError("tracks layer", "the viewer has no tracks layer: open a project")
            layer = self.viewer.layers[name]
            project = _project_of(layer)
            journal = self.journal_edit.text().strip()
            if project:
                session = ProofreadSession.open(
                    project[0], sequence=project[1], journal=journal or None, config=self.config
                )
            else:
                if not journal:
                    raise InputError("journal", "give the journal file the answers go to")
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
        one when ``None``). A project's movie and masks are added where the viewer lacks them."""
        self.session = session
        self.tracks_layer = tracks
        if session.project is not None:
            self.project_edit.setText(str(session.project))
            self.sequence_edit.setText(session.sequence)
            self._add_movie(session)
        if session.annotations.path is not None:
            self.journal_edit.setText(str(session.annotations.path))
        self._show_tracks()
        self.view = CellView(self.viewer, session, self.tracks_layer)
        self.view.set_beside(self.beside_check.isChecked())
        self._enable(True)
        self._show()
        self._fit_width()
        where = session.work_dir or "a temporary folder (named when the first round is done)"
        self.round_label.setText(f"Rounds go to {where}")
        self._say(f"{session.summary()}; answers go to {session.annotations.path or 'memory'}")

    def _add_movie(self, session: ProofreadSession) -> None:
        image, masks = movie_layers(self.viewer)
        scale = layer_scale(session.detections)
        if image is None and session.images is not None:
            from attrackt.napari.project import read_images

            try:
                self.viewer.add_image(read_images(session.images), name="image", scale=scale)
            except InputError as err:
                self._say(f"the movie could not be read: {err}", error=True)
        if masks is None and session.masks is not None:
            layer = self.viewer.add_labels(session.masks, name="masks", opacity=0.5, scale=scale)
            layer.contour = 1  # outlines: the movie stays visible

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

    # ---- showing ---------------------------------------------------------------------------
    def _show(self, zoom: bool = True) -> None:
        """Show the current cell: text, alternatives, lineage, and the viewer's layers."""
        session = self.session
        cell = session.current
        self.rank_spin.setMaximum(max(len(session.ranking), 1))
        self.alternative_combo.clear()
        self.conflict_list.clear()
        self.conflict_list.addItems([c.message for c in session.conflicts])
        self.view.show(cell, zoom=zoom)
        lineage = session.lineage(cell)
        self.lineage_view.set_lineage(lineage, -1 if cell is None else cell.id)
        if cell is None:
            self.cell_label.setText(f"No cell left to proof-read. {session.summary()}")
            return
        self.cell_label.setText(cell_text(cell, len(session.ranking), session.strategy))
        if cell.rank:
            self.rank_spin.setValue(cell.rank)
        for number, option in enumerate(session.alternatives(cell), start=1):
            self.alternative_combo.addItem(f"{number}: children {children_text(option)}")
        self.pick_button.setEnabled(self.alternative_combo.count() > 0)

    def _set_beside(self, on: bool) -> None:
        if self.view is not None:
            self.view.set_beside(on)

    def _back(self) -> None:
        if self.view is not None and self.view.cell is not None:
            self.view.show(self.view.cell, zoom=True)

    # ---- actions ---------------------------------------------------------------------------
    def _navigate(self, step) -> None:
        if self.session is None:
            return
        try:
            step()
        except InputError as err:
            self._say(str(err), error=True)
            return
        self._show()

    def _go_to_id(self, id: int) -> None:
        self._navigate(lambda: self.session.go_to(id))

    def _pick(self, index: int) -> None:
        if self.session is not None:
            self._answer(lambda: self.session.pick(index))

    def _answer(self, give) -> None:
        if self.session is None:
            return
        try:
            answer = give()
        except InputError as err:
            self._say(str(err), error=True)
            return
        current = self.session.current
        if self.advance_check.isChecked() and current is not None and current.rank is not None:
            self.session.next()
        self._show()
        conflicts = len(self.session.conflicts)
        note = f"; {conflicts} conflict(s): see the list" if conflicts else ""
        later = " (goes into the next round)" if self.busy else ""
        self._say(
            f"cell {answer.id}: children {children_text(answer.children)} saved{later}{note}",
            error=bool(conflicts),
        )

    def _answer_clicks(self) -> None:
        if self.view is not None:
            self._answer(lambda: self.session.give_at(self.view.clicked()))

    def _clear_clicks(self) -> None:
        if self.view is not None:
            self.view.clicks.data = self.view.clicks.data[:0]

    def _undo(self) -> None:
        if self.session is None:
            return
        answer = self.session.undo()
        self._show()
        if answer is None:
            self._say("nothing to undo")
        else:
            self._say(
                f"undone: cell {answer.id} is back to {children_text(self.session.current.answer)}"
            )

    def _go_to_conflict(self, item) -> None:
        conflict = self.session.conflicts[self.conflict_list.row(item)]
        self._navigate(lambda: self.session.go_to(conflict.parents[0]))

    # ---- the window ------------------------------------------------------------------------
    def showEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Fit the width; watch the window this widget is docked in, to cancel a round when it
        closes."""
        super().showEvent(event)
        self._fit_width()  # fonts and styles are known once shown
        window = self.window()
        if window is not self and window is not self._watched:
            window.installEventFilter(self)
            self._watched = window

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if watched is self._watched and event.type() == QEvent.Type.Close:
            self.shutdown()
        return False

    # ---- export ----------------------------------------------------------------------------
    def _export_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export the tracks to")
        if folder:
            self.export(folder)

    def export(self, folder: str) -> None:
        """Write the current tracks as ``folder/tracks.geff`` and, where the masks are known,
        as the CTC result ``folder/NAME_RES``."""
        from attrackt.napari.project import export_tracks

        session = self.session
        masks = session.masks
        if masks is None and self.view is not None and self.view.masks is not None:
            masks = self.view.masks.data
        name = session.sequence.removesuffix(" tracks").split("/")[-1] or "01"
        try:
            written = export_tracks(session.tracks, folder, name, masks)
        except InputError as err:
            self._say(str(err), error=True)
            return
        note = "" if masks is not None else " (no masks: no CTC result)"
        self._say(f"exported {', '.join(str(p) for p in written)}{note}")


def _project_of(layer: Any) -> tuple[str, str] | None:
    """``(project folder, sequence)`` of a tracks layer the reader made from a project."""
    meta = (getattr(layer, "metadata", None) or {}).get("attrackt") or {}
    return (meta["project"], meta.get("sequence", "")) if meta.get("project") else None
