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


# ---- napari ------------------------------------------------------------------------------

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "attrackt" / "napari" / "napari.yaml"


def _prime_gl_limits() -> None:
    """napari asks OpenGL for its limits when it makes a layer's visual; on a machine without
    OpenGL (a headless CI runner) the answer is None and napari fails. Give it modest limits
    there; nothing is drawn in these tests (the viewer is never shown)."""
    from types import SimpleNamespace

    try:
        from napari._vispy.utils import gl as napari_gl

        napari_gl.get_gl_extensions()
        return  # a real OpenGL context answered
    except AttributeError:
        pass
    except ImportError:
        pytest.skip("no OpenGL here, and napari's OpenGL helpers moved")
    real = napari_gl.gl
    napari_gl.get_max_texture_sizes.cache_clear()
    napari_gl.gl = SimpleNamespace(
        GL_EXTENSIONS=real.GL_EXTENSIONS,
        GL_MAX_TEXTURE_SIZE=real.GL_MAX_TEXTURE_SIZE,
        glGetParameter=lambda name: "" if name == real.GL_EXTENSIONS else 2048,
    )
    try:
        napari_gl.get_gl_extensions()
        napari_gl.get_max_texture_sizes()
    finally:
        napari_gl.gl = real


@pytest.fixture(scope="session")
def viewer():
    """One offscreen napari viewer for the whole run, with the plugin registered (from the
    manifest file where the installed package does not declare it yet). One, not one per
    module: a closed viewer leaves its activity dialog connected to napari's progress bars, and
    the next viewer's first progress bar then fails ("Signal source has been deleted")."""
    napari = pytest.importorskip("napari")
    pytest.importorskip("qtpy.QtWidgets", reason="napari is here but Qt cannot load")
    import npe2

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    manager = npe2.PluginManager.instance()
    try:
        manager.get_manifest("attrackt")
    except KeyError:
        manager.register(npe2.PluginManifest.from_file(MANIFEST))
    _prime_gl_limits()
    view = napari.Viewer(show=False)
    yield view
    view.close()
