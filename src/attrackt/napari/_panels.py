"""The proof-reading widget's panels (*Data*, *Cell*, *Answer*, *Solve*), built onto the widget:
each builder makes its group box, names its controls on the widget (``widget.accept_button``,
…) and connects them to the widget's slots (:class:`~attrackt.napari._widget.ProofreadWidget`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
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

from attrackt.napari._lineage import LineageView
from attrackt.napari._widget_text import JOURNAL_NOTE, SCORE_NOTE, legend

if TYPE_CHECKING:
    from attrackt.napari._widget import ProofreadWidget

__all__ = ["answer_panel", "cell_panel", "data_panel", "row", "solve_panel"]


def data_panel(widget: ProofreadWidget) -> QGroupBox:
    """The *Data* panel: a project folder (typed or browsed) and its sequence, the journal, or
    a tracks layer of the viewer to proof-read."""
    load = QGroupBox("Data")
    form = QFormLayout(load)
    widget.project_edit = QLineEdit()
    widget.project_edit.setPlaceholderText("project folder (attrackt run --project)")
    browse = QPushButton("Browse…")
    browse.clicked.connect(widget._browse_project)
    widget.sequence_edit = QLineEdit()
    widget.sequence_edit.setPlaceholderText("(only if the project has several)")
    widget.open_button = QPushButton("Open project")
    widget.open_button.clicked.connect(widget._open_project)
    widget.journal_edit = QLineEdit()
    widget.journal_edit.setPlaceholderText(JOURNAL_NOTE)
    widget.layer_combo = QComboBox()
    widget.layer_button = QPushButton("Proof-read this layer")
    widget.layer_button.clicked.connect(widget._use_layer)
    form.addRow("Project", row(widget.project_edit, browse))
    form.addRow("Sequence", row(widget.sequence_edit, widget.open_button))
    form.addRow("Journal", widget.journal_edit)
    form.addRow("Tracks layer", row(widget.layer_combo, widget.layer_button))
    return load


def cell_panel(widget: ProofreadWidget) -> QGroupBox:
    """The *Cell* panel: the cell line and the markers' legend, stepping through the ranking,
    the lineage tree, and the next frame beside."""
    cell = QGroupBox("Cell")
    column = QVBoxLayout(cell)
    widget.cell_label = QLabel("no session: open a project")
    widget.cell_label.setWordWrap(True)
    widget.cell_label.setToolTip(SCORE_NOTE)
    widget.legend_label = QLabel(legend())
    widget.previous_button = QPushButton("◀ Previous [P]")
    widget.next_button = QPushButton("Next [N] ▶")
    widget.rank_spin = QSpinBox()
    widget.rank_spin.setMinimum(1)
    widget.jump_button = QPushButton("Go to rank")
    widget.previous_button.clicked.connect(lambda: widget._navigate(widget.session.previous))
    widget.next_button.clicked.connect(lambda: widget._navigate(widget.session.next))
    widget.jump_button.clicked.connect(
        lambda: widget._navigate(lambda: widget.session.jump(widget.rank_spin.value()))
    )
    widget.lineage_view = LineageView()
    widget.lineage_view.picked.connect(widget._go_to_id)
    widget.beside_check = QCheckBox("Next frame beside [S]")
    widget.beside_check.setChecked(True)
    widget.beside_check.toggled.connect(widget._set_beside)
    widget.back_button = QPushButton("Back to the cell [G]")
    widget.back_button.clicked.connect(widget._back)
    column.addWidget(widget.cell_label)
    column.addWidget(widget.legend_label)
    column.addWidget(
        row(widget.previous_button, widget.next_button, widget.rank_spin, widget.jump_button)
    )
    caption = QLabel("Lineage (±15 frames; red: likely wrong, green: answered)")
    caption.setWordWrap(True)
    column.addWidget(caption)
    column.addWidget(widget.lineage_view)
    column.addWidget(row(widget.beside_check, widget.back_button))
    return cell


def answer_panel(widget: ProofreadWidget) -> QGroupBox:
    """The *Answer* panel: the solver's children, the model's, none or the clicked ones;
    clearing clicks, undo, and the list of conflicts."""
    answer = QGroupBox("Answer")
    column = QVBoxLayout(answer)
    widget.accept_button = QPushButton("Accept the solver's children [A]")
    widget.alternative_combo = QComboBox()
    widget.pick_button = QPushButton("Pick the model's [1–4]")
    widget.none_button = QPushButton("No children [0]")
    widget.clicks_button = QPushButton("Use clicked children [C]")
    widget.clicks_button.setToolTip(
        "Click one or two children on the 'attrackt clicks' layer: in the next-frame panel "
        "beside the cell, or in a later frame"
    )
    widget.clear_button = QPushButton("Clear clicks [Esc]")
    widget.undo_button = QPushButton("Undo [U]")
    widget.undo_button.setToolTip("Takes back the latest answer, also one of an earlier session")
    widget.advance_check = QCheckBox("Next cell after answering")
    widget.advance_check.setChecked(True)
    widget.accept_button.clicked.connect(lambda: widget._answer(widget.session.accept))
    widget.pick_button.clicked.connect(
        lambda: widget._pick(widget.alternative_combo.currentIndex())
    )
    widget.none_button.clicked.connect(lambda: widget._answer(widget.session.no_children))
    widget.clicks_button.clicked.connect(widget._answer_clicks)
    widget.clear_button.clicked.connect(widget._clear_clicks)
    widget.undo_button.clicked.connect(widget._undo)
    column.addWidget(widget.accept_button)
    column.addWidget(row(widget.alternative_combo, widget.pick_button))
    column.addWidget(row(widget.none_button, widget.clicks_button))
    column.addWidget(row(widget.clear_button, widget.undo_button))
    column.addWidget(widget.advance_check)
    widget.conflict_list = QListWidget()
    widget.conflict_list.setMaximumHeight(60)
    widget.conflict_list.setToolTip("Double-click a conflict to go to its cell")
    widget.conflict_list.itemDoubleClicked.connect(widget._go_to_conflict)
    column.addWidget(QLabel("Conflicts"))
    column.addWidget(widget.conflict_list)
    return answer


def solve_panel(widget: ProofreadWidget) -> QGroupBox:
    """The *Solve* panel: re-solve, fine-tune and re-solve, cancel, the round's progress
    and summary, and export."""
    solve = QGroupBox("Solve")
    column = QVBoxLayout(solve)
    widget.resolve_button = QPushButton("Re-solve")
    widget.finetune_button = QPushButton("Fine-tune + re-solve")
    widget.cancel_button = QPushButton("Cancel")
    widget.cancel_button.setEnabled(False)
    widget.resolve_button.clicked.connect(lambda: widget._start(finetune=False))
    widget.finetune_button.clicked.connect(lambda: widget._start(finetune=True))
    widget.cancel_button.clicked.connect(widget._cancel)
    widget.progress = QProgressBar()
    widget.progress.setValue(0)
    widget.progress.setFormat("idle")
    widget.progress.setTextVisible(True)
    widget.round_label = QLabel("")
    widget.round_label.setWordWrap(True)
    widget.round_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    widget.export_button = QPushButton("Export… (geff, CTC)")
    widget.export_button.clicked.connect(widget._export_dialog)
    column.addWidget(row(widget.resolve_button, widget.finetune_button, widget.cancel_button))
    column.addWidget(widget.progress)
    column.addWidget(widget.round_label)
    column.addWidget(widget.export_button)
    return solve


def row(*widgets: QWidget) -> QWidget:
    """``widgets`` side by side."""
    box = QWidget()
    layout = QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    for widget in widgets:
        layout.addWidget(widget)
    return box
