"""One progress bar over a whole ``attrackt run``: the planned time, the time spent, the stage
running and the time left (the stages' own bars stay quiet under it)."""

from __future__ import annotations

import threading
import time

from tqdm.auto import tqdm


class JobProgress:
    """A bar of ``seconds`` planned, advanced by the clock from a background thread; the
    running stage shows beside it. Past the plan, the bar's end moves with the time spent."""

    def __init__(self, seconds: float, enabled: bool = True, every: float = 1.0) -> None:
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._bar = tqdm(
            total=max(1, round(seconds)), unit="s", desc="attrackt run", disable=not enabled,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s, "
            "{remaining} left {postfix}",
        )  # fmt: skip
        self._thread = threading.Thread(target=self._tick, args=(every,), daemon=True)
        self._thread.start()

    def stage(self, name: str) -> None:
        """Show ``name`` as the stage running."""
        self._bar.set_postfix_str(name, refresh=False)

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            spent = time.monotonic() - self._start
            if spent >= self._bar.total:
                self._bar.total = round(spent * 1.1) + 1
            self._bar.n = round(spent)
            self._bar.refresh()

    def close(self) -> None:
        """Stop the clock and close the bar (at 100 %)."""
        self._stop.set()
        self._thread.join()
        self._bar.n = self._bar.total = max(1, round(time.monotonic() - self._start))
        self._bar.close()

    def __enter__(self) -> JobProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
