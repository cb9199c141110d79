"""Data-parallel training on CPU: 2 gloo processes against 1, resume, writes, torchrun CLI."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _ddp_worker import Crash, Net, exact, launch, model, noisy, small, twice

from attrackt import distributed
from attrackt.data import Detections
from attrackt.synthetic import SyntheticConfig, generate
from attrackt.train import AGREE_EVERY, load_checkpoint

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Every scenario of ``_ddp_worker`` run once by 2 processes; their folder."""
    root = tmp_path_factory.mktemp("ddp")
    torch.set_num_threads(1)
    with pytest.raises(Crash):  # a single-process run cut after its step-5 checkpoint
        exact(root / "from_single", crash_after=6)
    (root / "unshared_0").mkdir()
    shutil.copy(root / "from_single" / "last.pt", root / "unshared_0" / "last.pt")
    launch(root)
    return root


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> dict:
    """The same scenarios in this single process."""
    root = tmp_path_factory.mktemp("single")
    torch.set_num_threads(1)
    return {
        "exact": exact(root / "exact"),
        "small": small(root / "small"),
        "twice": twice(root / "twice"),
        "noisy": noisy(root / "noisy"),
    }


def _weights(runs: Path, name: str, rank: int = 0) -> dict[str, torch.Tensor]:
    return torch.load(runs / f"{name}_{rank}.pt", weights_only=True)


def _results(runs: Path, rank: int = 0) -> dict:
    return json.loads((runs / f"results_{rank}.json").read_text())


def _assert_same(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=atol, msg=name)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_train_to_the_weights_of_one_with_the_same_global_batch(runs, single):
    net, result = single["exact"]
    ddp = _weights(runs, "exact")
    _assert_same(ddp, _weights(runs, "exact", rank=1), atol=0)  # the ranks agree exactly
    _assert_same(ddp, net.state_dict(), atol=1e-6)
    # the head that the loss never uses keeps its initial weights (no gradient, no decay)
    assert torch.equal(ddp["head.weight"], model().state_dict()["head.weight"])
    assert not torch.equal(ddp["body.0.weight"], model().state_dict()["body.0.weight"])
    # logged losses are averages over both halves of each batch: those of the whole batch
    # (an RMSE, not a mean over samples, is only averaged over the halves); validation batches
    # are shared out whole, so all its numbers match
    logged = _results(runs)["exact"]["history"]
    assert [r["step"] for r in logged] == [r["step"] for r in result.history]
    for ours, peer in zip(logged, result.history, strict=True):
        for key in ("loss", "grad_norm", "val_loss", "val_rmse"):
            if key in peer:
                assert ours[key] == pytest.approx(peer[key], rel=1e-5), key
    assert _results(runs)["exact"]["best_val_loss"] == pytest.approx(result.best_val_loss, 1e-5)
    clocks = ("seconds", "samples_per_s")  # each rank times itself
    assert [{k: v for k, v in r.items() if k not in clocks} for r in logged] == [
        {k: v for k, v in r.items() if k not in clocks}
        for r in _results(runs, 1)["exact"]["history"]
    ]  # every rank knows the same numbers


def test_unequal_shares_of_a_small_batch_are_weighted_by_size(runs, single):
    net, _ = single["small"]
    _assert_same(_weights(runs, "small"), net.state_dict(), atol=1e-6)


def test_a_model_trained_by_two_calls_of_fit_in_a_row_matches_one_process(runs, single):
    net, result = single["twice"]
    assert _results(runs)["twice"]["resumed_from"] is None  # a fresh second run, not a resume
    _assert_same(_weights(runs, "twice"), net.state_dict(), atol=1e-6)


def test_only_rank_0_writes_checkpoints_and_log(runs):
    assert _results(runs, 1)["writes"] == []
    written = {Path(p).relative_to(runs).as_posix() for p in _results(runs)["writes"]}
    assert {"exact/last.pt", "exact/best.pt", "exact/log.jsonl"} <= written
    records = _log(runs / "exact" / "log.jsonl")
    train = [r["step"] for r in records if "loss" in r]
    val = [r["step"] for r in records if "val_loss" in r]
    assert train == list(range(1, 13)) and val == [4, 8, 12]  # each once
    assert sorted(p.name for p in (runs / "exact").iterdir()) == ["best.pt", "last.pt", "log.jsonl"]


