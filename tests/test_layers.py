"""The package's two layers: the learning layer (what a GPU machine runs) never imports the
tracking layer or its libraries, so it loads where those are missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_learning_layer_imports_nothing_of_the_tracking_layer():
    done = subprocess.run(
        [sys.executable, str(REPO / "docs" / "import_graph.py"), "--check"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_check_finds_a_climbing_import(tmp_path):
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import import_graph
    finally:
        sys.path.pop(0)
    edges = {"attrackt.train": {"attrackt.link"}, "attrackt.link": {"attrackt.train"}}
    assert import_graph.violations(edges)[:1] == [
        "attrackt.train (learning) imports attrackt.link (tracking)"
    ]


def test_the_architecture_page_shows_todays_graph():
    sys.path.insert(0, str(REPO / "docs"))
    try:
        import import_graph
    finally:
        sys.path.pop(0)
    page = (REPO / "docs" / "architecture.md").read_text()
    assert import_graph.mermaid(import_graph.graph()).strip() in page, (
        "docs/architecture.md's diagram is stale: python docs/import_graph.py --mermaid"
    )
