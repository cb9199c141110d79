"""How much ``attrackt run`` trains on the machine at hand: a plan it states before it starts.

With a GPU the method's model sizes train for the benchmark's budgets; on a CPU, small models
train within a time that a person waits for (default: about ten minutes on two cores for a movie
of DIC-C2DH-HeLa's size). Training is bounded by time, not steps (the step time is measured in
at most 5 % of each budget, :mod:`attrackt.budget`, and re-planned as the run goes), so the
plan holds on a busy machine too; the stages around training (preparing the crops, predicting,
linking, scoring) take the rest.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from attrackt.errors import InputError
from attrackt.model.transformer import TransformerConfig
from attrackt.train import resolve_device

#: share of the training time that goes to the auto-encoder (the rest: the association model)
EMBED_SHARE = 1 / 3
#: minutes of the whole job by default, and the share of it that training may take
DEFAULT_MINUTES = {"cpu": 10.0, "gpu": 15.0}
TRAIN_SHARE = {"cpu": 0.75, "gpu": 0.85}
#: the small association model of a CPU plan
SMALL_MODEL = dict(d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2, dropout=0.0)


@dataclass(frozen=True)
class RunPlan:
    """What ``attrackt run`` will do: on which ``device`` (``cores`` CPU cores), about how many
    ``minutes`` in all, of which ``embed_minutes`` and ``train_minutes`` train the two models,
    with the method's model sizes or ``small`` ones."""

    device: str
    cores: int
    minutes: float
    embed_minutes: float
    train_minutes: float
    small: bool

    def describe(self) -> str:
        """The plan in one paragraph, for the person who waits."""
        where = "the GPU" if self.device == "cuda" else f"{self.device.upper()}, {self.cores} cores"
        model = (
            "small models (a 2+2-layer transformer of width 64) so that the CPU finishes"
            if self.small
            else "the method's models (a 6+6-layer transformer of width 256)"
        )
        return (
            f"plan: about {self.minutes:.0f} min on {where}: the auto-encoder trains for "
            f"{self.embed_minutes:.1f} min and the association model for "
            f"{self.train_minutes:.1f} min, {model}; then prediction, linking (checked against "
            "linking by position alone) and scoring. A longer --minutes (or --train-minutes) "
            "trains longer."
        )


def plan_run(
    device: str = "auto", minutes: float | None = None, train_minutes: float | None = None
) -> RunPlan:
    """The plan for ``device``: ``minutes`` for the whole job (default :data:`DEFAULT_MINUTES`),
    or ``train_minutes`` for the training alone (both models, the step-time probes included)."""
    kind = resolve_device(device).type
    group = "cpu" if kind == "cpu" else "gpu"
    for name, value in (("--minutes", minutes), ("--train-minutes", train_minutes)):
        if value is not None and not value > 0:
            raise InputError(name, f"must be a positive number of minutes, got {value}")
    if train_minutes is None:
        total = DEFAULT_MINUTES[group] if minutes is None else minutes
        train_minutes = TRAIN_SHARE[group] * total
    else:
        total = minutes if minutes is not None else train_minutes / TRAIN_SHARE[group]
    return RunPlan(
        device=kind,
        cores=os.cpu_count() or 1,
        minutes=total,
        embed_minutes=EMBED_SHARE * train_minutes,
        train_minutes=(1 - EMBED_SHARE) * train_minutes,
        small=group == "cpu",
    )


def apply_plan(config, plan: RunPlan, seed: int = 0):  # config: attrackt.pipeline.PipelineConfig
    """``config`` with the plan's budgets, model sizes and device; inner progress bars off (the
    run shows one bar over the whole job)."""
    embed, train, predict = config.embed, config.train, config.predict
    device = plan.device
    embed_train = dataclasses.replace(
        embed.train, steps=10**6, device=device, seed=seed, progress=False
    )
    assoc_train = dataclasses.replace(
        train.train, steps=10**6, device=device, seed=seed, progress=False
    )
    model, ae = train.model, embed.model
    if plan.small:
        model = TransformerConfig(**SMALL_MODEL)
        ae = dataclasses.replace(ae, base_channels=16)
        assoc_train = dataclasses.replace(assoc_train, batch_size=8, lr=1e-3, min_lr=3e-5)
        embed_train = dataclasses.replace(embed_train, batch_size=64, lr=1e-3, min_lr=3e-5)
    return dataclasses.replace(
        config,
        embed=dataclasses.replace(embed, model=ae, train=embed_train, minutes=plan.embed_minutes),
        train=dataclasses.replace(
            train, model=model, train=assoc_train, minutes=plan.train_minutes
        ),
        predict=dataclasses.replace(predict, device=device, tta=not plan.small, progress=False),
    )
