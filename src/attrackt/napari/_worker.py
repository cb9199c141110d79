"""A Qt thread that runs a round job (:class:`~attrackt.napari.rounds.RoundJob`).

Its signals carry no Python objects (PySide drops queued Python arguments of a deleted sender
with a refcount error): the widget reads :attr:`JobThread.progress` when ``progressed`` comes,
and :attr:`~JobThread.outcome` or :attr:`~JobThread.error` when ``finished`` comes.
"""

from __future__ import annotations

import logging

from qtpy.QtCore import QThread, Signal

from attrackt.errors import InputError
from attrackt.napari.rounds import Cancelled, Progress, RoundJob, RoundOutcome

logger = logging.getLogger(__name__)


class JobThread(QThread):
    """Runs ``job``; ``progressed`` each time :attr:`progress` changes, then ``finished`` with
    :attr:`outcome` set, or :attr:`error` (and :attr:`cancelled` when it was cancelled)."""

    progressed = Signal()

    def __init__(self, job: RoundJob) -> None:
        super().__init__()
        self.job = job
        self.progress: Progress | None = None
        self.outcome: RoundOutcome | None = None
        self.error = ""
        self.cancelled = False

    def _report(self, progress: Progress) -> None:
        self.progress = progress
        self.progressed.emit()

    def run(self) -> None:
        try:
            self.outcome = self.job.run(self._report)
        except Cancelled as err:
            self.error, self.cancelled = str(err), True
        except InputError as err:
            self.error = str(err)
        except Exception as err:  # shown in the widget; the traceback goes to the log
            logger.exception("the round failed")
            self.error = (
                f"{self.job.folder.name} failed ({type(err).__name__}: {err}); nothing of it "
                "was kept. The log has the details."
            )
