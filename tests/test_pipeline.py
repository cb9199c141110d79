"""The whole pipeline on a tiny synthetic movie: every stage's output, what reruns and why,
answers, signals, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from _tiny_project import tiny_config as _tiny_config
from conftest import deliver_signals
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Annotations, Answer, Tracks
from attrackt.errors import InputError
from attrackt.evaluate import evaluate_ctc
from attrackt.pipeline import STAGES, plan_pipeline, run_pipeline
from attrackt.synthetic import SyntheticConfig, generate
from attrackt.train import load_checkpoint

DOWNSTREAM_OF_LINK = ["link", "rank", "export", "evaluate"]


def _strict_json(path: Path):
    def refuse(constant: str):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _copy(project: Path, to: Path) -> Path:
    """A copy of a project folder (sizes and modification times kept: every stage current)."""
    return Path(shutil.copytree(project, to))


@pytest.fixture(scope="module")
def movie_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("movie")
    generate(SyntheticConfig(shape=(96, 96), frames=10, density=4.0, seed=3)).write(root, "01")
    return root / "01"


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One intra-op thread, as ``_interrupted_run.py`` runs (so that their numbers agree); small
    models gain nothing from more, and on a busy machine spinning threads are very slow."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def finished(movie_dir, tmp_path_factory):
    project = tmp_path_factory.mktemp("project")
    with _one_thread():
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
    assert finished.ran == [stage.name for stage in STAGES]
    records = _strict_json(root / "stages.json")["stages"]
    assert list(records) == finished.ran and all(r["done"] for r in records.values())
    config = _strict_json(root / "config.json")  # what made the outputs: every section
    assert config == json.loads(json.dumps(_tiny_config().to_dict()))
    _strict_json(root / "metrics.json")
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


def test_a_second_run_reuses_and_answers_rerun_from_link(finished, movie_dir, tmp_path) -> None:
    root = _copy(finished.project, tmp_path / "p")
    again = run_pipeline([movie_dir], root, _tiny_config())
    assert again.ran == []
    assert again.tracks.equals(finished.tracks)
    # a person answers: the first ranked cell has no children -> linking must obey
    ranking = np.loadtxt(root / "ranking.csv", delimiter=",", skiprows=1, usecols=1, dtype=int)
    cell = int(np.atleast_1d(ranking)[0])
    Annotations(root / "answers.jsonl").add(Answer(cell, ()))
    assert list(plan_pipeline([movie_dir], root, _tiny_config())) == DOWNSTREAM_OF_LINK
    relinked = run_pipeline([movie_dir], root, _tiny_config())
    assert relinked.ran == DOWNSTREAM_OF_LINK
    assert cell not in relinked.tracks.edges[:, 0].tolist()
    assert cell not in set(np.loadtxt(root / "ranking.csv", delimiter=",", skiprows=1, usecols=1))
    _strict_json(root / "metrics.json")
    assert run_pipeline([movie_dir], root, _tiny_config()).ran == []  # the same answers: reused
    journal = (root / "answers.jsonl").read_text()
    (root / "answers.jsonl").write_text(journal + '{"id": 1, "children": [2]}\n')
    with pytest.raises(InputError, match="answers.jsonl: line 2 is not a valid answer"):
        run_pipeline([movie_dir], root, _tiny_config())  # refused before any stage runs


def test_changed_settings_rerun_the_stage_and_every_stage_that_reads_it(
    finished, movie_dir, tmp_path
) -> None:
    root = _copy(finished.project, tmp_path / "p")

    def plan(config=None) -> list[str]:
        return list(plan_pipeline([movie_dir], root, config or _tiny_config()))

    longer = _tiny_config()
    longer.embed.train.steps = 12  # the auto-encoder, and all that follows from it
    assert plan(longer) == [s.name for s in STAGES if s.name != "prepare"]
    elsewhere = _tiny_config()
    elsewhere.embed.train.device = elsewhere.train.train.device = "meta"  # where, not what
    elsewhere.train.train.checkpoint_seconds = 1.0
    assert plan(elsewhere) == []
    reseeded = _tiny_config()
    reseeded.rank = dataclasses.replace(reseeded.rank, seed=5)
    assert plan(reseeded) == ["rank"]

    fewer = _tiny_config()
    fewer.link = dataclasses.replace(fewer.link, k=3)
    result = run_pipeline([movie_dir], root, fewer)
    assert result.ran == DOWNSTREAM_OF_LINK
    assert _strict_json(root / "config.json")["link"]["k"] == 3  # it describes the outputs
    assert _strict_json(root / "stages.json")["stages"]["link"]["config"]["link"]["k"] == 3
    assert plan(fewer) == [] and plan() == DOWNSTREAM_OF_LINK

    shutil.rmtree(root / "tracks.geff")  # (a zarr folder)
    assert plan(fewer) == ["export"]  # only the stage whose output is gone
    frame = sorted(movie_dir.glob("*.tif"))[0]
    times = (frame.stat().st_atime_ns, frame.stat().st_mtime_ns)
    os.utime(frame, ns=(times[0], times[1] + 10**9))
    try:
        assert plan(fewer) == [s.name for s in STAGES]  # a changed source: everything again
    finally:
        os.utime(frame, ns=times)  # (the movie is shared with other tests)


def test_an_interrupted_stage_leaves_config_json_describing_only_finished_outputs(
    finished, movie_dir, tmp_path, monkeypatch
) -> None:
    root = _copy(finished.project, tmp_path / "p")
    import attrackt.pipeline as pipeline

    def broken(run) -> None:
        raise RuntimeError("the machine went down")

    stages = tuple(dataclasses.replace(s, run=broken) if s.name == "rank" else s for s in STAGES)
    monkeypatch.setattr(pipeline, "STAGES", stages)
    fewer = _tiny_config()
    fewer.link = dataclasses.replace(fewer.link, k=3)
    with pytest.raises(RuntimeError):
        run_pipeline([movie_dir], root, fewer)
    assert not (root / "ranking.csv").exists() and not (root / "tracks.geff").exists()
    records = _strict_json(root / "stages.json")["stages"]
    assert records["link"]["done"] and not records["rank"]["done"]
    assert "export" not in records and "evaluate" not in records
    config = _strict_json(root / "config.json")
    assert config["link"]["k"] == 3 and "rank" not in config


def _script_run(movie_dir: Path, project: Path, *stop: str) -> subprocess.CompletedProcess:
    """``attrackt run`` in a process of its own (see ``_interrupted_run.py``)."""
    script = Path(__file__).with_name("_interrupted_run.py")
    args = [str(movie_dir), "--project", str(project), "--quick", "--device", "cpu"]
    command = [sys.executable, str(script), *stop, "--", *args]
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, preexec_fn=deliver_signals
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).model_state


def test_sigint_and_sigterm_stop_a_run_that_the_same_command_takes_to_the_same_end(
    movie_dir, finished, tmp_path
) -> None:
    project = tmp_path / "p"
    for name, stage, code, done in (("SIGINT", "embed", 130, {"prepare"}),
                                    ("SIGTERM", "train", 143, {"prepare", "embed"})):  # fmt: skip
        cut = _script_run(movie_dir, project, name, stage, "4")
        assert cut.returncode == code, cut.stderr[-3000:]
        (stopped,) = [line for line in cut.stderr.splitlines() if line.startswith("STOPPED")]
        assert f"by {name} after step 4 of 10" in stopped
        assert stopped.endswith(f"run: attrackt run {movie_dir} --project {project} --quick "
                                "--device cpu")  # fmt: skip
        records = _strict_json(project / "stages.json")["stages"]
        assert not records[stage]["done"] and set(_strict_json(project / "config.json")) == done
    assert "resuming autoencoder from step 4" in cut.stderr  # the SIGINT run went on

    end = _script_run(movie_dir, project)
    assert end.returncode == 0, end.stderr[-3000:]
    assert "resuming association" in end.stderr
    for checkpoint in ("autoencoder/last.pt", "model/last.pt"):
        ours, theirs = _weights(project / checkpoint), _weights(finished.project / checkpoint)
        for key, value in theirs.items():
            torch.testing.assert_close(ours[key], value, rtol=0, atol=1e-6, msg=key)
    assert Tracks.load(project / "tracks").equals(finished.tracks)  # as if never stopped


def test_cli_run_with_a_segmentation(movie_dir, tmp_path) -> None:
    masks = movie_dir.parent / "01_GT" / "TRA"
    out = tmp_path / "seg-project"
    with _one_thread():
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


def test_cli_dry_run_says_what_would_run_and_why(movie_dir, tmp_path) -> None:
    project = tmp_path / "p"
    args = ["run", str(movie_dir), "--project", str(project), "--quick", "--dry-run"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "prepare: not run yet" in result.output
    assert "embed: it reads the output of prepare, which runs again" in result.output
    assert f"{len(STAGES)} stage(s) to run" in result.output and not project.exists()


def test_the_demo_writes_outside_the_clone_unless_told(tmp_path, monkeypatch) -> None:
    import attrackt.pipeline as pipeline

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(sys, "platform", "linux")
    seen = []

    def demo(out, **kwargs):
        seen.append(Path(out))
        raise InputError("demo", "stopped here by the test")

    monkeypatch.setattr(pipeline, "demo", demo)
    result = CliRunner().invoke(app, ["demo"])
    assert seen == [tmp_path / "cache" / "attrackt" / "demo"]
    assert f"writing to {seen[0]}" in result.output
    CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "here")])
    assert seen[-1] == tmp_path / "here"
