"""Shared fixtures: the real-data folder, skipped with a reason when absent."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _find_shared_data() -> Path | None:
    env = os.environ.get("ATTRACKT_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The CTC data of ../shared/data (or $ATTRACKT_DATA); the test is skipped when it is absent."""
    path = _find_shared_data()
    if path is None:
        pytest.skip(
            "real data not found: set ATTRACKT_DATA or place the shared data at ../shared/data"
        )
    return path


def deliver_signals() -> None:
    """SIGINT and SIGTERM handled as in a terminal: a test run started in the background has
    SIGINT ignored, which its processes would inherit."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture
def signals_delivered():
    """The test sees SIGINT and SIGTERM as a terminal delivers them (see deliver_signals)."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    deliver_signals()
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.fixture
def single_thread():
    """Run torch on one thread: tiny training loops gain nothing from more, and on a busy
    machine thread contention makes them many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
