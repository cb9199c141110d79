"""Fine-tuning a saved model, simulated proof-reading rounds, and their commands."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import attrackt.loop as loop_module
from attrackt.active import proofread
from attrackt.cli import app
from attrackt.data import Annotations, Associations, Tracks
from attrackt.features import regionprops_features
from attrackt.finetune import FinetuneConfig, finetune_checkpoint
from attrackt.link import LinkConfig
from attrackt.link.held_out import blend, held_out_errors
from attrackt.loop import LoopConfig, simulate
from attrackt.model import TransformerConfig, WindowConfig
from attrackt.model.lora import LoRAConfig, lora_layers
from attrackt.predict import PredictConfig, predict_associations, predict_from_checkpoint
from attrackt.synthetic import SyntheticConfig, generate
from attrackt.train import TrainConfig
from attrackt.training import (
    AssociationTrainConfig,
    load_association_model,
    train_association_model,
    windows_from_extra,
)

pytestmark = pytest.mark.usefixtures("single_thread")

FAST = TrainConfig(steps=6, batch_size=4, lr=1e-3, device="cpu", progress=False, log_every=2)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small synthetic movie (features as the embedding) and a base model trained on it
    without labels for a few steps."""
    movie = generate(
        SyntheticConfig(shape=(112, 112), frames=7, density=10, step=4, division_rate=0.1, seed=2)
    )
    gt = movie.tracks("02")
    det = regionprops_features(movie.images, movie.masks, gt.detections)
    det = det.with_vectors(embedding=det.table[det.feature_columns].to_numpy(np.float32))
    gt = Tracks(det, gt.edges)
    folder = tmp_path_factory.mktemp("base")
    config = AssociationTrainConfig(
        model=TransformerConfig(d_model=32, n_heads=2, encoder_layers=1, decoder_layers=1),
        windows=WindowConfig(window=3),
        train=dataclasses.replace(FAST, steps=20),
        heads_width=8,
        val_frames=0.0,
    )
    train_association_model(det, None, config, folder)
    return det, gt, folder / "last.pt"


def small_finetune(**changes) -> FinetuneConfig:
    config = FinetuneConfig(
        lora=LoRAConfig(rank=4, alpha=4.0), min_steps=4, max_steps=4, train=FAST
    )
    return dataclasses.replace(config, **changes)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_finetuned_checkpoint_keeps_the_base_and_its_merged_model_predicts_the_same(base, tmp_path):
    det, gt, checkpoint = base
    before = digest(checkpoint)
    answers = proofread(det.ids[:5], gt)
    result = finetune_checkpoint(checkpoint, det, answers, small_finetune(), tmp_path / "ft")
    assert digest(checkpoint) == before
    # a quarter of the answered cells (1 of 5) is held out of training, to check the model on
    assert result.steps == 4 and result.answered == 4 and lora_layers(result.model)
    assert len(result.held_out) == 1 and set(result.held_out) <= set(det.ids[:5].tolist())
    assert (tmp_path / "ft" / "adapters.pt").is_file()
    merged, extra = load_association_model(tmp_path / "ft" / "model.pt")
    assert not lora_layers(merged) and extra["finetune"]["answered"] == 4
    assert extra["finetune"]["held_out"] == result.held_out
    every = finetune_checkpoint(
        checkpoint, det, answers, small_finetune(check_fraction=0.0), tmp_path / "all"
    )
    assert every.answered == 5 and every.held_out is None
    settings = PredictConfig(tta=False, device="cpu")
    windows = windows_from_extra(extra)
    adapted = predict_associations(result.model, det, windows, settings).table
    plain = predict_associations(merged, det, windows, settings).table
    assert adapted[["source", "target"]].equals(plain[["source", "target"]])
    np.testing.assert_allclose(adapted["score"], plain["score"], atol=1e-5)
    base_model, _ = load_association_model(checkpoint)
    unchanged = predict_associations(base_model, det, windows, settings)
    before_tuning = unchanged.lookup(plain["source"], plain["target"])
    assert np.abs(before_tuning - plain["score"].to_numpy()).max() > 1e-5  # it did change


