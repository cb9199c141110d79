"""Training the association model: windows split, batch sampler, objectives, learning, resume,
time budgets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from attrackt.budget import budget_config, resumed_steps, steps_for_budget
from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.evaluate import parent_accuracy
from attrackt.model import AugmentConfig, TransformerConfig, WindowConfig, WindowSet
from attrackt.predict import PredictConfig, predict_associations
from attrackt.synthetic import SyntheticConfig, generate
from attrackt.train import TrainConfig, load_checkpoint
from attrackt.training import (
    OBJECTIVES,
    AssociationModel,
    AssociationModelConfig,
    AssociationTrainConfig,
    SizeBucketSampler,
    load_association_model,
    split_windows,
    train_association_model,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SMALL = TransformerConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0)


def appearance_movie(seed: int, frames: int = 20) -> Tracks:
    """A synthetic movie's ground truth whose detections carry an 8-long appearance vector that
    identifies each track: a random start, a slow drift, small noise; daughters start near their
    mother's last look."""
    movie = generate(
        SyntheticConfig(
            shape=(128, 128), frames=frames, density=6, step=4, drift=0, radius=6, seed=seed
        )
    )
    tracks = movie.tracks("m")
    rng = np.random.default_rng(seed)
    table = movie.track_table.set_index("label")
    start_look, drift = {}, {}
    for label, row in table.iterrows():
        look = rng.normal(size=8)
        if row.parent:
            mother = table.loc[row.parent]
            age = mother.end - mother.start
            look = start_look[row.parent] + age * drift[row.parent] + rng.normal(0, 0.3, 8)
        start_look[label], drift[label] = look, rng.normal(0, 0.05, 8)
    det = tracks.detections
    age = det.times - table.loc[det.labels, "start"].to_numpy()
    z = np.stack([start_look[lab] + a * drift[lab] for lab, a in zip(det.labels, age, strict=True)])
    z += rng.normal(0, 0.05, z.shape)
    return Tracks(det.with_vectors(embedding=z), tracks.edges)


def config(**overrides) -> AssociationTrainConfig:
    train = dict(
        steps=300,
        batch_size=8,
        lr=1e-2,
        min_lr=1e-4,
        warmup_steps=0.05,
        val_every=0,
        checkpoint_every=0,
        log_every=50,
        device="cpu",
        progress=False,
    )
    train.update(overrides.pop("train", {}))
    base = dict(
        model=SMALL,
        windows=WindowConfig(window=4, augment=AugmentConfig(drop=0.0)),
        heads_width=16,
        train=TrainConfig(**train),
        val_frames=0.0,
    )
    base.update(overrides)
    return AssociationTrainConfig(**base)


def test_unsupervised_training_learns_who_is_whose_parent(tmp_path):
    train, test = appearance_movie(1), appearance_movie(2)
    cfg = config()
    model = train_association_model(train.detections, None, cfg, tmp_path, resume=False)
    scores = predict_associations(model, test.detections, cfg.windows, PredictConfig(tta=False))
    learned = parent_accuracy(scores, test)
    torch.manual_seed(0)
    untrained = AssociationModel(model.config)
    before = predict_associations(untrained, test.detections, cfg.windows, PredictConfig(tta=False))
    assert learned["links"] > 80
    assert learned["parent_accuracy"] >= 0.9
    assert parent_accuracy(before, test)["parent_accuracy"] < 0.5
    # the checkpoint holds transformer and heads, and predicts the same
    loaded, extra = load_association_model(tmp_path / "last.pt")
    assert loaded.heads is not None and extra["windows"]["window"] == 4
    again = predict_associations(loaded, test.detections, cfg.windows, PredictConfig(tta=False))
    np.testing.assert_allclose(again.table["score"], scores.table["score"], atol=1e-6)


def test_supervised_training_fits_the_ground_truth(tmp_path):
    train = appearance_movie(1)
    cfg = config(objective="supervised", train={"steps": 150})
    model = train_association_model(train.detections, train.edges, cfg, tmp_path, resume=False)
    scores = predict_associations(model, train.detections, cfg.windows, PredictConfig(tta=False))
    assert parent_accuracy(scores, train)["parent_accuracy"] >= 0.95


