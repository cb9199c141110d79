"""Shared machinery of the fine-tuning experiments (active_learning, pretraining,
finetune_ablation): a CPU phase that plans, one GPU phase that fine-tunes and predicts, and a CPU
phase that links, scores, plots and writes JSON.

The GPU machine lacks the linking and scoring libraries, so the work is split:

1. ``prepare`` (CPU): per dataset, link the base model's associations (the unsupervised
   solution), score it and the references (position only; the supervised model when given),
   rank the cells once per strategy, let the simulated proof-reader answer the top ``k`` for
   each budget (one journal per strategy and budget; budgets are nested), pick the
   pseudo-labels, and write a plan of fine-tuning jobs to ``WORK/plan.json`` with everything a
   job needs (slim detections ``.npz``, a weights-only copy of the base checkpoint).
2. ``gpu``: every job of the plan not yet done: fine-tune, predict, write the associations to
   ``OUT/<job>/associations.npz``. Imports only torch, numpy, pandas and attrackt's training
   code, so it runs where motile, traccuracy, highspy, zarr, geff and imagecodecs are absent.
3. ``evaluate`` (CPU): link every job's associations with its answers pinned, score it.

Rankings come from the base model once (the method's protocol): budget k's cells are the top
k of one ranking. ``attrackt loop`` runs the adaptive version (re-ranking after each round) on
one machine.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.io.atomic import atomic_path, atomic_write_text

logger = logging.getLogger("bench")

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"

#: fine-tuning variants: how each differs from the method's LoRA fine-tuning
VARIANTS = {
    "lora": {},
    "full": {"lora": None},
    "nopseudo": {"pseudo_fraction": 0.0},
    "scratch": {"lora": None, "pseudo_fraction": 0.0, "unsupervised_weight": 0.0},
}
#: candidates per cell, as in the method's experiments and bench/attrackt_hela.py
METHOD_K = 10
#: untimed fine-tuning steps that warm the device up before a dataset's first job
WARM_UP_STEPS = 20
#: variants that need no GPU: the base associations, only the answers pinned
CPU_VARIANTS = ("pin-only",)


# --------------------------------------------------------------------------------------------
# small files that travel to the GPU machine (numpy only)
# --------------------------------------------------------------------------------------------


def save_detections_npz(detections: Detections, path: Path, compact: bool = True) -> None:
    """The table and vectors; ``compact`` stores the vectors as float16 (they are what makes
    the file large, and what travels to the GPU machine has a size limit)."""
    arrays = {f"col/{c}": detections.table[c].to_numpy() for c in detections.table.columns}
    arrays["col/sequence"] = detections.table["sequence"].to_numpy().astype(str)
    dtype = np.float16 if compact else np.float32
    arrays.update({f"vec/{k}": v.astype(dtype) for k, v in detections.vectors.items()})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_detections_npz(path: Path) -> Detections:
    with np.load(path) as archive:
        table = pd.DataFrame({k[4:]: archive[k] for k in archive.files if k.startswith("col/")})
        vectors = {k[4:]: archive[k] for k in archive.files if k.startswith("vec/")}
    return Detections(table, vectors)


def save_associations_npz(associations: Associations, path: Path) -> None:
    """Compressed, ids as int32 and dt as uint8: what comes back from the GPU stays small."""
    table = associations.table
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                source=table["source"].to_numpy(np.int32),
                target=table["target"].to_numpy(np.int32),
                dt=table["dt"].to_numpy(np.uint8),
                score=table["score"].to_numpy(np.float32),
            )


def candidate_associations(associations: Associations, detections: Detections) -> Associations:
    """Only the pairs the linker can use (its k = METHOD_K candidate links): dropping the rest
    changes no linking result and keeps what comes back from the GPU small."""
    from attrackt.link import LinkConfig, candidate_links

    return associations.between(candidate_links(detections, LinkConfig(k=METHOD_K)))


def load_associations_npz(path: Path) -> Associations:
    with np.load(path) as archive:
        return Associations(pd.DataFrame({k: archive[k] for k in archive.files}))


def slim_checkpoint(source: Path, target: Path, compact: bool = True) -> None:
    """A copy of a training checkpoint without the optimiser and random states; ``compact``
    stores float32 weights as float16 (loading casts them back to the model's float32)."""
    import torch

    from attrackt.train import load_checkpoint, save_checkpoint

    checkpoint = load_checkpoint(source)
    state = checkpoint.state
    keep = ("format", "kind", "model_config", "step", "train_config", "extra")
    weights = {
        k: v.half() if compact and v.dtype == torch.float32 else v
        for k, v in checkpoint.model_state.items()
    }
    save_checkpoint(
        target, {**{k: state[k] for k in keep}, "model": weights, "best_val_loss": None}
    )
    logger.info("%s -> %s (%.1f MB)", source, target, target.stat().st_size / 2**20)


# --------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------


@dataclass
class Job:
    """One fine-tuning run: a dataset, the ranking strategy, the budget and the variant."""

    dataset: str
    strategy: str
    budget: int
    variant: str

    @property
    def key(self) -> str:
        return f"{self.dataset}/{self.strategy}/{self.budget}/{self.variant}"

    @property
    def labels(self) -> str:
        """The folder (under the dataset) of its answers and pseudo-labels."""
        return f"{self.strategy}/{self.budget}"


def load_plan(work: Path) -> dict[str, Any]:
    path = work / "plan.json"
    if not path.is_file():
        return {"datasets": {}, "jobs": {}}
    return json.loads(path.read_text())


def save_plan(work: Path, plan: dict[str, Any]) -> None:
    atomic_write_text(work / "plan.json", json.dumps(plan, indent=1))


def link_and_score(
    detections: Detections,
    gt: Tracks,
    associations: Associations | None,
    annotations: Annotations | None,
    link_config: Any,
) -> dict[str, float]:
    from attrackt.evaluate import evaluate
    from attrackt.link import link

    start = time.perf_counter()
    result = link(detections, associations, annotations, link_config)
    scores = evaluate(result.tracks, gt, chota=False)
    return {**scores, "link_seconds": time.perf_counter() - start}


def prepare_dataset(
    work: Path,
    name: str,
    detections: Detections,
    gt: Tracks,
    checkpoint: Path,
    associations: Associations,
    jobs: Iterable[Job],
    *,
    supervised: Associations | None = None,
    link_config: Any = None,
    pseudo_fraction: float = 0.1,
    seed: int = 0,
    compact: bool = True,
) -> None:
    """The CPU phase for one dataset (see the module text); adds its jobs to the plan.
    ``compact``: what the GPU reads (embeddings, base weights) is stored as float16."""
    from attrackt.active import RankConfig, proofread, rank_cells, select
    from attrackt.finetune import pseudo_labels
    from attrackt.link import LinkConfig, link

    link_config = link_config or LinkConfig(k=METHOD_K)
    jobs = list(jobs)
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    plan = load_plan(work)
    save_detections_npz(detections, folder / "detections.npz", compact)
    gt.save(folder / "gt")
    associations.save(folder / "associations.parquet")
    slim_checkpoint(checkpoint, folder / "base.pt", compact)
    base = link(detections, associations, None, link_config)
    references = {
        "position_only": link_and_score(detections, gt, None, None, link_config),
        "unsupervised": link_and_score(detections, gt, associations, None, link_config),
    }
    if supervised is not None:
        references["supervised"] = link_and_score(detections, gt, supervised, None, link_config)
    atomic_write_text(folder / "references.json", json.dumps(references, indent=1))
    for strategy in sorted({j.strategy for j in jobs}):
        ranking = rank_cells(
            detections,
            base.tracks,
            associations,
            RankConfig(strategy, seed),
            gt=gt,
            candidates=link_config,
        )
        for budget in sorted({j.budget for j in jobs if j.strategy == strategy}):
            target = folder / strategy / str(budget)
            target.mkdir(parents=True, exist_ok=True)
            (target / "answers.jsonl").unlink(missing_ok=True)
            answers = proofread(select(ranking, budget), gt, Annotations(target / "answers.jsonl"))
            parents, links = pseudo_labels(
                detections, base.tracks, associations, answers, pseudo_fraction
            )
            with atomic_path(target / "pseudo.npz") as tmp:
                with open(tmp, "wb") as fh:
                    np.savez(fh, parents=parents, links=links)
    plan["datasets"][name] = {"cells": len(detections), "seed": seed}
    for job in jobs:
        plan["jobs"][job.key] = dataclasses.asdict(job)
    save_plan(work, plan)
    logger.info(
        "%s: %d cells, references %s, %d jobs planned",
        name,
        len(detections),
        {k: round(v["AOGM"], 1) for k, v in references.items()},
        len(jobs),
    )


# --------------------------------------------------------------------------------------------
# the GPU phase
# --------------------------------------------------------------------------------------------


def finetune_config(
    variant: str,
    max_steps: int | None,
    job_seconds: float | None,
    device: str,
    lr: float | None = None,
    batch_size: int | None = None,
):
    from attrackt.finetune import FinetuneConfig

    base = FinetuneConfig()
    train = dataclasses.replace(
        base.train,
        device=device,
        progress=False,
        log_every=25,
        lr=lr or base.train.lr,
        batch_size=batch_size or base.train.batch_size,
    )
    return dataclasses.replace(
        base,
        **VARIANTS[variant],
        max_steps=max_steps,
        min_steps=min(base.min_steps, max_steps or base.min_steps),
        minutes=None if job_seconds is None else job_seconds / 60,
        train=train,
    )


def run_gpu_jobs(
    work: Path,
    out: Path,
    *,
    keys: Iterable[str] | None = None,
    max_steps: int | None = None,
    job_seconds: float | None = None,
    tta: bool = True,
    device: str = "auto",
    lr: float | None = None,
    batch_size: int | None = None,
) -> None:
    """Fine-tune and predict every planned job (or ``keys``) whose output is missing."""
    import torch

    from attrackt.finetune import finetune_checkpoint
    from attrackt.predict import PredictConfig, predict_associations
    from attrackt.training import windows_from_extra

    plan = load_plan(work)
    wanted = list(plan["jobs"]) if keys is None else list(keys)
    started = time.perf_counter()
    warm: set[str] = set()
    for key in wanted:
        job = Job(**plan["jobs"][key])
        if job.variant in CPU_VARIANTS:
            continue
        target = out / key
        if (target / "job.json").is_file():
            continue
        folder = work / job.dataset
        detections = load_detections_npz(folder / "detections.npz")
        labels = folder / job.labels
        answers = Annotations.load(labels / "answers.jsonl")
        with np.load(labels / "pseudo.npz") as archive:
            pseudo = (archive["parents"], archive["links"])
        config = finetune_config(job.variant, max_steps, job_seconds, device, lr, batch_size)
        if job.dataset not in warm and job_seconds is not None:
            # A first fine-tuning in a process (or on a dataset's window shapes) pays for the
            # device's start and its kernels; untimed here, it would eat a job's time budget
            # (measured on an H100: the first job of 10 s got 1 step, the next ones ~110).
            few = finetune_config(job.variant, WARM_UP_STEPS, None, device, lr, batch_size)
            with tempfile.TemporaryDirectory() as scratch:
                finetune_checkpoint(
                    folder / "base.pt", detections, answers, few, Path(scratch), pseudo=pseudo
                )
            warm.add(job.dataset)
        run = work / "runs" / key  # weights stay out of OUT, which travels back: a job cut
        t0 = time.perf_counter()  # short leaves only small files there (and resumes from here)
        result = finetune_checkpoint(
            folder / "base.pt",
            detections,
            answers,
            config,
            run,
            pseudo=pseudo,
            scratch=job.variant == "scratch",
        )
        t1 = time.perf_counter()
        extra = torch.load(run / "model.pt", weights_only=True)["extra"]
        associations = predict_associations(
            result.model,
            detections,
            windows_from_extra(extra),
            PredictConfig(tta=tta, device=device, progress=False),
        )
        associations = candidate_associations(associations, detections)
        save_associations_npz(associations, target / "associations.npz")
        record = {
            **dataclasses.asdict(job),
            "answered": result.answered,
            "pseudo_cells": result.pseudo,
            "steps": result.steps,
            "finetune_seconds": t1 - t0,
            "predict_seconds": time.perf_counter() - t1,
            "device": str(torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"),
        }
        shutil.copy(run / "log.jsonl", target / "log.jsonl")
        shutil.rmtree(run)
        atomic_write_text(target / "job.json", json.dumps(record, indent=1))
        logger.info(
            "%s: %d steps, fine-tune %.1f s, predict %.1f s (%.0f s so far)",
            key,
            result.steps,
            record["finetune_seconds"],
            record["predict_seconds"],
            time.perf_counter() - started,
        )


# --------------------------------------------------------------------------------------------
# the evaluation phase
# --------------------------------------------------------------------------------------------


def evaluate_jobs(
    work: Path, out: Path, wanted: Any = None, link_config: Any = None
) -> dict[str, dict[str, Any]]:
    """Link and score every job (``wanted(job)`` true, when given) that has its GPU output or
    needs none: ``{key: record}``."""
    from attrackt.link import LinkConfig

    link_config = link_config or LinkConfig(k=METHOD_K)
    plan = load_plan(work)
    data: dict[str, tuple[Detections, Tracks]] = {}
    results: dict[str, dict[str, Any]] = {}
    for key, spec in plan["jobs"].items():
        job = Job(**spec)
        if wanted is not None and not wanted(job):
            continue
        folder = work / job.dataset
        if job.dataset not in data:
            detections = load_detections_npz(folder / "detections.npz")
            data[job.dataset] = (detections, Tracks.load(folder / "gt"))
        detections, gt = data[job.dataset]
        answers = Annotations.load(folder / job.labels / "answers.jsonl")
        if job.variant in CPU_VARIANTS:
            associations = Associations.load(folder / "associations.parquet")
            record: dict[str, Any] = {**spec, "answered": len(answers)}
        else:
            done = out / key / "job.json"
            if not done.is_file():
                logger.warning("%s: no GPU output in %s; skipped", key, out / key)
                continue
            record = json.loads(done.read_text())
            associations = load_associations_npz(out / key / "associations.npz")
        record.update(link_and_score(detections, gt, associations, answers, link_config))
        results[key] = record
        logger.info("%s: AOGM %.1f", key, record["AOGM"])
    return results


def context(work: Path) -> dict[str, dict[str, Any]]:
    """``{dataset: {"cells": n, "references": {name: metrics}}}`` from :func:`prepare_dataset`."""
    plan = load_plan(work)
    return {
        name: {
            "cells": info["cells"],
            "references": json.loads((work / name / "references.json").read_text()),
        }
        for name, info in plan["datasets"].items()
    }


# --------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "git_commit": commit,
    }


def curves(
    results: dict[str, dict[str, Any]], dataset: str, group: str, metric: str = "AOGM"
) -> dict[str, dict[int, float]]:
    """``{strategy or variant: {budget: metric}}`` of one dataset (``group``: "strategy" or
    "variant")."""
    out: dict[str, dict[int, float]] = {}
    for record in results.values():
        if record["dataset"] == dataset:
            out.setdefault(record[group], {})[int(record["budget"])] = float(record[metric])
    return {k: dict(sorted(v.items())) for k, v in sorted(out.items())}


def plot_curves(
    path: Path,
    panels: dict[str, dict[str, dict[int, float]]],
    refs: dict[str, dict[str, Any]],
    title: str,
    metric: str = "AOGM",
) -> None:
    """One panel per dataset: ``metric`` against the number of answered cells, with the
    references (position only, unsupervised, supervised) as horizontal lines."""
    from matplotlib.figure import Figure

    from attrackt.plots import plot_budget_curves, save_figure

    fig = Figure(figsize=(6 * max(len(panels), 1), 4.5), layout="constrained")
    axes = fig.subplots(1, max(len(panels), 1), squeeze=False)[0]
    for ax, (dataset, lines) in zip(axes, panels.items(), strict=False):
        reference = refs.get(dataset, {}).get("references", {})
        plot_budget_curves(
            lines, metric, reference={k: v[metric] for k, v in reference.items()}, ax=ax
        )
        ax.set_title(dataset)
    fig.suptitle(title)
    save_figure(fig, path)


def ratios(numerator: dict[int, float], denominator: dict[int, float]) -> dict[int, float]:
    """``numerator / denominator`` at each budget both have."""
    return {b: numerator[b] / denominator[b] for b in numerator if denominator.get(b)}


def goal(curve: dict[int, float], info: dict[str, Any], share: float = 0.01) -> dict[str, Any]:
    """Whether some budget of at most ``share`` of the cells reaches an AOGM below the
    supervised model's (``met`` is ``None`` without a supervised reference or such a budget)."""
    limit = share * info["cells"]
    within = {b: a for b, a in curve.items() if b <= limit}
    supervised = info["references"].get("supervised", {}).get("AOGM")
    best = min(within.values()) if within else None
    met = None if best is None or supervised is None else bool(best < supervised)
    return {"max_cells": limit, "best_AOGM": best, "supervised_AOGM": supervised, "met": met}


def reference_table(info: dict[str, Any]) -> dict[str, dict[str, float]]:
    keys = ("AOGM", "division_f1", "fp_edges", "fn_edges", "ws_edges")
    return {name: {k: m[k] for k in keys} for name, m in info["references"].items()}


def write_json(path: Path, payload: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(payload, indent=1, default=float))


def print_table(results: dict[str, dict[str, Any]]) -> None:
    rows = [
        (k, r.get("answered", 0), r.get("steps", "-"), r["AOGM"], r.get("division_f1", np.nan))
        for k, r in sorted(results.items())
    ]
    print(f"{'job':44s} {'answered':>8s} {'steps':>6s} {'AOGM':>8s} {'div F1':>7s}")
    for key, answered, steps, aogm, f1 in rows:
        print(f"{key:44s} {answered:8d} {steps!s:>6s} {aogm:8.1f} {f1:7.3f}")


# --------------------------------------------------------------------------------------------
# the command line shared by the three experiments
# --------------------------------------------------------------------------------------------


def demo_inputs(work: Path, steps: int, seed: int = 0) -> dict[str, Any]:
    """A small synthetic movie with features as its embedding, and a tiny base model trained
    without labels on it for ``steps`` steps on the CPU: what the CPU proof runs on."""
    from attrackt.features import regionprops_features
    from attrackt.model import TransformerConfig, WindowConfig
    from attrackt.predict import PredictConfig, predict_from_checkpoint
    from attrackt.synthetic import SyntheticConfig, generate
    from attrackt.train import TrainConfig
    from attrackt.training import AssociationTrainConfig, train_association_model

    movie = generate(
        SyntheticConfig(
            shape=(160, 160),
            frames=14,
            density=12.0,
            step=5.0,
            division_rate=0.08,
            radius=6.0,
            seed=seed,
        )
    )
    gt = movie.tracks("02")
    detections = regionprops_features(movie.images, movie.masks, gt.detections)
    features = detections.table[detections.feature_columns].to_numpy(np.float32)
    detections = detections.with_vectors(embedding=features)
    gt = Tracks(detections, gt.edges)
    config = AssociationTrainConfig(
        objective="unsupervised",
        model=TransformerConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1),
        windows=WindowConfig(window=4),
        train=TrainConfig(steps=steps, batch_size=4, lr=1e-3, device="cpu", progress=False),
        heads_width=16,
        val_frames=0.0,
    )
    train_association_model(detections, None, config, work / "demo_base")
    checkpoint = work / "demo_base" / "last.pt"
    associations = predict_from_checkpoint(
        checkpoint, detections, PredictConfig(tta=False, device="cpu")
    )
    return {"detections": detections, "gt": gt, "checkpoint": checkpoint, "assoc": associations}


