"""Training throughput of the association model on 1 and 2 GPUs (data-parallel, torchrun).

For each process count (``--nprocs``, default 1 and 2) this starts
``python -m torch.distributed.run --standalone --nproc-per-node N bench/ddp.py --worker ...``
on the same machine: every process builds the same synthetic windows on its device (random-walk
cells with a random appearance embedding, made on the fly: nothing is read from disk) and
trains the association transformer with its Attrackt heads through ``attrackt.train.fit`` for
``--steps`` steps of the same *global* batch. Throughput is read from rank 0's training log
(windows per second between the first log record at or after ``--warmup`` steps and the last),
so start-up, the first steps and the final checkpoint are not counted. One process is a plain
single-process run (no DistributedDataParallel): the peer the scaling is measured against.

Prints a table and writes JSON (``--out``, default ``bench/results/ddp.json``) with ``gpus_1``
and ``gpus_2`` (windows/s), ``scaling`` (their ratio), ``card``, the machine, the commit and
every setting.

    PYTHONPATH=src python bench/ddp.py --device cuda         # on a machine with 2 GPUs
    PYTHONPATH=src python bench/ddp.py --device cpu --steps 5 --out /tmp/ddp.json  # dry run

Needs torch, numpy, pandas and tqdm (``import attrackt`` loads pandas); no scipy, no pyarrow.
On the CPU the model is small unless sizes are given.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import provenance, write_results  # noqa: E402

from attrackt import distributed
from attrackt.data import Detections
from attrackt.losses import AttracktHeads, objective
from attrackt.model import AssociationTransformer, TransformerConfig, WindowConfig, WindowSet
from attrackt.train import TrainConfig, fit, resolve_device

REPO = Path(__file__).resolve().parents[1]

FEATURES, EMBEDDING, WINDOW = 7, 64, 6
SIZES = {  # d_model, layers (encoder = decoder), heads, global batches, tokens per window
    "gpu": dict(d_model=256, layers=6, heads=4, batch="32,128", tokens=384),  # the method's model
    "cpu": dict(d_model=64, layers=2, heads=4, batch="4", tokens=60),  # a dry run
}


class Associator(nn.Module):
    """The association transformer and, for the unsupervised objective, its Attrackt heads."""

    kind = "bench_association"

    def __init__(self, config: TransformerConfig, heads: bool) -> None:
        super().__init__()
        self.config = config
        self.transformer = AssociationTransformer(config)
        self.heads = AttracktHeads(config.embedding_dim) if heads else None


def synthetic_windows(frames: int, tokens: int, device: torch.device) -> WindowSet:
    """Windows of ``WINDOW`` frames over ``tokens / WINDOW`` random-walking cells (seeded)."""
    rng = np.random.default_rng(0)
    cells = max(1, tokens // WINDOW)
    walk = rng.normal(scale=4, size=(frames, cells, 2)).cumsum(0) + rng.uniform(0, 500, (cells, 2))
    ids = np.arange(frames * cells).reshape(frames, cells)
    detections = Detections.from_arrays(
        np.repeat(np.arange(frames), cells),
        walk.reshape(-1, 2),
        ids=ids.ravel(),
        vectors={"embedding": rng.normal(size=(frames * cells, EMBEDDING))},
        **{f"f{k}": rng.normal(size=frames * cells) for k in range(FEATURES)},
    )
    edges = np.stack([ids[:-1].ravel(), ids[1:].ravel()], 1)  # one track per cell
    return WindowSet.build(detections, edges, WindowConfig(window=WINDOW), device=device)


def worker(args: argparse.Namespace) -> None:
    """One process of a torchrun launch: train and leave the log in ``args.dir``."""
    device = distributed.setup(resolve_device(args.device))
    windows = synthetic_windows(args.frames, args.tokens, device)
    config = TransformerConfig(
        feature_dim=FEATURES,
        embedding_dim=EMBEDDING,
        d_model=args.d_model,
        n_heads=args.heads,
        encoder_layers=args.layers,
        decoder_layers=args.layers,
    )
    torch.manual_seed(0)
    model = Associator(config, heads=args.objective != "supervised")

    def loss_fn(m: Associator, batch) -> dict[str, torch.Tensor]:
        return objective(m.transformer, m.heads, batch, args.objective, transitive_weight=0.1)

    train = TrainConfig(
        steps=args.steps,
        batch_size=args.batch,
        lr=1e-4,
        warmup_steps=0.05,
        log_every=args.log_every,
        val_every=0,
        checkpoint_every=0,
        device=str(device),
        progress=False,
        seed=0,
    )
    fit(model, loss_fn, len(windows), lambda idx: windows.batch(idx, augment=True), train, args.dir)


def steady_throughput(log: Path, warmup: int, batch: int) -> dict[str, float]:
    """Windows per second between the first record at or after ``warmup`` steps and the last."""
    records = [r for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]
    start = next((r for r in records if r["step"] >= warmup), None)
    end = records[-1] if records else None
    if start is None or end is None or end["step"] <= start["step"]:
        raise SystemExit(f"{log}: no log records after the {warmup} warm-up steps to time")
    steps = end["step"] - start["step"]
    seconds = end["seconds"] - start["seconds"]
    return {
        "windows_per_s": steps * batch / seconds,
        "timed_steps": steps,
        "timed_seconds": seconds,
        "final_loss": end["loss"],
    }


def launch(args: argparse.Namespace, nprocs: int, batch: int, folder: Path) -> dict[str, float]:
    """Run ``nprocs`` worker processes through torchrun; their throughput from rank 0's log."""
    env = {**os.environ}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    # as many CPU threads per process in every run: one process stands for one device
    most = max(int(n) for n in args.nprocs.split(","))
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // most)))
    env.setdefault("NCCL_NVLS_ENABLE", "0")  # no NVLink multicast (shared machines)
    env.setdefault("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1")
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nprocs),
        str(Path(__file__).resolve()),
        "--worker",
        "--dir",
        str(folder),
    ]
    for name in ("device", "steps", "tokens", "frames", "d_model", "layers", "heads"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    command += ["--batch", str(batch), "--objective", args.objective]
    command += ["--log-every", str(args.log_every)]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-4000:] + done.stderr[-8000:])
        raise SystemExit(
            f"the run with {nprocs} processes, batch {batch} failed (exit code {done.returncode})"
        )
    return {
        "processes": nprocs,
        "batch": batch,
        **steady_throughput(folder / "log.jsonl", args.warmup, batch),
        "wall_s": wall,
    }


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (NCCL) or cpu (gloo)")
    parser.add_argument("--nprocs", default="1,2", help="process counts to compare")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps [steps / 5]")
    parser.add_argument("--log-every", type=int, default=None, help="[10, or 1 for few steps]")
    parser.add_argument(
        "--batch", default=None, help="global batches of windows, e.g. 32,128 (the last: headline)"
    )
    parser.add_argument("--tokens", type=int, default=None, help="detections per window")
    parser.add_argument("--frames", type=int, default=200, help="frames of the synthetic movie")
    parser.add_argument("--d-model", type=int, default=None)
    parser.add_argument("--layers", type=int, default=None, help="encoder (= decoder) layers")
    parser.add_argument("--heads", type=int, default=None)
    parser.add_argument(
        "--objective", default="unsupervised", choices=("unsupervised", "supervised", "mixed")
    )
    parser.add_argument("--timeout", type=float, default=540.0, help="seconds per run")
    parser.add_argument("--commit", default=None, help="the commit measured [git rev-parse]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "ddp.json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sizes = SIZES["cpu" if args.device == "cpu" else "gpu"]
    for name, value in sizes.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.log_every is None:
        args.log_every = 1 if args.steps <= 20 else 10
    if args.warmup is None:
        args.warmup = max(1, args.steps // 5)
    return args


def main() -> None:
    args = parse()
    if args.worker:
        args.batch = int(args.batch)
        worker(args)
        return
    counts = [int(n) for n in args.nprocs.split(",")]
    batches = [int(b) for b in str(args.batch).split(",")]
    if args.device.startswith("cuda"):
        if torch.cuda.device_count() < max(counts):
            raise SystemExit(f"{max(counts)} GPUs needed, {torch.cuda.device_count()} found")
        card = torch.cuda.get_device_name(0)
    else:
        card = platform.processor() or platform.machine()
    with tempfile.TemporaryDirectory() as tmp:
        runs = [
            launch(args, n, b, Path(tmp) / f"batch{b}_procs{n}") for b in batches for n in counts
        ]
    by_batch = {}
    for b in batches:
        rate = {r["processes"]: r["windows_per_s"] for r in runs if r["batch"] == b}
        by_batch[b] = {f"gpus_{n}": w for n, w in rate.items()}
        by_batch[b]["scaling"] = rate[counts[-1]] / rate[counts[0]]
    result = {
        "benchmark": "ddp",
        "what": (
            f"association transformer (d_model {args.d_model}, {args.layers}+{args.layers} "
            f"layers, {args.heads} heads) with Attrackt heads, {args.objective} objective, "
            "trained by attrackt.train.fit; DistributedDataParallel for several processes"
        ),
        "unit": "windows/s",
        **by_batch[batches[-1]],
        "scaling_of": f"{counts[-1]} processes over {counts[0]}, global batch {batches[-1]}",
        "card": card,
        "device": args.device,
        "provenance": dict(provenance(), **({"commit": args.commit} if args.commit else {})),
        "settings": {
            k: getattr(args, k)
            for k in (
                "steps",
                "warmup",
                "log_every",
                "batch",
                "tokens",
                "frames",
                "d_model",
                "layers",
                "heads",
                "objective",
            )
        },  # fmt: skip
        "by_batch": by_batch,
        "runs": runs,
    }
    print(f"{result['what']}; {card}; {args.tokens} tokens per window")
    print(f"{'batch':>6s} {'processes':>9s} {'windows/s':>10s} {'timed steps':>11s} {'loss':>8s}")
    for r in runs:
        print(
            f"{r['batch']:6d} {r['processes']:9d} {r['windows_per_s']:10.1f} "
            f"{r['timed_steps']:11d} {r['final_loss']:8.4f}"
        )
    for b, row in by_batch.items():
        print(f"scaling, batch {b} ({counts[-1]} processes over {counts[0]}): {row['scaling']:.2f}")
    write_results(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
