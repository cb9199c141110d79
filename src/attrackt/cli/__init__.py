"""The command-line face of attrackt: one thin command per stage, plus the whole pipeline.

Each module holds one group of commands (``data``, ``learn``, ``link``, ``proofread``, ``plot``,
``pipeline``); importing this package registers them all on :data:`app`.
"""

from attrackt.cli import data, learn, link, pipeline, plot, proofread  # noqa: F401 (registers)
from attrackt.cli.common import app
from attrackt.cli.proofread import napari_session_config

__all__ = ["app", "napari_session_config"]