def test_resume_under_two_processes_continues_to_the_uninterrupted_result(runs, single):
    resumed = _results(runs)["noisy_resumed"]
    assert resumed["resumed_from"] == 10 and resumed["step"] == 20
    # each rank restores its own augmentation and dropout stream: the same weights exactly
    _assert_same(_weights(runs, "noisy_resumed"), _weights(runs, "noisy"), atol=1e-6)
    _assert_same(_weights(runs, "noisy_resumed", 1), _weights(runs, "noisy"), atol=1e-6)
    steps = [r["step"] for r in _log(runs / "noisy_cut" / "log.jsonl")]
    assert steps == list(range(1, 21))
    # per-rank random streams: within noise of one process, but not the same draws
    net, _ = single["noisy"]
    ours, peer = _weights(runs, "noisy"), net.state_dict()
    assert not torch.allclose(ours["body.0.weight"], peer["body.0.weight"], atol=1e-6)


def test_a_signal_to_one_process_stops_all_at_one_step_with_a_checkpoint(runs):
    assert [_results(runs, rank)["signalled_at"] for rank in (0, 1)] == [AGREE_EVERY] * 2
    resumed = _results(runs)["signalled_resumed"]
    assert resumed["resumed_from"] == AGREE_EVERY and resumed["step"] == 20
    for rank in (0, 1):
        _assert_same(_weights(runs, "signalled_resumed", rank), _weights(runs, "noisy"), atol=1e-6)


def test_a_two_process_checkpoint_loads_and_resumes_in_one_process(runs, single, caplog):
    checkpoint = load_checkpoint(runs / "exact" / "last.pt", Net())
    assert checkpoint.step == 12 and set(checkpoint.model_state) == set(Net().state_dict())
    assert len(checkpoint.state["rng_ranks"]) == 2
    _assert_same(checkpoint.model_state, _weights(runs, "exact"), atol=0)

    assert load_checkpoint(runs / "exact_cut" / "last.pt").step == 5
    with caplog.at_level(logging.WARNING, logger="attrackt.train"):
        net, result = exact(runs / "exact_cut")
    assert result.resumed_from == 5 and result.step == 12
    assert "processes" in caplog.text and "2 -> 1" in caplog.text
    _assert_same(net.state_dict(), single["exact"][0].state_dict(), atol=1e-5)


def test_two_processes_resume_a_single_process_checkpoint(runs, single):
    assert _results(runs)["from_single"]["resumed_from"] == 5
    _assert_same(_weights(runs, "from_single"), single["exact"][0].state_dict(), atol=1e-5)


def test_a_global_batch_that_the_processes_cannot_share_is_refused(runs):
    for rank in (0, 1):
        assert "multiple of the 2 processes" in _results(runs, rank)["odd_batch_error"]
    assert not distributed.active() and distributed.is_main_process()  # this process: alone


def test_a_per_process_sampler_is_refused_rather_than_sharded_twice(runs):
    for rank in (0, 1):
        assert "not a DistributedSampler" in _results(runs, rank)["per_rank_sampler_error"]


def test_a_checkpoint_that_only_some_processes_see_is_refused_by_all(runs):
    for rank in (0, 1):
        message = _results(runs, rank)["unshared_error"]
        assert "last.pt" in message and "seen by some processes only" in message


def test_cuda_without_index_means_the_process_gpu_under_torchrun(monkeypatch):
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert distributed.local_device(cuda) == cuda  # a single process: unchanged
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert distributed.launched() and distributed.local_device(cuda) == torch.device("cuda", 1)
    assert distributed.local_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert distributed.local_device(cpu) == cpu


def test_torchrun_embed_writes_one_checkpoint_and_the_embeddings(tmp_path):
    movie = generate(SyntheticConfig(shape=(64, 64), frames=3, density=12.0, seed=2))
    movie.write(tmp_path, "01")
    detections = movie.tracks().detections
    detections.save(tmp_path / "det.parquet")
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "attrackt",
        "embed",
        str(tmp_path / "det.parquet"),
        "--images",
        str(tmp_path / "01"),
        "--out",
        str(tmp_path / "out.parquet"),
        "--steps",
        "4",
        "--batch-size",
        "4",
        "--crop-size",
        "16",
        "--device",
        "cpu",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    out = Detections.load(tmp_path / "out.parquet")
    assert out.vectors["embedding"].shape[0] == len(detections)
    assert np.isfinite(out.vectors["embedding"]).all()
    work = tmp_path / "out_autoencoder"
    assert sorted(p.name for p in work.iterdir()) == ["best.pt", "last.pt", "log.jsonl"]
    assert load_checkpoint(work / "last.pt").step == 4
    records = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [4]  # logged once, not per rank
    assert done.stderr.count("auto-encoder trained for 4 steps") == 1  # rank 1 is quiet
