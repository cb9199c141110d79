"""``attrackt run`` with the tests' short training (for ``--quick``), in a process of its own.

    python _interrupted_run.py [SIGNAL STAGE STEP] -- RUN-ARGUMENTS...

With ``SIGNAL STAGE STEP`` (e.g. ``SIGINT embed 4``) the process sends itself the signal during
training step STEP of that stage's model (``embed``: the auto-encoder; ``train``: the
association model), as a person pressing Ctrl-C or a cluster ending a job would.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from types import ModuleType

import torch

import attrackt.embed.train
import attrackt.training
from attrackt import pipeline
from attrackt.cli import app

sys.path.insert(0, str(Path(__file__).parent))
from _tiny_project import shorten  # noqa: E402


def signal_at(module: ModuleType, signum: int, step: int) -> None:
    """Make ``module.fit`` send ``signum`` to this process while it draws batch ``step``."""
    real_fit = module.fit

    def fit(model, loss_fn, data, make_batch, *args, **kwargs):
        calls = 0

        def batch(indices):
            nonlocal calls
            calls += 1
            if calls == step:
                os.kill(os.getpid(), signum)
            return make_batch(indices)

        return real_fit(model, loss_fn, data, batch, *args, **kwargs)

    module.fit = fit


if __name__ == "__main__":
    torch.set_num_threads(1)
    split = sys.argv.index("--")
    if split > 1:
        name, stage, step = sys.argv[1:split]
        module = {"embed": attrackt.embed.train, "train": attrackt.training}[stage]
        signal_at(module, signal.Signals[name], int(step))
    quick = pipeline.PipelineConfig.quick
    pipeline.PipelineConfig.quick = lambda seed=0, device="auto": shorten(quick(seed, device))
    sys.argv = ["attrackt", "run", *sys.argv[split + 1 :]]
    app()