def test_supervised_training_can_keep_the_checkpoint_with_the_fewest_wrong_parents(tmp_path):
    train = appearance_movie(2)
    cfg = config(
        objective="supervised",
        train={"steps": 60, "val_every": 10, "best_metric": "link_error"},
        val_frames=0.3,
    )
    train_association_model(train.detections, train.edges, cfg, tmp_path, resume=False)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_link_error" in r]
    assert len(val) == 6 and all(0 <= r["val_link_error"] <= 1 for r in val)
    best = load_checkpoint(tmp_path / "best.pt")
    assert best.best_val_loss == min(r["val_link_error"] for r in val)
    assert best.step == min(val, key=lambda r: r["val_link_error"])["step"]


def test_objectives_state_what_they_need(tmp_path):
    tracks = appearance_movie(1, frames=6)
    with pytest.raises(InputError, match="supervised objective needs ground-truth edges"):
        train_association_model(tracks.detections, None, config(objective="supervised"), tmp_path)
    bare = Detections(tracks.detections.table)
    with pytest.raises(InputError, match="needs the appearance embedding 'embedding'.*embed"):
        train_association_model(bare, None, config(), tmp_path)
    with pytest.raises(InputError, match="unknown objective 'finetune'"):
        config(objective="finetune")
    with pytest.raises(InputError, match="motion_weight must be >= 0, got -1"):
        config(motion_weight=-1.0)


def _windows(frames: int, cells: int = 3, sequence: str = "a") -> Detections:
    rng = np.random.default_rng(frames)
    t = np.repeat(np.arange(frames), cells)
    return Detections.from_arrays(
        t, rng.uniform(0, 50, (len(t), 2)), sequence=sequence, vectors={"embedding": t[:, None]}
    )


def test_validation_holds_out_the_last_frames_of_each_sequence():
    long = _windows(40, sequence="long")
    short = _windows(9, sequence="short")
    moved = Detections(short.table.assign(id=short.ids + 1000), short.vectors)
    ws = WindowSet.build(Detections.concat([long, moved]), None, WindowConfig(window=5))
    train, val = split_windows(ws, 0.1)
    starts, seqs = ws.start.numpy(), ws.sequences
    # "long": 40 frames, the last max(5, 4) = 5 (frames 35-39) validate
    assert sorted(starts[val]) == [35] and set(seqs[val]) == {"long"}
    assert (starts[train][seqs[train] == "long"] + 4 < 35).all()
    assert len(train[seqs[train] == "long"]) == 31  # starts 0..30
    # "short" (9 frames) cannot spare 5 frames and a window to train on: it only trains
    assert (seqs[train] == "short").sum() == 5
    assert not set(train) & set(val)
    assert len(split_windows(ws, 0.0)[1]) == 0


def test_size_buckets_give_each_window_once_in_batches_of_similar_size():
    rng = np.random.default_rng(0)
    sizes = rng.integers(10, 2000, 203)
    sampler = SizeBucketSampler(sizes, batch_size=8, seed=5)
    sampler.set_epoch(3)
    first = list(sampler)
    sampler.set_epoch(3)
    assert list(sampler) == first  # fixed by seed and epoch
    sampler.set_epoch(4)
    assert list(sampler) != first
    assert sorted(first) == list(range(203))
    batches = [first[k : k + 8] for k in range(0, 203, 8)]
    assert len(batches[-1]) == 203 % 8  # the short batch comes last

    def spread(batch):
        return np.log(sizes[batch].max() / sizes[batch].min())

    random_batches = [rng.permutation(203)[:8] for _ in range(25)]
    ours = np.mean([spread(b) for b in batches[:-1]])
    assert ours < 0.25 * np.mean([spread(b) for b in random_batches])


class _Crash(RuntimeError):
    pass