def load_inputs(args: Any) -> dict[str, Any]:
    """The dataset named by the ``prepare`` arguments."""
    if args.store is not None:
        from attrackt.store import Store

        store = Store.load(args.store, masks=False)
        if args.sequence:
            store = store.select([args.sequence])
        detections = store.detections
        if args.embedding is not None:  # e.g. embedding_test.npz of bench/attrackt_hela.py
            with np.load(args.embedding) as saved:
                z = np.zeros((len(detections), saved["embedding"].shape[1]), np.float32)
                z[detections.rows_of(saved["ids"])] = saved["embedding"]
            detections = detections.with_vectors(embedding=z)
        gt = Tracks(detections, store.edges())
    else:
        detections = Detections.load(args.detections)
        gt = Tracks.load(args.gt)
        gt = Tracks(detections, gt.edges)
    return {
        "detections": detections,
        "gt": gt,
        "checkpoint": args.checkpoint,
        "assoc": Associations.load(args.associations),
        "supervised": None if args.supervised is None else Associations.load(args.supervised),
    }


def main(
    description: str,
    make_jobs: Any,  # (dataset name, budgets) -> list[Job]
    wanted: Any,  # (job) -> bool: the jobs this experiment reports
    report: Any,  # (results, context, results_dir) -> None
    default_budgets: str = "10,100,1000",
) -> None:
    """``prepare`` | ``gpu`` | ``evaluate`` | ``demo`` (see the module text)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    sub = parser.add_subparsers(dest="phase", required=True)
    prep = sub.add_parser("prepare", help="CPU: link, rank, answer, plan (one dataset)")
    prep.add_argument("--work", type=Path, required=True)
    prep.add_argument("--name", required=True, help="dataset name, e.g. Fluo-N2DL-HeLa-02")
    prep.add_argument("--store", type=Path, help="store (attrackt prepare) with GT edges")
    prep.add_argument("--sequence", help="the store's test sequence, e.g. 02")
    prep.add_argument(
        "--embedding", type=Path, help="npz of ids + embedding, when the store has none"
    )
    prep.add_argument("--detections", type=Path, help="detections parquet (without --store)")
    prep.add_argument("--gt", type=Path, help="GT tracks folder (without --store)")
    prep.add_argument("--checkpoint", type=Path, required=True, help="unsupervised base model")
    prep.add_argument("--associations", type=Path, required=True, help="its predictions")
    prep.add_argument("--supervised", type=Path, help="a supervised model's predictions")
    prep.add_argument("--budgets", default=default_budgets)
    prep.add_argument("--seed", type=int, default=0)
    prep.add_argument(
        "--full-precision", action="store_true", help="ship float32 embeddings and weights"
    )
    gpu = sub.add_parser("gpu", help="fine-tune and predict every planned job")
    gpu.add_argument("--work", type=Path, required=True)
    gpu.add_argument("--out", type=Path, required=True)
    gpu.add_argument("--max-steps", type=int, default=None)
    gpu.add_argument(
        "--job-seconds",
        type=float,
        default=15.0,
        help="time cap of each fine-tuning (steps measured first; 0: none) [15]",
    )
    gpu.add_argument("--no-tta", action="store_true", help="predict without test-time flips")
    gpu.add_argument("--device", default="auto")
    gpu.add_argument(
        "--only", action="append", help="run only jobs whose key contains this (repeatable)"
    )
    gpu.add_argument("--lr", type=float, default=None, help="peak learning rate [1e-4]")
    gpu.add_argument("--batch-size", type=int, default=None, help="windows per step [8]")
    ev = sub.add_parser("evaluate", help="CPU: link, score, plot, write JSON")
    ev.add_argument("--work", type=Path, required=True)
    ev.add_argument("--out", type=Path, required=True, help="the gpu phase's --out")
    ev.add_argument("--results", type=Path, default=RESULTS)
    demo = sub.add_parser("demo", help="all phases on a small synthetic movie, on the CPU")
    demo.add_argument("--work", type=Path, required=True)
    demo.add_argument("--results", type=Path, help="default: WORK/results")
    demo.add_argument("--budgets", default="3,10,30")
    demo.add_argument("--base-steps", type=int, default=60)
    demo.add_argument("--max-steps", type=int, default=20)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def budgets(text: str) -> list[int]:
        return [int(b) for b in text.split(",") if b.strip()]

    if args.phase == "prepare":
        inputs = load_inputs(args)
        prepare_dataset(
            args.work,
            args.name,
            inputs["detections"],
            inputs["gt"],
            inputs["checkpoint"],
            inputs["assoc"],
            make_jobs(args.name, budgets(args.budgets)),
            supervised=inputs["supervised"],
            seed=args.seed,
            compact=not args.full_precision,
        )
    elif args.phase == "gpu":
        planned = load_plan(args.work)["jobs"]
        keys = [
            key
            for key, spec in planned.items()
            if wanted(Job(**spec)) and (not args.only or any(o in key for o in args.only))
        ]
        run_gpu_jobs(
            args.work,
            args.out,
            keys=keys,
            max_steps=args.max_steps,
            job_seconds=args.job_seconds or None,
            tta=not args.no_tta,
            device=args.device,
            lr=args.lr,
            batch_size=args.batch_size,
        )
    elif args.phase == "evaluate":
        results = evaluate_jobs(args.work, args.out, wanted)
        print_table(results)
        args.results.mkdir(parents=True, exist_ok=True)
        report(results, context(args.work), args.results)
    else:
        inputs = demo_inputs(args.work, args.base_steps)
        prepare_dataset(
            args.work,
            "synthetic",
            inputs["detections"],
            inputs["gt"],
            inputs["checkpoint"],
            inputs["assoc"],
            make_jobs("synthetic", budgets(args.budgets)),
            supervised=None,
        )
        run_gpu_jobs(args.work, args.work / "out", max_steps=args.max_steps, device="cpu")
        results = evaluate_jobs(args.work, args.work / "out", wanted)
        print_table(results)
        target = args.results or args.work / "results"
        target.mkdir(parents=True, exist_ok=True)
        report(results, context(args.work), target)
