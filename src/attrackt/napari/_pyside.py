"""A guard against a PySide6 bug that ends napari sessions on Python < 3.12.

With PySide6 6.12 every call of a Python override of a Qt virtual (napari's main window
``event``, its canvas's mouse handlers, any ``paintEvent``) takes one to three references from
``None`` that it never gave (measured: 300 events to napari's window, -300; 200 mouse moves over
the canvas, -409). ``None`` starts with ~115,000 references in a napari process, so after some
ten minutes of moving the mouse it is freed and Python aborts ("none_dealloc: deallocating
None"). Python 3.12 made ``None`` immortal; on earlier versions :func:`keep_none_alive` gives it
the references it will lose, once per process.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

_SPARE = 1 << 40  # references: more than a lifetime of events can take
_done = False


def keep_none_alive() -> None:
    """Give ``None`` spare references where PySide6 runs on Python < 3.12 (once)."""
    global _done
    if _done or sys.version_info >= (3, 12) or "PySide6" not in sys.modules:
        return
    ctypes.c_ssize_t.from_address(id(None)).value += _SPARE
    _done = True
    logger.debug("PySide6 on Python %d.%d: None kept alive", *sys.version_info[:2])
