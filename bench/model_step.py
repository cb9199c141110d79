"""Throughput of one unsupervised training step (forward + backward) of the association model.

Times, for a batch of windows of random detections: the whole step (transformer + Attrackt
and transitive losses), and the loss part alone against a per-sample loop version of the same
losses (the pattern of the peer's training code: a Python loop over the samples of a batch and
over frame blocks). Prints a table and writes ``bench/results/model_step.json``.

    python bench/model_step.py [--device auto] [--batch 8] [--tokens 300] [--threads N] [--json F]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, provenance, write_results  # noqa: E402

from attrackt.data import Detections
from attrackt.losses import AttracktHeads, attrackt_loss, objective, transitive_loss
from attrackt.model import (
    AssociationTransformer,
    TransformerConfig,
    WindowConfig,
    WindowSet,
    normalise_associations,
)

FEATURES, EMBEDDING, WINDOW = 7, 64, 6
CONFIGS = {
    "method (d256, 6+6 layers, 4 heads)": dict(
        d_model=256, n_heads=4, encoder_layers=6, decoder_layers=6
    ),
    "small (d64, 2+2 layers, 4 heads)": dict(
        d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2
    ),
}


def pick_device(name: str) -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def random_windows(batch: int, tokens: int, device: torch.device) -> WindowSet:
    """``batch`` windows of ``WINDOW`` frames with ``tokens / WINDOW`` moving cells each."""
    rng = np.random.default_rng(0)
    cells = tokens // WINDOW
    frames = WINDOW + batch - 1
    walk = rng.normal(scale=4, size=(frames, cells, 2)).cumsum(0) + rng.uniform(0, 500, (cells, 2))
    ids = np.arange(frames * cells).reshape(frames, cells)
    det = Detections.from_arrays(
        np.repeat(np.arange(frames), cells),
        walk.reshape(-1, 2),
        ids=ids.ravel(),
        vectors={"embedding": rng.normal(size=(frames * cells, EMBEDDING))},
        **{f"f{k}": rng.normal(size=frames * cells) for k in range(FEATURES)},
    )
    edges = np.stack([ids[:-1].ravel(), ids[1:].ravel()], 1)
    return WindowSet.build(det, edges, WindowConfig(window=WINDOW), device=device)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def seconds(fn, device: torch.device, repeats: int) -> float:
    fn()  # warm-up
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeats


def looped_losses(A, z, times, mask, heads, window: int) -> torch.Tensor:
    """The same losses with a Python loop over samples and frame blocks (the peer's pattern)."""
    attrackt, transitive = 0.0, 0.0
    for b in range(A.shape[0]):
        real = mask[b]
        a, t, zb = A[b][real][:, real], times[b][real], z[b][real]
        message = heads.m_e(zb)
        for dt in range(1, window):
            target = t[None, :] - t[:, None] == dt
            gathered = (a * target).T @ message
            rows = target.any(0)
            if rows.any():
                attrackt = attrackt + ((heads.m_d(gathered[rows]) - zb[rows]) ** 2).mean()
        for s in range(window - 2):
            i, j, k = (t == s), (t == s + 1), (t == s + 2)
            if i.any() and j.any() and k.any():
                composed = a[i][:, j] @ a[j][:, k]
                transitive = transitive + ((a[i][:, k] - composed) ** 2).mean()
    return attrackt + 0.1 * transitive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--json", type=Path, default=RESULTS / "model_step.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    windows = random_windows(args.batch, args.tokens, device)
    batch = windows.batch(np.arange(args.batch))
    heads = AttracktHeads(EMBEDDING).to(device)
    rows = []
    for name, sizes in CONFIGS.items():
        torch.manual_seed(0)
        config = TransformerConfig(feature_dim=FEATURES, embedding_dim=EMBEDDING, **sizes)
        model = AssociationTransformer(config).to(device).train()

        def step(model=model):
            out = objective(model, heads, batch, "unsupervised", transitive_weight=0.1)
            out["loss"].backward()

        with torch.no_grad():
            logits = model(batch.coords, batch.mask, batch.features, batch.z)
        leaf = logits.detach().requires_grad_(True)

        def batched_losses(leaf=leaf):
            A = normalise_associations(leaf, batch.times, batch.mask, n_frames=WINDOW)
            loss = attrackt_loss(A, batch.z, batch.times, batch.mask, heads, n_frames=WINDOW)
            (loss + 0.1 * transitive_loss(A, batch.times, batch.mask)).backward()

        def per_sample_losses(leaf=leaf):
            A = normalise_associations(leaf, batch.times, batch.mask, n_frames=WINDOW)
            looped_losses(A, batch.z, batch.times, batch.mask, heads, WINDOW).backward()

        t_step = seconds(step, device, args.repeats)
        t_loss = seconds(batched_losses, device, args.repeats)
        t_loop = seconds(per_sample_losses, device, args.repeats)
        rows.append(
            {
                "config": name,
                "parameters": sum(p.numel() for p in model.parameters()),
                "step_s": t_step,
                "windows_per_s": args.batch / t_step,
                "tokens_per_s": args.batch * args.tokens / t_step,
                "losses_batched_s": t_loss,
                "losses_per_sample_loop_s": t_loop,
                "loop_over_batched": t_loop / t_loss,
            }
        )
    print(
        f"device {device}, threads {torch.get_num_threads()}, batch {args.batch} windows x "
        f"{args.tokens} tokens, forward + backward (unsupervised objective)"
    )
    print(
        f"{'config':38s} {'params':>9s} {'step s':>8s} {'windows/s':>10s} "
        f"{'loss s':>8s} {'loop s':>8s} {'loop/ours':>9s}"
    )
    for r in rows:
        print(
            f"{r['config']:38s} {r['parameters']:9d} {r['step_s']:8.3f} {r['windows_per_s']:10.2f}"
            f" {r['losses_batched_s']:8.4f} {r['losses_per_sample_loop_s']:8.4f}"
            f" {r['loop_over_batched']:9.2f}"
        )
    result = {
        "benchmark": "model_step",
        "provenance": provenance(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "batch": args.batch,
        "tokens": args.tokens,
        "window": WINDOW,
        "features": FEATURES,
        "embedding": EMBEDDING,
        "repeats": args.repeats,
        "rows": rows,
    }
    write_results(args.json, result)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
