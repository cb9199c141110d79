"""The generic training loop: schedule, clipping, checkpoints, resume, loading errors."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import threading
import time
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

import attrackt.train as train_mod
from attrackt.errors import InputError
from attrackt.interrupt import TrainingInterrupted
from attrackt.train import (
    EpochShuffler,
    TrainConfig,
    Validation,
    fit,
    load_checkpoint,
    lr_at,
    replanned_steps,
    save_checkpoint,
)


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny convolutions gain nothing from more, and a busy machine makes
    spinning OpenMP threads very slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class TinyConfig:
    hidden: int = 8


class Tiny(nn.Module):
    """A small net whose forward draws random numbers (dropout), so RNG restore matters."""

    kind = "tiny"

    def __init__(self, config: TinyConfig) -> None:
        super().__init__()
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(3, config.hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(config.hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Crash(RuntimeError):
    pass


def _data(n: int = 40):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return x, y


def _make_batch(x, y, crash_after: int | None = None):
    calls = {"n": 0}

    def make_batch(idx: torch.Tensor):
        calls["n"] += 1
        if crash_after is not None and calls["n"] > crash_after:
            raise Crash("simulated crash")
        noise = 0.01 * torch.randn(len(idx), 3)  # augmentation from the global RNG
        return x[idx] + noise, y[idx]

    return make_batch


def _mse(model: nn.Module, batch) -> dict[str, torch.Tensor]:
    xb, yb = batch
    err = (model(xb) - yb).square().mean()
    return {"loss": err, "rmse": err.sqrt()}


def _model(seed: int = 0, hidden: int = 8) -> Tiny:
    torch.manual_seed(seed)
    return Tiny(TinyConfig(hidden))


def _config(**kw) -> TrainConfig:
    base = dict(
        steps=20,
        batch_size=8,
        lr=1e-2,
        warmup_steps=4,
        log_every=1,
        val_every=0,
        checkpoint_every=5,
        device="cpu",
        progress=False,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def _log(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_schedule_warms_up_linearly_then_decays_by_cosine_to_min_lr():
    cfg = TrainConfig(steps=101, lr=1.0, min_lr=0.1, warmup_steps=10)
    lrs = np.array([lr_at(s, cfg) for s in range(cfg.steps)])
    assert np.allclose(lrs[:10], np.arange(1, 11) / 10)  # linear ramp reaching lr
    assert np.all(np.diff(lrs[10:]) <= 1e-12)  # then never rises
    assert lrs[10] == pytest.approx(1.0) and lrs[-1] == pytest.approx(0.1)
    assert lrs[10 + 45] == pytest.approx(0.55)  # cosine: half way down at half the decay
    assert lrs[10 + 22] > 0.55 + 0.2  # above the straight line early on (cosine shape)
    assert TrainConfig(steps=200, warmup_steps=0.1).warmup == 20


def test_fit_applies_the_schedule_and_logs_each_step(tmp_path):
    x, y = _data()
    cfg = _config()
    result = fit(_model(), _mse, len(x), _make_batch(x, y), cfg, tmp_path)
    records = _log(tmp_path / "log.jsonl")
    assert [r["step"] for r in records] == list(range(1, 21))
    assert [r["lr"] for r in records] == pytest.approx([lr_at(s, cfg) for s in range(20)])
    assert {"loss", "rmse", "grad_norm", "seconds", "samples_per_s"} <= set(records[0])
    assert records[-1]["loss"] < records[0]["loss"]
    assert result.step == 20 and result.history == records


@pytest.mark.parametrize("planned", [100, 400])  # a probe that was too slow, or too fast
def test_a_time_limit_replans_the_steps_from_the_runs_own_pace(tmp_path, monkeypatch, planned):
    clock = {"now": 0.0}  # every batch costs 0.01 s of a fake clock: 200 steps fit in 2 s
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock["now"])
    x, y = _data()
    make = _make_batch(x, y)

    def slow_batch(idx):
        clock["now"] += 0.01
        return make(idx)

    cfg = _config(steps=planned, warmup_steps=0.05, log_every=0, checkpoint_every=0)
    cfg = dataclasses.replace(cfg, time_limit=2.0)
    result = fit(_model(), _mse, len(x), slow_batch, cfg, tmp_path / "run")
    expected = replanned_steps(0, 0.01, 0.0, cfg)  # 97% of 2 s at 0.01 s a step: 194
    assert expected == 194 and abs(result.step - expected) <= 1  # (float rounding)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved.step == result.step and saved.train_config["steps"] == result.step
    assert saved.train_config["warmup_steps"] == round(0.05 * planned)  # kept as planned
    schedule = TrainConfig(**{**saved.train_config, "time_limit": None})
    assert lr_at(result.step - 1, schedule) == pytest.approx(cfg.min_lr)  # cosine ends at the end

    # cut after the re-planning, the run resumes with the re-planned schedule, to the same weights
    model, cut = _model(), tmp_path / "cut"
    crashing = _make_batch(x, y, crash_after=150)

    def slow_crashing(idx):
        clock["now"] += 0.01
        return crashing(idx)

    cfg_cut = dataclasses.replace(cfg, checkpoint_every=25)
    clock["now"] = 0.0  # both runs see the same clock, so they re-plan alike
    with pytest.raises(Crash):
        fit(model, _mse, len(x), slow_crashing, cfg_cut, cut)
    torch.manual_seed(0)  # fit restores every random stream from the checkpoint
    resumed = fit(_model(), _mse, len(x), make, cfg_cut, cut)
    clock["now"] = 0.0
    whole = fit(_model(), _mse, len(x), slow_batch, cfg_cut, tmp_path / "whole")
    assert resumed.resumed_from == 150 and resumed.step == whole.step > planned * 0.4
    a, b = (
        load_checkpoint(cut / "last.pt").state["model"],
        load_checkpoint(tmp_path / "whole" / "last.pt").state["model"],
    )
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=1e-6, msg=name)

    # without a time limit the planned steps stand
    plain = fit(_model(), _mse, len(x), slow_batch, _config(steps=planned), tmp_path / "plain")
    assert plain.step == planned


def test_each_epoch_visits_every_sample_once_in_a_seeded_order(tmp_path):
    seen: list[list[int]] = []
    x, y = _data(10)

    def make_batch(idx):
        seen.append(idx.tolist())
        return x[idx], y[idx]

    fit(_model(), _mse, 10, make_batch, _config(steps=4, batch_size=5), tmp_path)
    epochs = [sorted(seen[0] + seen[1]), sorted(seen[2] + seen[3])]
    assert epochs == [list(range(10))] * 2
    assert seen[0] + seen[1] != seen[2] + seen[3]  # reshuffled
    a, b = EpochShuffler(10, seed=1), EpochShuffler(10, seed=1)
    b.set_epoch(1)
    assert list(a) == list(EpochShuffler(10, seed=1)) and list(a) != list(b)


def test_gradient_clipping_bounds_the_norm_the_optimiser_sees(tmp_path):
    x, y = _data()
    norms: list[float] = []

    def hook(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def huge(model, batch):
        return {"loss": 1e6 * _mse(model, batch)["loss"]}

    handle = register_optimizer_step_pre_hook(hook)
    try:
        fit(_model(), huge, len(x), _make_batch(x, y), _config(steps=5, grad_clip=0.5), tmp_path)
    finally:
        handle.remove()
    logged = [r["grad_norm"] for r in _log(tmp_path / "log.jsonl")]
    assert len(norms) == 5 and max(norms) <= 0.5 * (1 + 1e-5)
    assert min(logged) > 100  # the raw gradients were far larger: clipping did the bounding


def test_resume_after_a_crash_gives_the_weights_of_an_uninterrupted_run(tmp_path):
    x, y = _data()
    whole = _model()
    fit(whole, _mse, len(x), _make_batch(x, y), _config(), tmp_path / "whole")

    crashed = _model()
    with pytest.raises(Crash):  # dies in step 13, after the checkpoint of step 10
        fit(crashed, _mse, len(x), _make_batch(x, y, crash_after=12), _config(), tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut" / "last.pt").step == 10

    resumed = _model(seed=99)  # another initialisation: the checkpoint must win
    result = fit(resumed, _mse, len(x), _make_batch(x, y), _config(), tmp_path / "cut")
    assert result.resumed_from == 10 and result.step == 20
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    steps = [r["step"] for r in _log(tmp_path / "cut" / "log.jsonl")]
    assert steps == list(range(1, 21))  # the lost steps 11-12 are not logged twice


def _same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6, msg=name)


def _signalling(make_batch, signum: int, at_call: int):
    """``make_batch`` that sends this process ``signum`` during its ``at_call``-th call."""
    calls = {"n": 0}

    def wrapped(idx):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signum)
        return make_batch(idx)

    return wrapped


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.usefixtures("signals_delivered")
def test_a_signal_ends_the_step_saves_and_a_resume_matches_an_uninterrupted_run(tmp_path, signum):
    x, y = _data()
    whole = _model()
    fit(whole, _mse, len(x), _make_batch(x, y), _config(checkpoint_every=0), tmp_path / "whole")

    before = signal.getsignal(signum)
    stopped = _signalling(_make_batch(x, y), signum, at_call=7)
    with pytest.raises(TrainingInterrupted) as caught:  # no checkpoint was due before the end
        fit(_model(), _mse, len(x), stopped, _config(checkpoint_every=0), tmp_path / "cut")
    assert signal.getsignal(signum) is before  # the handlers in place before are back
    err = caught.value
    assert err.exit_code == 128 + signum and err.step == 7
    assert signal.Signals(signum).name in str(err) and "last.pt" in str(err)
    assert load_checkpoint(tmp_path / "cut" / "last.pt").step == 7  # the 7th step was finished

    resumed = _model(seed=99)
    result = fit(resumed, _mse, len(x), _make_batch(x, y), _config(), tmp_path / "cut")
    assert result.resumed_from == 7 and result.step == 20
    _same_weights(whole, resumed)


def test_checkpoints_are_written_at_least_every_checkpoint_seconds(tmp_path, monkeypatch):
    clock = {"now": 0.0}  # every batch takes 25 s of a fake clock: a checkpoint every 3 steps
    fake_time = types.SimpleNamespace(
        monotonic=lambda: clock["now"], perf_counter=time.perf_counter
    )
    monkeypatch.setattr(train_mod, "time", fake_time)
    x, y = _data()
    crashing = _make_batch(x, y, crash_after=8)

    def slow(idx):
        clock["now"] += 25.0
        return crashing(idx)

    cfg = _config(checkpoint_every=0, checkpoint_seconds=60)
    with pytest.raises(Crash):  # dies in step 9: steps 7-8 are lost, less than a minute
        fit(_model(), _mse, len(x), slow, cfg, tmp_path / "cut")
    assert load_checkpoint(tmp_path / "cut" / "last.pt").step == 6
    resumed = _model()
    assert fit(resumed, _mse, len(x), _make_batch(x, y), cfg, tmp_path / "cut").resumed_from == 6
    whole = _model()
    fit(whole, _mse, len(x), _make_batch(x, y), _config(), tmp_path / "whole")
    _same_weights(whole, resumed)

    untimed = _make_batch(x, y, crash_after=8)
    with pytest.raises(Crash):
        fit(
            _model(),
            _mse,
            len(x),
            untimed,
            dataclasses.replace(cfg, checkpoint_seconds=0),
            tmp_path / "none",
        )
    assert not (tmp_path / "none" / "last.pt").exists()


@pytest.mark.usefixtures("signals_delivered")
def test_outside_the_main_thread_signals_are_left_alone(tmp_path):
    x, y = _data()
    make = _make_batch(x, y)
    seen = []

    def make_batch(idx):
        seen.append(signal.getsignal(signal.SIGINT))
        return make(idx)

    worker = threading.Thread(
        target=fit, args=(_model(), _mse, len(x), make_batch, _config(steps=2), tmp_path)
    )
    worker.start()
    worker.join()
    assert seen == [signal.default_int_handler] * 2 and (tmp_path / "last.pt").is_file()


def test_resume_of_a_finished_run_does_nothing(tmp_path):
    x, y = _data()
    model = _model()
    fit(model, _mse, len(x), _make_batch(x, y), _config(steps=5), tmp_path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = fit(model, _mse, len(x), _make_batch(x, y), _config(steps=5), tmp_path)
    assert result.step == 5 and result.history == []
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_validation_is_logged_keeps_the_best_and_leaves_training_unchanged(tmp_path):
    x, y = _data()
    xv, yv = _data(12)

    def val_batch(idx):  # draws random numbers, as a variational model's sampling would
        return xv[idx] + 0.0 * torch.randn(len(idx), 3), yv[idx]

    val = Validation(12, val_batch, batch_size=5)
    with_val, without = _model(), _model()
    cfg = _config(val_every=5)
    result = fit(with_val, _mse, len(x), _make_batch(x, y), cfg, tmp_path / "a", val=val)
    fit(without, _mse, len(x), _make_batch(x, y), cfg, tmp_path / "b")
    val_records = [r for r in _log(tmp_path / "a" / "log.jsonl") if "val_loss" in r]
    assert [r["step"] for r in val_records] == [5, 10, 15, 20]
    assert result.best_val_loss == min(r["val_loss"] for r in val_records)
    best = load_checkpoint(result.best_checkpoint)
    assert best.best_val_loss == result.best_val_loss
    # the validation loss is the size-weighted mean over all 12 samples, in eval mode
    probe = _model(seed=5)
    best.load_into(probe)
    probe.eval()
    with torch.no_grad():
        expected = float((probe(xv) - yv).square().mean())
    assert best.best_val_loss == pytest.approx(expected, rel=1e-5)
    for a, b in zip(with_val.state_dict().values(), without.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_best_metric_picks_the_best_checkpoint_by_another_logged_value(tmp_path):
    x, y = _data()
    val = Validation(12, lambda idx: _data(12))

    def upside_down(model, batch):  # "badness" falls as the loss rises
        out = _mse(model, batch)
        return {**out, "badness": -out["loss"].detach()}

    cfg = _config(val_every=5, best_metric="badness")
    result = fit(_model(), upside_down, len(x), _make_batch(x, y), cfg, tmp_path, val=val)
    records = [r for r in _log(tmp_path / "log.jsonl") if "val_badness" in r]
    chosen = min(records, key=lambda r: r["val_badness"])
    assert result.best_val_loss == chosen["val_badness"]
    assert load_checkpoint(result.best_checkpoint).step == chosen["step"]
    assert chosen["step"] != min(records, key=lambda r: r["val_loss"])["step"]
    with pytest.raises(InputError, match="best_metric 'rnse'.*'val_rmse'"):
        fit(_model(), _mse, len(x), _make_batch(x, y), _config(val_every=5, best_metric="rnse"),
            tmp_path / "typo", val=val)  # fmt: skip


def test_checkpoint_records_kind_config_and_extra_state(tmp_path):
    x, y = _data()
    extra = {"mean": torch.tensor([1.0, 2.0]), "names": ["a", "b"], "scale": 0.5}
    fit(_model(), _mse, len(x), _make_batch(x, y), _config(steps=3), tmp_path, extra_state=extra)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.kind == "tiny" and ckpt.model_config == {"hidden": 8} and ckpt.step == 3
    assert ckpt.extra["names"] == ["a", "b"] and torch.equal(ckpt.extra["mean"], extra["mean"])
    assert ckpt.train_config["steps"] == 3
    with pytest.raises(TypeError, match="extra_state"):
        fit(
            _model(),
            _mse,
            len(x),
            _make_batch(x, y),
            _config(steps=3),
            tmp_path / "o",
            extra_state={"bad": object()},
        )


def test_an_exception_while_saving_leaves_the_old_checkpoint_readable(tmp_path, monkeypatch):
    x, y = _data()
    model = _model()
    fit(model, _mse, len(x), _make_batch(x, y), _config(steps=3), tmp_path)
    path = tmp_path / "last.pt"
    before = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(train_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"format": 1})
    assert path.read_bytes() == before
    assert load_checkpoint(path, _model(seed=4)).step == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "log.jsonl"]  # no debris


def test_loading_refuses_pickled_objects(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "payload": Path("x")}, path)  # a pickled class instance
    with pytest.raises(InputError, match="evil.pt"):
        load_checkpoint(path)


def test_truncated_missing_and_foreign_files_give_clear_errors(tmp_path):
    x, y = _data()
    fit(_model(), _mse, len(x), _make_batch(x, y), _config(steps=2), tmp_path)
    data = (tmp_path / "last.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.pt.*truncated or corrupt"):
        load_checkpoint(tmp_path / "cut.pt")
    with pytest.raises(InputError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an attrackt checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_loading_into_a_model_of_another_shape_or_kind_names_both(tmp_path):
    x, y = _data()
    fit(_model(), _mse, len(x), _make_batch(x, y), _config(steps=2), tmp_path)
    path = tmp_path / "last.pt"
    with pytest.raises(InputError) as err:
        load_checkpoint(path, _model(hidden=16))
    message = str(err.value)
    assert "last.pt" in message and "net.0.weight" in message
    assert "(8, 3)" in message and "(16, 3)" in message

    class Other(Tiny):
        kind = "other"

    with pytest.raises(InputError, match="'tiny' model, not the 'other'"):
        load_checkpoint(path, Other(TinyConfig()))
    with pytest.raises(InputError, match="last.pt"):  # resuming into the wrong shape, too
        fit(_model(hidden=16), _mse, len(x), _make_batch(x, y), _config(steps=4), tmp_path)


def test_non_finite_loss_stops_training(tmp_path):
    x, y = _data()

    def nan_loss(model, batch):
        return {"loss": _mse(model, batch)["loss"] * math.nan}

    with pytest.raises(FloatingPointError, match="nan"):
        fit(_model(), nan_loss, len(x), _make_batch(x, y), _config(steps=3), tmp_path)


def test_loss_fn_without_loss_key_and_bad_config_are_reported(tmp_path):
    x, y = _data()
    with pytest.raises(KeyError, match="'loss'"):
        fit(
            _model(),
            lambda m, b: {"mse": _mse(m, b)["loss"]},
            len(x),
            _make_batch(x, y),
            _config(steps=2),
            tmp_path,
        )
    with pytest.raises(InputError, match="steps"):
        TrainConfig(steps=0)
    with pytest.raises(InputError, match="warmup"):
        TrainConfig(warmup_steps=1.5)


def test_bf16_autocast_runs_on_cpu_when_asked(tmp_path):
    x, y = _data()
    result = fit(_model(), _mse, len(x), _make_batch(x, y), _config(steps=3, amp="bf16"), tmp_path)
    assert all(math.isfinite(r["loss"]) for r in result.history)
