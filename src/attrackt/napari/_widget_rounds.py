"""The proof-reading widget's rounds: start one (re-solve, or fine-tune and re-solve) in a
worker thread (:class:`~attrackt.napari._worker.JobThread`) while answering goes on, show its
progress and time left, apply its outcome or say how it ended, cancel it, and stop it when the
viewer closes."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from qtpy.QtWidgets import QApplication

from attrackt.errors import InputError
from attrackt.napari._worker import JobThread
from attrackt.napari.rounds import RoundOutcome

if TYPE_CHECKING:
    from qtpy.QtWidgets import QLabel, QProgressBar, QPushButton

    from attrackt.napari.session import ProofreadSession

__all__ = ["RoundsMixin"]

logger = logging.getLogger(__name__)


class RoundsMixin:
    """The rounds of :class:`~attrackt.napari._widget.ProofreadWidget`: a mixin that uses the
    widget's session, its *Solve* panel (:func:`~attrackt.napari._panels.solve_panel`) and its
    ``_say``, ``_show``, ``_show_tracks`` and ``_enable``."""

    session: ProofreadSession | None
    thread: JobThread | None
    last_round: str
    progress: QProgressBar
    round_label: QLabel
    cancel_button: QPushButton

    @property
    def busy(self) -> bool:
        """Whether a round (re-solve or fine-tuning) is running."""
        return self.thread is not None

    def _start(self, finetune: bool) -> None:
        """Start a round in a worker thread; answering goes on meanwhile."""
        if self.session is None or self.busy:
            return
        try:
            job = self.session.round(finetune)
        except InputError as err:
            self._say(str(err), error=True)
            return
        self.thread = JobThread(job)
        self.thread.progressed.connect(self._progress)
        self.thread.finished.connect(self._thread_done)
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"{job.labels[0]} (1/{len(job.labels)})")
        self._enable(True)
        self._say(f"{' + '.join(job.labels)} started; answer on meanwhile (next round)")
        self.thread.start()

    def _progress(self) -> None:
        progress = None if self.thread is None else self.thread.progress
        if progress is None:
            return
        if progress.total:
            self.progress.setRange(0, progress.total)
            self.progress.setValue(progress.done)
        else:
            self.progress.setRange(0, 0)  # busy, not counted
        self.progress.setFormat(progress.text())

    def _succeeded(self, outcome: RoundOutcome) -> None:
        self.last_round = "done"
        summary = self.session.apply(outcome)
        self._show_tracks()
        self._show()
        self.round_label.setText(summary.text())
        self._say(summary.text(), error=bool(summary.export_error))

    def _failed(self, message: str, cancelled: bool) -> None:
        self.last_round = "cancelled" if cancelled else "failed"
        self.round_label.setText(message)
        self._say(message, error=not cancelled)

    def _thread_done(self) -> None:
        thread, self.thread = self.thread, None
        thread.wait()  # ``finished`` comes just before the thread ends; let it end first
        if thread.outcome is not None:
            self._succeeded(thread.outcome)
        else:
            self._failed(thread.error, thread.cancelled)
        self.progress.setRange(0, 1)
        self.progress.setValue(int(self.last_round == "done"))
        self.progress.setFormat(self.last_round or "idle")
        self._enable(self.session is not None)

    def _cancel(self) -> None:
        if self.thread is not None:
            self.thread.job.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("cancelling… (at the next step)")
            self._say("cancelling: the round stops at its next step and is not kept")

    def shutdown(self, wait_s: float = 60.0) -> None:
        """Cancel a running round and wait for it to stop (the viewer is closing)."""
        if self.thread is None:
            return
        logger.warning("the viewer is closing: cancelling %s", " + ".join(self.thread.job.labels))
        self.thread.job.cancel()
        if not self.thread.wait(int(wait_s * 1000)):
            logger.error("the round did not stop within %.0f s", wait_s)
            return
        QApplication.processEvents()  # deliver its last signals
        logger.warning("cancelled: nothing of the round was kept")