def test_training_from_scratch_starts_from_random_weights(base, tmp_path):
    det, gt, checkpoint = base
    answers = proofread(det.ids[:3], gt)
    config = small_finetune(pseudo_fraction=0.0, unsupervised_weight=0.0)
    result = finetune_checkpoint(checkpoint, det, answers, config, tmp_path, scratch=True)
    assert not lora_layers(result.model)
    trained, _ = load_association_model(checkpoint)
    name = "transformer.input_proj.weight"
    assert not torch.allclose(dict(result.model.named_parameters())[name].cpu(),
                              dict(trained.named_parameters())[name])  # fmt: skip
    assert {"supervised"} <= set().union(*(r.keys() for r in result.history))
    assert "attrackt" not in set().union(*(r.keys() for r in result.history))


def loop_config(budgets=(3, 8), strategy="confidence") -> LoopConfig:
    return LoopConfig(
        budgets=budgets,
        strategy=strategy,
        finetune=small_finetune(),
        predict=PredictConfig(tta=False, device="cpu"),
    )


def test_rounds_answer_cumulative_budgets_pin_the_answers_and_are_not_redone(
    base, tmp_path, monkeypatch
):
    det, gt, checkpoint = base
    records = simulate(checkpoint, det, gt, loop_config(), tmp_path)
    assert [r["answered"] for r in records] == [0, 3, 8]
    assert [r["new"] for r in records] == [0, 3, 5]
    assert all(np.isfinite(r["AOGM"]) for r in records)
    journal = Annotations.load(tmp_path / "answers.jsonl")
    assert len(journal) == 8
    final = Tracks.load(tmp_path / "round2_8" / "tracks")
    want, got = gt.children(), final.children()
    for cell, kids in journal.latest().items():  # pinned: the answered links are in the result
        assert sorted(got.get(cell, [])) == sorted(kids) == sorted(want.get(cell, []))
    saved = json.loads((tmp_path / "rounds.json").read_text())
    assert json.dumps(saved) == json.dumps(records)

    def no_finetuning(*args, **kwargs):
        raise AssertionError("a finished round was redone")

    monkeypatch.setattr(loop_module, "finetune_checkpoint", no_finetuning)
    again = simulate(checkpoint, det, gt, loop_config(), tmp_path)
    assert json.dumps(again) == json.dumps(records)


def test_a_budget_beyond_the_cells_is_clamped_with_a_warning(base, tmp_path, caplog):
    det, gt, checkpoint = base
    askable = int((det.times < det.times.max()).sum())
    with caplog.at_level(logging.WARNING):
        records = simulate(checkpoint, det, gt, loop_config((10**6,), "random"), tmp_path)
    assert records[-1]["answered"] == askable
    assert "more than the" in caplog.text
    with pytest.raises(Exception, match="increasing"):
        loop_config((10, 5))


