"""Experiment (a): AOGM against the number of proof-read cells, three ranking strategies.

For each dataset (the method's: Fluo-N2DL-HeLa 02 and DIC-C2DH-HeLa 02, GT detections), the
unsupervised base model's solution is ranked by ``confidence`` (the method's score), ``random``
and ``optimal`` (an oracle that knows the ground truth); the simulated proof-reader answers the
top k cells for each budget; the base model is LoRA-fine-tuned on the answers (plus
pseudo-labels), predicts again, and the answers are pinned when linking again. The method
claims: confidence beats random; optimal lowers AOGM fastest; and the goal here is an AOGM
below the fully supervised model's with <= 1 % of the cells proof-read.

Writes ``bench/results/active.json``: ``{"confidence": {budget: AOGM}, "random": {...},
"optimal": {...}}`` for the largest dataset prepared, the same per dataset under ``"datasets"``
(with division F1, the references and the random/confidence ratios), and ``active.png``.

    # CPU, once per dataset (a store from `attrackt prepare`, or --detections + --gt):
    python bench/active_learning.py prepare --work W --name Fluo-N2DL-HeLa-02 \
        --store hela.npz --sequence 02 --checkpoint unsup/last.pt --associations unsup02.parquet \
        [--supervised sup02.parquet]
    python bench/active_learning.py gpu --work W --out OUT [--max-steps N] [--job-seconds S]
    python bench/active_learning.py evaluate --work W --out OUT          # CPU
    python bench/active_learning.py demo --work /tmp/demo                # all on the CPU
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _finetune_jobs as fj

STRATEGIES = ("confidence", "random", "optimal")


def make_jobs(name: str, budgets: list[int]) -> list[fj.Job]:
    return [fj.Job(name, s, b, "lora") for s in STRATEGIES for b in budgets]


def wanted(job: fj.Job) -> bool:
    return job.variant == "lora"


def report(results: dict[str, Any], context: dict[str, Any], out: Path) -> None:
    per_dataset: dict[str, Any] = {}
    for name, info in context.items():
        aogm = fj.curves(results, name, "strategy")
        per_dataset[name] = {
            "cells": info["cells"],
            "AOGM": aogm,
            "division_f1": fj.curves(results, name, "strategy", "division_f1"),
            "references": fj.reference_table(info),
            "random_over_confidence": fj.ratios(aogm.get("random", {}), aogm.get("confidence", {})),
            "goal": fj.goal(aogm.get("confidence", {}), info),
        }
    # the top-level curves: the largest dataset's (HeLa 02 in the method's experiments)
    primary = max(per_dataset, key=lambda name: per_dataset[name]["cells"], default=None)
    payload = {
        **{s: per_dataset[primary]["AOGM"].get(s, {}) if primary else {} for s in STRATEGIES},
        "dataset": primary,
        "datasets": per_dataset,
        "jobs": results,
        "machine": fj.machine(),
    }
    fj.write_json(out / "active.json", payload)
    fj.plot_curves(
        out / "active.png",
        {name: per_dataset[name]["AOGM"] for name in per_dataset},
        context,
        "AOGM after LoRA fine-tuning on proof-read cells (lower is better)",
    )


if __name__ == "__main__":
    fj.main(__doc__.splitlines()[0], make_jobs, wanted, report)
