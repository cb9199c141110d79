"""Stopping training cleanly on SIGINT or SIGTERM: finish the step, save, say how to go on.

:class:`StopSignals` turns the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster's time
limit, ``torchrun`` shutting down) into a request that :func:`attrackt.train.fit` honours after
the current step: it writes its checkpoint and raises :class:`TrainingInterrupted`. A second
signal acts as it would have without this (Ctrl-C raises ``KeyboardInterrupt``, SIGTERM ends the
process). Only the main thread may install signal handlers, so in any other thread (the napari
plugin trains in a worker thread) :class:`StopSignals` does nothing.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after writing ``checkpoint``; running it again goes on.

    A ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it. ``exit_code`` is
    the shell's convention for a process ended by the signal: 128 + its number (130 for SIGINT,
    143 for SIGTERM).
    """

    def __init__(self, signum: int, what: str, step: int, steps: int, checkpoint: Path) -> None:
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        self.summary = (
            f"{what} stopped by {signal.Signals(signum).name} after step {step} of {steps}; "
            f"saved {checkpoint}"
        )
        super().__init__(f"{self.summary}; train again with the same folder to go on from there")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class StopSignals:
    """A context in which SIGINT and SIGTERM set :attr:`received` instead of stopping at once.

    The handlers that were in place come back on exit. A signal that was ignored on entry
    (``SIG_IGN``, as for a background job's SIGINT) stays ignored. Outside the main thread the
    context does nothing and :attr:`received` stays ``None``.
    """

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> StopSignals:
        """Put the handlers in place (in the main thread); returns ``self``."""
        if threading.current_thread() is not threading.main_thread():
            return self
        for signum in SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def restore(self) -> None:
        """Put back the handlers that were in place before :meth:`install`."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}

    def __enter__(self) -> StopSignals:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.restore()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            return
        self.restore()  # a second signal: do what would have been done without us
        signal.raise_signal(signum)