def test_cli_finetune_and_loop(base, tmp_path):
    det, gt, checkpoint = base
    det.save(tmp_path / "det.parquet")
    gt.save(tmp_path / "gt")
    journal = proofread(det.ids[:4], gt, Annotations(tmp_path / "answers.jsonl"))
    small = ["--rank", "4", "--max-steps", "3", "--batch-size", "2", "--device", "cpu"]
    run = CliRunner().invoke
    args = ["finetune", str(checkpoint), str(tmp_path / "det.parquet"), str(journal.path),
            "--out", str(tmp_path / "ft"), "--pseudo-fraction", "0", *small]  # fmt: skip
    result = run(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ft" / "adapters.pt").is_file() and (tmp_path / "ft" / "model.pt").is_file()
    result = run(app, args[: -len(small) - 2] + small)  # pseudo-labels without their inputs
    assert result.exit_code == 1 and "--tracks and --associations" in result.output
    assert not (tmp_path / "ft" / "check.json").exists()  # nothing to check against: no check
    # with the base model's associations, a quarter of 16 answers is held out to check on
    settings = PredictConfig(tta=False, device="cpu")
    base_model, extra = load_association_model(checkpoint)
    before = predict_associations(base_model, det, windows_from_extra(extra), settings)
    before.save(tmp_path / "base.parquet")
    many = proofread(det.ids[:16], gt, Annotations(tmp_path / "many.jsonl"))
    checked = ["finetune", str(checkpoint), str(tmp_path / "det.parquet"), str(many.path),
               "--out", str(tmp_path / "checked"), "--pseudo-fraction", "0",
               "--associations", str(tmp_path / "base.parquet"), *small]  # fmt: skip
    result = run(app, checked)
    assert result.exit_code == 0, result.output
    verdict = json.loads((tmp_path / "checked" / "check.json").read_text())
    assert verdict["held_out"] == 4 and verdict["kept"] in ("tuned", "base")
    _, tuned_extra = load_association_model(tmp_path / "checked" / "model.pt")
    held = set(tuned_extra["finetune"]["held_out"])
    assert len(held) == 4 and held <= set(many.latest())
    assert verdict["wrong_base"] == held_out_errors(det, before, many, held, LinkConfig())
    chosen = Associations.load(tmp_path / "checked" / "associations.parquet")
    assert verdict["kept"] == "tuned"  # linked with the rest pinned, no held-out cell worse
    tuned = predict_from_checkpoint(
        tmp_path / "checked" / "model.pt", det, PredictConfig(device="cpu")
    )
    pairs = (before.table["source"].to_numpy(), before.table["target"].to_numpy())
    assert chosen.lookup(*pairs) == pytest.approx(blend(before, tuned).lookup(*pairs), abs=1e-6)
    args = ["loop", str(checkpoint), str(tmp_path / "det.parquet"), "--gt", str(tmp_path / "gt"),
            "--out", str(tmp_path / "loop"), "--budget", "2,4", "--no-tta", *small]  # fmt: skip
    result = run(app, args)
    assert result.exit_code == 0, result.output
    assert "round 2" in result.output
    rounds = json.loads((tmp_path / "loop" / "rounds.json").read_text())
    assert [r["answered"] for r in rounds] == [0, 2, 4]
    result = run(app, [*args[: -len(small) - 3], "--budget", "4,2"])
    assert result.exit_code == 1 and "increasing" in result.output


@pytest.mark.realdata
def test_oracle_answers_pinned_when_relinking_real_data_fix_those_cells(shared_data):
    from attrackt.active import RankConfig, rank_cells, select
    from attrackt.evaluate import evaluate
    from attrackt.io.ctc import load_ctc
    from attrackt.link import LinkConfig, link

    seq = shared_data / "ci" / "Fluo-N2DL-HeLa_01_t0-40_crop350x550"
    gt = load_ctc(seq / "01_GT" / "TRA", images=False).tracks
    det = gt.detections
    base = link(det, None, None, LinkConfig(k=3)).tracks
    ranking = rank_cells(det, base, config=RankConfig("oracle"), gt=gt)
    wrong = int((ranking["score"] > 0).sum())
    want = gt.children()

    def wrong_links(tracks: Tracks, cells) -> int:
        have = tracks.children()
        return sum(sorted(have.get(c, [])) != sorted(want.get(c, [])) for c in cells)

    asked = select(ranking, wrong + 10)  # the oracle's finds, then cells it sees no fault in
    assert wrong > 0 and wrong_links(base, asked) == wrong
    answers = proofread(asked, gt)
    assert answers.validate(det) == []
    fixed = link(det, None, answers, LinkConfig(k=3)).tracks
    assert wrong_links(fixed, asked) == 0
    # (an answer fixes its cell's children only: a child it frees may be linked elsewhere)
    assert np.isfinite(evaluate(fixed, gt, chota=False)["AOGM"])
