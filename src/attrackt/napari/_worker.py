"""A Qt thread that runs a round job (:class:`~attrackt.napari.rounds.RoundJob`) and reports
back through signals, delivered in the widget's thread."""

from __future__ import annotations

import logging

from qtpy.QtCore import QThread, Signal

from attrackt.errors import InputError
from attrackt.napari.rounds import Cancelled, RoundJob

logger = logging.getLogger(__name__)


class JobThread(QThread):
    """Runs ``job``: ``progressed(Progress)`` while it runs, then ``succeeded(RoundOutcome)``
    or ``failed(message, cancelled)``; ``finished`` comes last either way."""

    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, bool)

    def __init__(self, job: RoundJob) -> None:
        super().__init__()
        self.job = job

    def run(self) -> None:
        try:
            outcome = self.job.run(self.progressed.emit)
        except Cancelled as err:
            self.failed.emit(str(err), True)
        except InputError as err:
            self.failed.emit(str(err), False)
        except Exception as err:  # shown in the widget; the traceback goes to the log
            logger.exception("the round failed")
            self.failed.emit(
                f"{self.job.folder.name} failed ({type(err).__name__}: {err}); nothing of it "
                "was kept. The log has the details.",
                False,
            )
        else:
            self.succeeded.emit(outcome)
