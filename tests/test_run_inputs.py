"""`attrackt run` end to end on a Cellpose-style folder and on a points table (no ground truth).

The runs use ``--quick`` with its training cut to a few steps (the test checks the plumbing,
not the tracking), on one torch thread.
"""

from __future__ import annotations

import pytest
import tifffile
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.pipeline import PipelineConfig
from attrackt.synthetic import SyntheticConfig, generate

_quick = PipelineConfig.quick.__func__


def _few_steps(cls, seed: int = 0, device: str = "auto") -> PipelineConfig:
    config = _quick(cls, seed, device)
    config.embed.train.steps = config.train.train.steps = 10
    config.embed.train.val_every = config.embed.train.checkpoint_every = 5
    config.train.train.val_every = config.train.train.checkpoint_every = 5
    return config


@pytest.fixture
def quick(monkeypatch, single_thread):
    monkeypatch.setattr(PipelineConfig, "quick", classmethod(_few_steps))


@pytest.fixture(scope="module")
def cellpose(tmp_path_factory):
    """A folder of images ``cells_T.tif`` with Cellpose's ``cells_T_cp_masks.tif`` beside them."""
    movie = generate(SyntheticConfig(shape=(80, 80), frames=6, density=5.0, seed=4))
    folder = tmp_path_factory.mktemp("cellpose")
    for t in range(len(movie.images)):
        tifffile.imwrite(folder / f"cells_{t}.tif", movie.images[t])
        tifffile.imwrite(folder / f"cells_{t}_cp_masks.tif", movie.masks[t])
    return folder, movie


def _run(*args: str):
    return CliRunner().invoke(app, ["run", *args, "--quick", "--device", "cpu"])


def test_run_with_a_cellpose_folder(cellpose, quick, tmp_path) -> None:
    folder, _ = cellpose
    project = tmp_path / "project"
    result = _run(str(folder), "--masks", str(folder), "--project", str(project))
    assert result.exit_code == 0, result.output
    report = project / "report.html"
    assert f"report: {report.resolve()}" in result.output
    assert (project / "result" / "01_RES" / "res_track.txt").is_file()  # masks: a CTC result
    text = report.read_text(encoding="utf-8")
    assert "No ground truth" in text and 'id="proofread"' in text


def test_run_with_a_points_table(cellpose, quick, tmp_path) -> None:
    folder, movie = cellpose
    table = tmp_path / "points.csv"
    movie.tracks().detections.table[["t", "y", "x"]].to_csv(table, index=False)
    project = tmp_path / "project"
    result = _run(str(folder), "--points", str(table), "--project", str(project))
    assert result.exit_code == 0, result.output
    assert (project / "tracks.geff").exists() and (project / "report.html").is_file()
    assert not (project / "result").exists()  # no masks, no CTC result


def test_run_names_the_frame_without_a_mask(cellpose, tmp_path) -> None:
    folder, movie = cellpose
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(len(movie.masks) - 1):
        tifffile.imwrite(masks / f"cells_{t}_masks.tif", movie.masks[t])
    result = _run(str(folder), "--masks", str(masks), "--project", str(tmp_path / "p"))
    assert result.exit_code == 1
    assert f"cells_{len(movie.masks) - 1}.tif: has no label image" in result.output


def test_run_takes_masks_or_points(cellpose, tmp_path) -> None:
    folder, _ = cellpose
    args = ("--masks", str(folder), "--points", "p.csv", "--project", str(tmp_path / "p"))
    result = _run(str(folder), *args)
    assert result.exit_code == 1 and "either as --masks or as --points" in result.output
