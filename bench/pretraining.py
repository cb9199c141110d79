"""Experiment (b): unsupervised pre-training + fine-tuning against training from scratch on the
same answers.

``pretrained``: the unsupervised base model, LoRA-fine-tuned on the answered cells (with
pseudo-labels and the unsupervised term, as the method does). ``scratch``: a model of the same
shape from random weights, every parameter trained on the same answered cells only (supervised
term, no pseudo-labels, no unsupervised term), for as many steps. Cells are ranked by
confidence on the base model's solution; the answers are pinned when linking either way. The
claim: pre-training wins when answers are few.

Writes ``bench/results/pretraining.json`` (``{dataset: {"pretrained": {budget: AOGM},
"scratch": {...}}}`` with the scratch/pretrained ratios) and ``pretraining.png``. Phases and
arguments as in ``bench/active_learning.py`` (the same WORK and OUT folders can be shared: jobs
they have in common run once).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import _finetune_jobs as fj

LABELS = {"lora": "pretrained", "scratch": "scratch"}


def make_jobs(name: str, budgets: list[int]) -> list[fj.Job]:
    return [fj.Job(name, "confidence", b, v) for v in LABELS for b in budgets]


def wanted(job: fj.Job) -> bool:
    return job.strategy == "confidence" and job.variant in LABELS


def report(results: dict[str, Any], context: dict[str, Any], out: Path) -> None:
    per_dataset: dict[str, Any] = {}
    for name, info in context.items():
        aogm = {LABELS[v]: c for v, c in fj.curves(results, name, "variant").items()}
        f1 = {LABELS[v]: c for v, c in fj.curves(results, name, "variant", "division_f1").items()}
        per_dataset[name] = {
            **aogm,
            "division_f1": f1,
            "scratch_over_pretrained": fj.ratios(
                aogm.get("scratch", {}), aogm.get("pretrained", {})
            ),
            "references": fj.reference_table(info),
            "cells": info["cells"],
        }
    fj.write_json(
        out / "pretraining.json", {**per_dataset, "jobs": results, "machine": fj.machine()}
    )
    fj.plot_curves(
        out / "pretraining.png",
        {n: {k: v for k, v in d.items() if k in LABELS.values()} for n, d in per_dataset.items()},
        context,
        "Pre-trained + fine-tuned vs trained from scratch on the same answers",
    )


if __name__ == "__main__":
    fj.main(__doc__.splitlines()[0], make_jobs, wanted, report)
