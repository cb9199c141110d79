"""The proof-reading widget's keys: one per action (:data:`KEYS`), bound window-wide."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import Qt
from qtpy.QtGui import QKeySequence, QShortcut
from qtpy.QtWidgets import QWidget

__all__ = ["KEYS", "bind_keys"]

#: action -> (key, what it does), as the help line and the tooltips tell them
KEYS = {
    "next": ("N", "next cell"),
    "previous": ("P", "previous cell"),
    "accept": ("A", "accept the solver's children"),
    "pick1": ("1", "the model's answer 1"),
    "pick2": ("2", "the model's answer 2"),
    "pick3": ("3", "the model's answer 3"),
    "pick4": ("4", "the model's answer 4"),
    "none": ("0", "no children"),
    "clicks": ("C", "the clicked children"),
    "clear": ("Esc", "clear the clicks"),
    "undo": ("U", "undo the last answer"),
    "beside": ("S", "next frame beside, or not"),
    "back": ("G", "back to the cell (centre and zoom)"),
}


def bind_keys(parent: QWidget, actions: dict[str, Callable[[], object]]) -> dict[str, QShortcut]:
    """A shortcut on ``parent``'s window for each action of :data:`KEYS`, calling
    ``actions[action]``; a text field being typed in keeps its keys."""
    shortcuts: dict[str, QShortcut] = {}
    for action, (key, _) in KEYS.items():
        shortcut = QShortcut(QKeySequence(key), parent)
        shortcut.setContext(Qt.ShortcutContext.WindowShortcut)
        shortcut.activated.connect(actions[action])
        shortcuts[action] = shortcut
    return shortcuts
