"""Data-parallel training scenarios run by 2 CPU processes (gloo), and their single-process peers.

The parent (tests/test_distributed.py) starts :func:`worker` in fresh processes with
:func:`launch`; each process joins a gloo group through a file in the test's folder, runs every
scenario with :func:`attrackt.train.fit` and saves what the parent compares.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

import attrackt.train as train_mod
from attrackt import distributed
from attrackt.errors import InputError
from attrackt.interrupt import TrainingInterrupted
from attrackt.train import TrainConfig, Validation, fit

WORLD = 2


class Net(nn.Module):
    """A small regressor whose loss goes through ``predict`` (not ``forward``), with a head that
    the loss never uses and optional dropout."""

    kind = "net"

    def __init__(self, dropout: float = 0.0, unused_head: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(3, 16), nn.Tanh(), nn.Dropout(dropout), nn.Linear(16, 1)
        )
        self.head = nn.Linear(16, 2) if unused_head else None

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class Crash(RuntimeError):
    pass


def model(seed: int = 0, **kw) -> Net:
    torch.manual_seed(seed)
    return Net(**kw)


def data(n: int = 40, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, torch.sin(x @ torch.tensor([[1.0], [-2.0], [0.5]]))


def make_batch(x, y, noise: float = 0.0, crash_after: int | None = None):
    calls = {"n": 0}

    def batch(idx: torch.Tensor):
        calls["n"] += 1
        if crash_after is not None and calls["n"] > crash_after:
            raise Crash("simulated crash")
        return x[idx] + noise * torch.randn(len(idx), 3), y[idx]

    return batch


def mse(net: Net, batch) -> dict[str, torch.Tensor]:
    xb, yb = batch
    err = (net.predict(xb) - yb).square().mean()
    return {"loss": err, "rmse": err.sqrt()}


def config(**kw) -> TrainConfig:
    base = dict(
        steps=12,
        batch_size=8,
        lr=1e-2,
        warmup_steps=3,
        log_every=1,
        val_every=4,
        checkpoint_every=5,
        device="cpu",
        progress=False,
        seed=3,
    )
    base.update(kw)
    return TrainConfig(**base)


def validation() -> Validation:
    xv, yv = data(10, seed=7)
    return Validation(10, lambda idx: (xv[idx], yv[idx]), batch_size=4)


def exact(root: Path, crash_after: int | None = None) -> tuple[Net, train_mod.FitResult]:
    """Deterministic batches and model: data parallelism must not change the result."""
    x, y = data()
    net = model()
    batches = make_batch(x, y, crash_after=crash_after)
    return net, fit(net, mse, len(x), batches, config(), root, val=validation())


def noisy(root: Path, crash_after: int | None = None) -> tuple[Net, train_mod.FitResult]:
    """Augmentation noise and dropout: per-process random streams, restored on resume."""
    x, y = data()
    net = model(dropout=0.2, unused_head=False)
    batches = make_batch(x, y, noise=0.05, crash_after=crash_after)
    return net, fit(net, mse, len(x), batches, config(steps=20, val_every=0), root)


def signalled(root: Path, rank: int) -> int:
    """The noisy run, where rank 1 alone is sent SIGTERM while it draws its 3rd batch: the step
    at which every process stopped (the first at which they compare notes)."""
    x, y = data()
    batches, calls = make_batch(x, y, noise=0.05), {"n": 0}

    def batch(idx: torch.Tensor):
        calls["n"] += 1
        if rank == 1 and calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return batches(idx)

    net = model(dropout=0.2, unused_head=False)
    try:
        fit(net, mse, len(x), batch, config(steps=20, val_every=0, checkpoint_every=0), root)
    except TrainingInterrupted as err:
        return err.step
    raise AssertionError("the signal did not stop training")


def small(root: Path) -> tuple[Net, train_mod.FitResult]:
    """3 samples, batch 8: every batch is all 3, shared 2 + 1 between the processes."""
    x, y = data(3)
    net = model()
    return net, fit(net, mse, 3, make_batch(x, y), config(steps=4, val_every=0), root)


def twice(root: Path) -> tuple[Net, train_mod.FitResult]:
    """One model trained by two calls of fit in a row (as fine-tuning does)."""
    x, y = data()
    net = model()
    fit(net, mse, len(x), make_batch(x, y), config(steps=4, val_every=0), root / "first")
    cfg = config(steps=4, val_every=0, lr=5e-3)
    return net, fit(net, mse, len(x), make_batch(x, y), cfg, root / "second")


def worker(rank: int, root: Path) -> None:
    """Run every scenario in this process (rank ``rank``); save weights and results in root."""
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo",
        init_method=f"file://{root / 'rendezvous'}",
        rank=rank,
        world_size=WORLD,
        timeout=timedelta(seconds=60),
    )
    writes: list[str] = []
    save, write_text = train_mod.save_checkpoint, train_mod.atomic_write_text

    def spy_save(path, state):
        writes.append(str(path))
        save(path, state)

    def spy_write_text(path, text):
        writes.append(str(path))
        write_text(path, text)

    train_mod.save_checkpoint, train_mod.atomic_write_text = spy_save, spy_write_text
    results: dict = {}

    def keep(name: str, net: Net, result: train_mod.FitResult) -> None:
        torch.save(net.state_dict(), root / f"{name}_{rank}.pt")
        results[name] = {
            "step": result.step,
            "resumed_from": result.resumed_from,
            "best_val_loss": result.best_val_loss,
            "history": result.history,
        }

    keep("exact", *exact(root / "exact"))
    try:
        exact(root / "exact_cut", crash_after=8)
    except Crash:
        pass
    keep("from_single", *exact(root / "from_single"))  # the parent left a checkpoint there
    keep("small", *small(root / "small"))
    keep("twice", *twice(root / "twice"))
    keep("noisy", *noisy(root / "noisy"))
    try:
        noisy(root / "noisy_cut", crash_after=12)
    except Crash:
        pass
    keep("noisy_resumed", *noisy(root / "noisy_cut"))
    results["signalled_at"] = signalled(root / "signalled", rank)
    keep("signalled_resumed", *noisy(root / "signalled"))
    try:
        x, y = data()
        fit(model(), mse, len(x), make_batch(x, y), config(batch_size=7), root / "odd")
    except InputError as err:
        results["odd_batch_error"] = str(err)
    try:
        x, y = data()
        per_rank = DistributedSampler(range(len(x)), num_replicas=WORLD, rank=rank, seed=3)
        fit(model(), mse, per_rank, make_batch(x, y), config(), root / "per_rank")
    except InputError as err:
        results["per_rank_sampler_error"] = str(err)
    try:  # a folder per process, where only rank 0's holds a checkpoint (the parent put it)
        exact(root / f"unshared_{rank}")
    except InputError as err:
        results["unshared_error"] = str(err)
    (root / f"results_{rank}.json").write_text(json.dumps({"writes": writes, **results}))
    distributed.cleanup()


def launch(root: Path, timeout: float = 120.0) -> None:
    """Run :func:`worker` in ``WORLD`` fresh processes; raise if one fails or they hang."""
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker, args=(r, root)) for r in range(WORLD)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    try:
        while any(p.is_alive() for p in procs):
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed:
                raise RuntimeError(f"a training process failed with exit code {failed[0]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"the training processes did not finish in {timeout} s")
            time.sleep(0.05)
        codes = [p.exitcode for p in procs]
        if any(codes):
            raise RuntimeError(f"training processes ended with exit codes {codes}")
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
