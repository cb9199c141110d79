"""PROJECT/report.html: its sections from what a project holds, self-contained, and rendered by
a headless Chromium (skipped where there is none)."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from attrackt.pipeline import STAGES, PipelineConfig, run_pipeline
from attrackt.report import build_report, write_report
from attrackt.store import Store
from attrackt.synthetic import SyntheticConfig, generate

SECTIONS = ("summary", "scores", "sequences", "training", "proofread", "settings")
GUARD = {
    "verdict": "down-weighted",
    "association_weight": 0.25,
    "reason": "the associations disagree with the motion in 31% of the links",
    "criterion": {"agreement": 0.69, "threshold": 0.8},
}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A finished run on a tiny synthetic movie with its ground truth (a few training steps)."""
    import torch

    root = tmp_path_factory.mktemp("report")
    generate(SyntheticConfig(shape=(96, 96), frames=8, density=4.0, seed=3)).write(root, "01")
    config = PipelineConfig.quick(seed=0, device="cpu")
    config.embed.train.steps = config.train.train.steps = 10
    config.train.train.val_every = config.train.train.checkpoint_every = 5
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return run_pipeline([root / "01"], root / "project", config).project
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def copy(project, tmp_path):
    """A copy of the project to change."""
    return shutil.copytree(project, tmp_path / "project")


def _images(text: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', text)


def _check_self_contained(text: str) -> None:
    assert "<script" not in text and "<link" not in text and "could not be drawn" not in text
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing from the network
    for uri in _images(text):
        assert uri.startswith("data:image/png;base64,")
        png = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
        assert png.format == "PNG" and min(png.size) > 50


def test_a_run_writes_its_report_and_stage_times(project) -> None:
    text = (project / "report.html").read_text(encoding="utf-8")
    for anchor in SECTIONS:
        assert f'<section id="{anchor}">' in text, anchor
    guard = json.loads((project / "guard.json").read_text())  # the link stage's verdict
    assert '<span class="verdict' in text and guard["verdict"] in text
    _check_self_contained(text)
    assert len(_images(text)) == 3 + 12  # overlay, lineage, training; 12 cells to proof-read
    assert "position only" in text and "Errors against the ground truth" in text
    times = json.loads((project / "stage_times.json").read_text())
    assert list(times) == [s.name for s in STAGES] and all(
        r["seconds"] >= 0 for r in times.values()
    )
    assert "<th>stage</th><th>took</th>" in text and "config.json (every setting" in text


def test_the_guard_section_from_guard_json(copy) -> None:
    (copy / "guard.json").write_text(json.dumps(GUARD))
    text = build_report(copy)
    section = text[text.index('<section id="guard">') :].split("</section>")[0]
    assert '<span class="verdict warn">down-weighted</span>' in section
    assert "association weight 0.25" in section and GUARD["reason"] in section
    assert '<td>agreement</td><td class="num">0.69</td>' in section
    (copy / "guard.json").write_text("{not json")
    text = build_report(copy)
    assert "guard.json is not readable JSON" in text and 'id="scores"' in text


def test_without_ground_truth_it_compares_with_position_only_linking(copy) -> None:
    (copy / "metrics.json").unlink()
    store = Store.load(copy / "store.npz")
    Store(store.detections, {}, store.crops, store.masks, store.meta).save(copy / "store.npz")
    text = build_report(copy)
    assert "No ground truth" in text and "<th>position-only links</th>" in text
    assert "Where attrackt&#x27;s links differ from position-only linking" in text
    _check_self_contained(text)


def test_without_the_movie_it_shows_the_stored_crops(copy) -> None:
    store = Store.load(copy / "store.npz")
    store.meta["sources"] = {name: str(copy / "moved") for name in store.sequences}
    store.save(copy / "store.npz")
    text = build_report(copy)
    assert "maximum projection" not in text and "(no images)" not in text
    assert len(_images(text)) == 3 + 12
    _check_self_contained(text)


def test_a_run_that_stopped_early(tmp_path) -> None:
    (tmp_path / "config.json").write_text(json.dumps(PipelineConfig().to_dict()))
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert '<section id="settings">' in text and "<td>link.k</td>" in text
    assert "No tracks yet" in text and "No stage times were recorded" in text


def _chromium() -> str | None:
    names = ("chromium", "chromium-browser", "google-chrome", "chrome")
    return next(filter(None, map(shutil.which, names)), None)


def test_the_report_renders_in_headless_chromium(copy, tmp_path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no chromium binary on PATH (apt-get install chromium)")
    (copy / "guard.json").write_text(json.dumps(GUARD))
    report = write_report(copy)
    flags = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
    ]  # fmt: skip
    url = report.resolve().as_uri()
    dom = subprocess.run(
        [*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    for anchor in ("guard", *SECTIONS):
        assert f'<section id="{anchor}">' in dom, anchor
    assert len(_images(dom)) == 3 + 12 and "down-weighted" in dom
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", url], capture_output=True, timeout=120)
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.shape[:2] == (2400, 1200) and pixels.std() > 10  # drawn, not blank
