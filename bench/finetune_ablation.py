"""Experiment (c): what fine-tuning needs: LoRA vs full fine-tuning vs no pseudo-supervision.

On the same confidence-ranked answers: ``lora`` (the method: adapters on q/k/v/out, the
unsupervised + supervised + pseudo-supervised loss), ``full`` (every parameter trains, same
loss), ``nopseudo`` (LoRA without the pseudo-labels), and ``pin-only`` (no fine-tuning: the base
model's associations, only the answers pinned in the ILP), which separates what the answers fix
directly from what the model learns from them.

Writes ``bench/results/finetune_ablation.json`` (``{dataset: {variant: {budget: AOGM}}}``
with the ratios to ``lora``) and ``finetune_ablation.png``. Phases and arguments as in
``bench/active_learning.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _finetune_jobs as fj

VARIANTS = ("lora", "full", "nopseudo", "pin-only")


def make_jobs(name: str, budgets: list[int]) -> list[fj.Job]:
    return [fj.Job(name, "confidence", b, v) for v in VARIANTS for b in budgets]


def wanted(job: fj.Job) -> bool:
    return job.strategy == "confidence" and job.variant in VARIANTS


def report(results: dict[str, Any], context: dict[str, Any], out: Path) -> None:
    per_dataset: dict[str, Any] = {}
    for name, info in context.items():
        aogm = fj.curves(results, name, "variant")
        lora = aogm.get("lora", {})
        per_dataset[name] = {
            **aogm,
            "division_f1": fj.curves(results, name, "variant", "division_f1"),
            "over_lora": {v: fj.ratios(c, lora) for v, c in aogm.items() if v != "lora"},
            "references": fj.reference_table(info),
            "cells": info["cells"],
        }
    fj.write_json(
        out / "finetune_ablation.json", {**per_dataset, "jobs": results, "machine": fj.machine()}
    )
    fj.plot_curves(
        out / "finetune_ablation.png",
        {n: {v: d[v] for v in VARIANTS if v in d} for n, d in per_dataset.items()},
        context,
        "Fine-tuning ablation (confidence-ranked answers)",
    )


if __name__ == "__main__":
    fj.main(__doc__.splitlines()[0], make_jobs, wanted, report, default_budgets="10,100")
