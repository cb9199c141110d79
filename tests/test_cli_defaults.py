"""Every command-line option that sets a configuration field starts from that field's default:
no value is written in two places."""

from __future__ import annotations

import inspect

import pytest

from attrackt.active import RankConfig
from attrackt.cli import learn, link, pipeline, proofread
from attrackt.finetune import FinetuneConfig
from attrackt.link.config import LinkConfig
from attrackt.model.lora import LoRAConfig
from attrackt.predict import PredictConfig
from attrackt.training import AssociationTrainConfig

LINK, RANK, TRAIN = LinkConfig(), RankConfig(), AssociationTrainConfig()
PREDICT, FINETUNE, LORA = PredictConfig(), FinetuneConfig(), LoRAConfig()

CASES = [
    *[(link.link_command, name, getattr(LINK, name)) for name in (
        "k", "max_distance", "max_gap", "divisions", "solver", "time_limit", "threads",
        "pin_nodes", "normalise", "distance_weight", "association_weight", "edge_bias",
        "hyper_bias", "daughter_size_weight", "appear", "disappear", "border_cells",
        "border_margin", "guard",
    )],
    (proofread.rank_command, "k", LINK.k),
    (proofread.rank_command, "strategy", RANK.strategy),
    (proofread.rank_command, "seed", RANK.seed),
    (pipeline.run_command, "k", LINK.k),
    (learn.train_command, "steps", TRAIN.train.steps),
    (learn.train_command, "batch_size", TRAIN.train.batch_size),
    (learn.train_command, "lr", TRAIN.train.lr),
    (learn.train_command, "window", TRAIN.windows.window),
    (learn.train_command, "max_tokens", TRAIN.windows.max_tokens),
    (learn.train_command, "d_model", TRAIN.model.d_model),
    (learn.train_command, "layers", TRAIN.model.encoder_layers),
    (learn.train_command, "heads", TRAIN.model.n_heads),
    (learn.train_command, "dropout", TRAIN.model.dropout),
    (learn.train_command, "val_frames", TRAIN.val_frames),
    (learn.predict_command, "tta", PREDICT.tta),
    (learn.predict_command, "threshold", PREDICT.threshold),
    (learn.predict_command, "max_dt", PREDICT.max_dt),
    (learn.predict_command, "batch_size", PREDICT.batch_size),
    *[(command, name, value) for command in (learn.finetune_command, proofread.loop_command)
      for name, value in (
        ("rank", LORA.rank), ("alpha", LORA.alpha), ("dropout", LORA.dropout),
        ("targets", ",".join(LORA.targets)), ("pseudo_fraction", FINETUNE.pseudo_fraction),
        ("steps_per_cell", FINETUNE.steps_per_cell), ("lr", FINETUNE.train.lr),
        ("batch_size", FINETUNE.train.batch_size),
      )],
]  # fmt: skip


@pytest.mark.parametrize(
    "command, option, value", CASES, ids=[f"{c.__name__}-{o}" for c, o, _ in CASES]
)
def test_an_options_default_is_its_configurations(command, option, value):
    assert inspect.signature(command).parameters[option].default == value


def test_k_is_the_methods_everywhere():
    assert LINK.k == 10
    assert {inspect.signature(c).parameters["k"].default for c in (
        link.link_command, proofread.rank_command, pipeline.run_command)} == {10}  # fmt: skip
