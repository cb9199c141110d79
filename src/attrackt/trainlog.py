"""The training log, ``log.jsonl``: one JSON record per line, for each log or validation event of
:func:`attrackt.train.fit`. Holds the running means of the steps between two records
(:class:`LossWindow`), appending a record (:func:`append_record`) and reading an earlier run's
records (:func:`read_log`). :mod:`attrackt.train` re-exports :data:`LOG`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import torch

from attrackt import distributed
from attrackt.io.jsonfile import strict_json

LOG = "log.jsonl"


def read_log(path: Path, up_to_step: float) -> list[dict[str, float]]:
    """The records of an earlier run's log up to ``up_to_step`` (later ones are being redone)."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash
        if record.get("step", 0) <= up_to_step:
            records.append(record)
    return records


def append_record(path: Path, record: Mapping[str, float]) -> None:
    """Add ``record`` to the log at ``path`` as one line of strict JSON."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(strict_json(record) + "\n")


class LossWindow:
    """The steps since the last log record: their losses and gradient norms, each weighted by
    this process's share of its batch, and the samples they drew since ``start`` (seconds)."""

    def __init__(self, start: float) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.start = start

    def add(
        self,
        losses: Mapping[str, torch.Tensor],
        grad_norm: torch.Tensor,
        weight: float,
        samples: int,
    ) -> None:
        """Count one step of ``samples`` global samples (without waiting for the device)."""
        for key, value in losses.items():
            self.sums[key] = self.sums.get(key, 0.0) + value.detach().float() * weight
        self.sums["grad_norm"] = (
            self.sums.get("grad_norm", 0.0) + grad_norm.detach().float() * weight
        )
        self.steps += 1
        self.samples += samples

    def means(self) -> dict[str, float]:
        """The mean of each quantity over the window's steps and every process (a collective:
        every process calls it)."""
        keys = list(self.sums)
        totals = distributed.all_reduce_sum(torch.stack([self.sums[k] for k in keys]))
        return dict(zip(keys, (totals / self.steps).tolist(), strict=True))

    def samples_per_second(self, now: float) -> float:
        """The window's samples over the seconds from its start to ``now``."""
        return self.samples / max(now - self.start, 1e-9)
