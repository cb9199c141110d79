"""The whole pipeline on a tiny synthetic movie: every stage's output, reuse, answers, CLI."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Annotations, Answer, Tracks
from attrackt.evaluate import evaluate_ctc
from attrackt.pipeline import PipelineConfig, run_pipeline
from attrackt.synthetic import SyntheticConfig, generate


def _tiny_config() -> PipelineConfig:
    config = PipelineConfig.quick(seed=0, device="cpu")
    config.embed.train.steps = 10
    config.train.train.steps = 10
    config.train.train.val_every = config.train.train.checkpoint_every = 5
    return config


@pytest.fixture(scope="module")
def movie_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("movie")
    generate(SyntheticConfig(shape=(96, 96), frames=10, density=4.0, seed=3)).write(root, "01")
    return root / "01"


@pytest.fixture(scope="module")
def finished(movie_dir, tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    return run_pipeline([movie_dir], project, _tiny_config())


def test_every_stage_writes_its_output(finished) -> None:
    root = finished.project
    for name in (
        "config.json",
        "store.npz",
        "embedded.npz",
        "associations.parquet",
        "ranking.csv",
        "tracks.geff",
        "metrics.json",
    ):
        assert (root / name).exists(), name
    assert (root / "model" / "last.pt").is_file()
    assert finished.ran == [
        "prepare",
        "embed",
        "train",
        "predict",
        "link",
        "rank",
        "export",
        "evaluate",
    ]
    saved = Tracks.load(root / "tracks")
    assert saved.equals(finished.tracks)
    assert finished.ranked_cells > 0


def test_ctc_result_scores_like_the_in_memory_tracks(finished, movie_dir) -> None:
    (label,) = finished.metrics  # "<dataset folder>/01", as CTC names it
    assert label.endswith("/01")
    result = finished.project / "result" / f"{label}_RES"  # the CTC layout, per dataset
    from_folder = evaluate_ctc(result, movie_dir.parent / "01_GT", chota=False)
    in_memory = finished.metrics[label]["attrackt"]
    for key in ("AOGM", "fp_edges", "fn_edges", "ws_edges"):
        assert from_folder[key] == pytest.approx(in_memory[key]), key
    assert set(finished.metrics[label]) == {"position only", "attrackt"}


def test_a_second_run_reuses_and_answers_rerun_from_link(finished, movie_dir) -> None:
    root = finished.project
    again = run_pipeline([movie_dir], root, _tiny_config())
    assert again.ran == []
    assert again.tracks.equals(finished.tracks)
    # a person answers: the first ranked cell has no children -> linking must obey
    ranking = np.loadtxt(root / "ranking.csv", delimiter=",", skiprows=1, usecols=1, dtype=int)
    cell = int(np.atleast_1d(ranking)[0])
    Annotations(root / "answers.jsonl").add(Answer(cell, ()))
    shutil.rmtree(root / "tracks")  # the stage to run again
    relinked = run_pipeline([movie_dir], root, _tiny_config())
    assert relinked.ran[0] == "link"
    assert cell not in relinked.tracks.edges[:, 0].tolist()
    json.loads((root / "metrics.json").read_text())


def test_cli_run_with_a_segmentation(movie_dir, tmp_path) -> None:
    masks = movie_dir.parent / "01_GT" / "TRA"
    out = tmp_path / "seg-project"
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(movie_dir),
            "--masks",
            str(masks),
            "--project",
            str(out),
            "--quick",
            "--device",
            "cpu",
            "--train-minutes",
            "0.05",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "links" in result.output and (out / "tracks.geff").exists()
    assert not (out / "metrics.json").exists()  # a bare segmentation has no ground truth


def test_cli_run_reports_a_bad_source(tmp_path) -> None:
    result = CliRunner().invoke(
        app, ["run", str(tmp_path / "nowhere"), "--project", str(tmp_path / "p")]
    )
    assert result.exit_code == 1
    assert "nowhere" in result.output