def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    tracks = appearance_movie(1, frames=10)
    cfg = config(train={"steps": 12, "checkpoint_every": 5}, val_frames=0.0)
    whole = train_association_model(tracks.detections, None, cfg, tmp_path / "whole")
    objective = OBJECTIVES["unsupervised"](cfg)
    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] > 7:
            raise _Crash("simulated")
        return objective(model, batch)

    with pytest.raises(_Crash):
        train_association_model(tracks.detections, None, cfg, tmp_path / "cut", loss_fn=crashing)
    assert load_checkpoint(tmp_path / "cut" / "last.pt").step == 5
    resumed = train_association_model(tracks.detections, None, cfg, tmp_path / "cut")
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_time_budget_sets_the_steps_without_touching_the_run(tmp_path):
    assert steps_for_budget(60, 0.5) == 108  # 90% of 60 s at 0.5 s a step
    assert steps_for_budget(60, 0.5, spent=10) == 90
    cfg = TrainConfig(batch_size=4, val_every=10)
    # 3 validation batches every 10 steps, each a third of a step: 0.55 s a step
    assert steps_for_budget(60, 0.5, val_size=12, config=cfg) == int(54 / 0.55)

    tracks = appearance_movie(1, frames=8)
    ws = WindowSet.build(tracks.detections, None, WindowConfig(window=4))
    torch.manual_seed(0)
    shape = dataclasses.replace(SMALL, embedding_dim=8, window=4)
    model = AssociationModel(AssociationModelConfig(shape, heads_width=16))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng_before = torch.get_rng_state()
    planned = budget_config(
        model,
        OBJECTIVES["unsupervised"](config()),
        len(ws),
        lambda idx: ws.batch(idx, augment=True),
        TrainConfig(batch_size=2, device="cpu"),
        minutes=0.05,
    )
    assert planned.steps >= 1 and 0 < planned.time_limit < 3.0  # the 3 s less the probe
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(torch.get_rng_state(), rng_before)

    # a resumed budgeted run keeps the step count it started with
    cfg = config(train={"steps": 3}, minutes=None)
    train_association_model(tracks.detections, None, cfg, tmp_path)
    assert resumed_steps(tmp_path) == 3 and resumed_steps(tmp_path, resume=False) is None


def test_the_step_time_probe_keeps_to_its_share_of_the_budget():
    """A slow step: the probe stops at its time limit (after one timed step at least) and
    still measures the step's time."""
    import time

    from attrackt.budget import time_step

    model = torch.nn.Linear(2, 1)

    def slow_loss(module, batch):
        time.sleep(0.2)
        return {"loss": module(batch).sum()}

    config = TrainConfig(batch_size=2, device="cpu")
    step, spent = time_step(
        model, slow_loss, 64, lambda idx: torch.ones(len(idx), 2), config, max_seconds=1.0
    )
    assert 0.19 < step < 0.4
    assert spent < 1.0 + 2 * 0.4  # not the 8 + 32 steps (8 s) an unbounded probe takes


def test_a_budgeted_run_trains_for_the_measured_steps(tmp_path):
    tracks = appearance_movie(1, frames=8)
    cfg = config(minutes=0.02)
    train_association_model(tracks.detections, None, cfg, tmp_path)
    steps = load_checkpoint(tmp_path / "last.pt").step
    assert 1 <= steps < 300  # not the configured 300: the budget decided


def test_init_starts_from_a_checkpoint_with_its_shape_and_windows(tmp_path):
    tracks = appearance_movie(1, frames=8)
    first = train_association_model(
        tracks.detections, None, config(train={"steps": 3}), tmp_path / "a"
    )
    other = config(
        train={"steps": 1, "lr": 1e-12, "min_lr": 0.0, "warmup_steps": 0},
        model=dataclasses.replace(SMALL, d_model=64),  # ignored: the checkpoint decides
        windows=WindowConfig(window=6),
    )
    second = train_association_model(
        tracks.detections, None, other, tmp_path / "b", init=tmp_path / "a" / "last.pt"
    )
    assert second.config == first.config
    _, extra = load_association_model(tmp_path / "b" / "last.pt")
    assert extra["windows"]["window"] == 4
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
