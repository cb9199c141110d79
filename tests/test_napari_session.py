"""The proof-reading controller behind the napari widget (no Qt, no napari)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.geff import read_geff
from attrackt.link import link
from attrackt.napari.layers import tracks_from_layer, tracks_layer
from attrackt.napari.rounds import link_changes
from attrackt.napari.session import ProofreadSession, SessionConfig
from attrackt.synthetic import SyntheticConfig, generate


@pytest.fixture(scope="module")
def clip():
    return generate(
        SyntheticConfig(shape=(96, 96), frames=8, density=8, division_rate=0.15, step=3, seed=1)
    )


@pytest.fixture(scope="module")
def movie(clip):
    """The tiny movie's ground truth, a solver that cut one link (``ends``) and missed one
    daughter of a division (``halved``), and associations that score every true link 0.9 and
    nothing else."""
    gt = clip.tracks("s")
    kids = gt.children()
    halved = next(p for p, c in kids.items() if len(c) == 2)
    ends = next(p for p, c in kids.items() if len(c) == 1 and p != halved)
    cut = {(halved, kids[halved][1]), (ends, kids[ends][0])}
    solver = Tracks(
        gt.detections, np.asarray([e for e in gt.edges.tolist() if tuple(e) not in cut])
    )
    assoc = Associations.from_arrays(gt.edges[:, 0], gt.edges[:, 1], np.full(len(gt.edges), 0.9))
    return gt, solver, assoc, halved, ends


def session_of(movie, tmp_path, **kwargs) -> ProofreadSession:
    gt, solver, assoc, _, _ = movie
    journal = Annotations.load(tmp_path / "answers.jsonl")
    return ProofreadSession(None, solver, assoc, journal, work_dir=tmp_path / "rounds", **kwargs)


def replayed(tmp_path) -> dict[int, tuple[int, ...]]:
    return Annotations.load(tmp_path / "answers.jsonl").latest()


def test_ranking_puts_the_solver_errors_first_and_orders_by_disagreement(movie, tmp_path):
    gt, solver, assoc, halved, ends = movie
    session = session_of(movie, tmp_path)
    ranking = session.ranking
    det = gt.detections
    # the disagreement |model mass - solver links| computed here from the edges themselves
    mass = dict.fromkeys(det.ids.tolist(), 0.0)
    for p in gt.edges[:, 0].tolist():
        mass[p] += 0.9
    degree = dict.fromkeys(det.ids.tolist(), 0)
    for p in solver.edges[:, 0].tolist():
        degree[p] += 1
    expected = [abs(mass[i] - degree[i]) for i in ranking["id"].tolist()]
    np.testing.assert_allclose(ranking["score"], expected, atol=1e-6)
    assert np.all(np.diff(ranking["score"].to_numpy()) <= 1e-9)
    assert ranking["id"].tolist()[:2] == [ends, halved]  # 0.9 and 0.8 beat every other cell
    assert ranking["rank"].tolist() == list(range(1, len(ranking) + 1))
    last = det.times.max()
    assert set(ranking["id"]) == set(det.ids[det.times < last].tolist())
    assert session.current.id == ends and session.current.rank == 1


def test_navigation_next_previous_jump_go_to(movie, tmp_path):
    session = session_of(movie, tmp_path)
    ids = session.ranking["id"].tolist()
    assert session.previous().id == ids[0]  # the first stays
    assert session.next().id == ids[1] and session.next().id == ids[2]
    assert session.previous().id == ids[1]
    assert session.jump(len(ids)).id == ids[-1]
    assert session.next().id == ids[-1]  # the last stays
    with pytest.raises(InputError, match="between 1 and"):
        session.jump(len(ids) + 1)
    assert session.go_to(ids[3]).rank == 4
    det = movie[0].detections
    last = int(det.ids[det.times == det.times.max()][0])
    with pytest.raises(InputError, match="last frame"):
        session.go_to(last)
    with pytest.raises(InputError, match="no detection"):
        session.go_to(10**9)


def test_each_answer_kind_is_journaled_and_replays(movie, tmp_path):
    gt, solver, assoc, halved, ends = movie
    session = session_of(movie, tmp_path)
    det = gt.detections
    kids = gt.children()

    session.go_to(ends)  # the solver ends it; the model says one child
    assert session.alternatives()[0] == (kids[ends][0],)
    session.pick(0)
    session.go_to(halved)  # the solver gives one daughter; the model says two
    assert set(session.alternatives()[0]) == set(kids[halved])
    session.pick(0)
    accepted = session.jump(3)
    session.accept()
    session.next()
    session.no_children()
    clicked = session.next()
    child = kids[clicked.id][0] if clicked.id in kids else None
    if child is None:  # a cell that ends: click any later cell instead
        child = int(det.ids[det.times == clicked.t + 1][0])
    row = det.rows_of([child])[0]
    point = np.r_[det.times[row], det.positions()[row] + 1.5]  # a click beside the centre
    session.give_at(point[None])

    latest = replayed(tmp_path)
    assert latest[ends] == tuple(kids[ends])
    assert set(latest[halved]) == set(kids[halved])
    assert latest[accepted.id] == accepted.solver_children
    assert latest[session.ranking["id"].iat[3]] == ()
    assert latest[clicked.id] == (child,)
    assert len(latest) == 5
    assert session.go_to(clicked.id).answer == (child,)


def test_undo_restores_the_earlier_answer_then_unanswers_and_keeps_history(movie, tmp_path):
    session = session_of(movie, tmp_path)
    cell = session.current
    session.give([int(movie[0].children()[cell.id][0])])
    session.no_children()
    assert replayed(tmp_path)[cell.id] == ()
    session.undo()
    assert replayed(tmp_path)[cell.id] == tuple(movie[0].children()[cell.id])
    assert session.current.answer == tuple(movie[0].children()[cell.id])
    session.undo()
    assert cell.id not in replayed(tmp_path)
    assert session.current.id == cell.id and session.current.answer is None
    assert session.undo() is None
    lines = (tmp_path / "answers.jsonl").read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["retracted"] is True


def test_conflicts_are_surfaced_and_bad_answers_never_reach_the_journal(movie, tmp_path):
    gt, *_ = movie
    session = session_of(movie, tmp_path)
    kids = gt.children()
    ranked = set(session.ranking["id"].tolist())
    first, second = [p for p, c in kids.items() if len(c) == 1 and p in ranked][:2]
    session.go_to(first)
    session.give(kids[first])
    assert session.conflicts == []
    session.go_to(second)
    session.give(kids[first])  # the same child for another parent
    assert [c.kind for c in session.conflicts] == ["shared-child"]
    assert session.conflicts[0].child == kids[first][0]
    with pytest.raises(InputError, match="contradictory"):
        session.resolve()

    cell = session.go_to(first)
    before = (tmp_path / "answers.jsonl").read_text()
    same_frame = np.r_[cell.t, cell.position][None]
    with pytest.raises(InputError, match="later frame"):
        session.give_at(same_frame)
    with pytest.raises(InputError, match="no cell within"):
        session.give_at(np.r_[cell.t + 1, -500.0, -500.0][None])
    with pytest.raises(InputError, match="no detection"):
        session.give([10**9])
    with pytest.raises(InputError, match="one or two"):
        session.give_at(np.zeros((3, 3)))
    assert (tmp_path / "answers.jsonl").read_text() == before
    session.give(kids[second])  # answering again resolves the conflict
    assert session.conflicts == []


def test_resolve_pins_every_answer(movie, tmp_path):
    gt, solver, assoc, halved, ends = movie
    session = session_of(movie, tmp_path)
    kids = gt.children()
    session.go_to(halved)
    session.pick(0)  # the division
    # a wrong but possible answer: a single cell ends although the truth links it on
    single = next(p for p, c in kids.items() if len(c) == 1 and p not in (halved, ends))
    session.go_to(single)
    session.no_children()
    unpinned = link(gt.detections, assoc, None, session.config.link).tracks
    assert single in set(unpinned.edges[:, 0].tolist())  # the pin has something to change
    summary = session.resolve()
    edges = set(map(tuple, session.tracks.edges.tolist()))
    assert {(halved, c) for c in kids[halved]} <= edges
    assert single not in set(session.tracks.edges[:, 0].tolist())
    assert Tracks.load(tmp_path / "rounds" / "round001" / "tracks").equals(session.tracks)
    assert summary.folder == tmp_path / "rounds" / "round001" and summary.pinned == 2
    assert (summary.added, summary.removed) == link_changes(solver, session.tracks) != (0, 0)
    assert halved not in set(session.ranking["id"]) and single not in set(session.ranking["id"])


def test_open_project_goes_on_from_the_latest_round(movie, clip, tmp_path):
    from attrackt.link import LinkConfig
    from attrackt.pipeline import PipelineConfig
    from attrackt.store import Store

    gt, solver, assoc, halved, ends = movie
    project = tmp_path / "project"  # as attrackt run leaves it
    Store(gt.detections, masks={"s": clip.masks}).save(project / "embedded.npz")
    solver.save(project / "tracks")
    assoc.save(project / "associations.parquet")
    (project / "model").mkdir()
    (project / "model" / "last.pt").write_bytes(b"")
    ran = PipelineConfig(link=LinkConfig(k=5, max_gap=2))
    (project / "config.json").write_text(json.dumps(ran.to_dict()))
    session = ProofreadSession.open(project)
    assert session.current.id == ends
    assert session.checkpoint == project / "model" / "last.pt"
    assert session.config.link == ran.link  # re-solving links as the run did
    np.testing.assert_array_equal(session.masks, clip.masks)
    session.pick(0)
    summary = session.resolve()
    resolved = session.tracks
    assert {p.name for p in summary.exported} == {"tracks.geff", "s_RES"}
    assert read_geff(project / "tracks.geff").edges.tolist() == resolved.edges.tolist()
    assert (project / "result" / "s_RES" / "res_track.txt").is_file()
    again = ProofreadSession.open(project)
    assert again.tracks.equals(resolved)
    assert again.annotations.latest() == {ends: tuple(gt.children()[ends])}
    assert ends not in set(again.ranking["id"])
    # a fine-tuning round's associations are the latest; the project's stay the base
    tuned = Associations(assoc.table.assign(score=assoc.table["score"] / 2), dict(assoc.meta))
    tuned.save(summary.folder / "associations.parquet")
    later = ProofreadSession.open(project)
    assert later.associations.equals(tuned) and later.base_associations.equals(assoc)

    other = gt.detections.table.copy()  # a second sequence "t", solved the same way
    other["sequence"] = "t"
    other["id"] += 1000
    both = Detections.concat([gt.detections, Detections(other)])
    Store(both).save(project / "embedded.npz")
    Tracks(both, np.concatenate([solver.edges, solver.edges + 1000])).save(project / "tracks")
    pairs = np.concatenate([gt.edges, gt.edges + 1000])
    Associations.from_arrays(pairs[:, 0], pairs[:, 1], np.full(len(pairs), 0.9)).save(
        project / "associations.parquet"
    )
    with pytest.raises(InputError, match="choose one"):
        ProofreadSession.open(project)
    on_t = ProofreadSession.open(project, sequence="t")
    assert len(on_t.detections) == len(gt.detections) and not len(on_t.annotations)
    assert on_t.current.id == ends + 1000 and on_t.masks is None
    on_t.no_children()  # into the same journal
    on_s = ProofreadSession.open(project, sequence="s")
    assert on_s.annotations.latest() == {ends: tuple(gt.children()[ends])}
    assert on_s.tracks.equals(resolved)  # its latest round, not the new tracks/
    assert set(Annotations.load(project / "answers.jsonl").latest()) == {ends, ends + 1000}


def test_no_associations_ranks_randomly_and_offers_no_alternative(movie, tmp_path):
    gt, solver, *_ = movie
    session = ProofreadSession(None, solver)
    assert session.strategy == "random" and session.alternatives() == []
    with pytest.raises(InputError, match="no other answer|0 other"):
        session.pick(0)
    with pytest.raises(InputError, match="base model"):
        session.round(finetune=True)


def test_tracks_layer_round_trips(movie):
    gt = movie[0]
    data, kwargs, kind = tracks_layer(gt, "gt")
    assert kind == "tracks" and data.shape == (len(gt.detections), 4)
    back = tracks_from_layer(data, kwargs["graph"], kwargs["features"], kwargs["metadata"])
    assert back.equals(gt)
    plain = tracks_from_layer(data, kwargs["graph"])  # ids become row numbers
    assert len(plain.edges) == len(gt.edges)


def _tiny_base(movie, clip, tmp_path):
    """Detections with features, a base model trained 4 steps on them, and a session config
    that fine-tunes it 2 steps (LoRA, nothing held out) on a CPU."""
    from attrackt.features import regionprops_features
    from attrackt.finetune import FinetuneConfig
    from attrackt.model import TransformerConfig, WindowConfig
    from attrackt.model.lora import LoRAConfig
    from attrackt.predict import PredictConfig
    from attrackt.train import TrainConfig
    from attrackt.training import AssociationTrainConfig, train_association_model

    det = regionprops_features(clip.images, clip.masks, movie[0].detections)
    det = det.with_vectors(embedding=det.table[det.feature_columns].to_numpy(np.float32))
    fast = TrainConfig(steps=4, batch_size=4, lr=1e-3, device="cpu", progress=False)
    model = TransformerConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1)
    train_association_model(
        det,
        None,
        AssociationTrainConfig(
            model=model, windows=WindowConfig(window=3), train=fast, heads_width=8, val_frames=0
        ),
        tmp_path / "base",
    )
    config = SessionConfig(
        finetune=FinetuneConfig(lora=LoRAConfig(rank=2, alpha=2.0), min_steps=2, max_steps=2,
                                train=fast, check_fraction=0.0),
        predict=PredictConfig(tta=False, device="cpu", progress=False),
    )  # fmt: skip
    return det, tmp_path / "base" / "last.pt", config


def test_finetune_and_resolve_writes_a_round_and_replaces_the_associations(
    movie, clip, tmp_path, single_thread
):
    import hashlib

    gt, solver, _, halved, ends = movie
    det, base, config = _tiny_base(movie, clip, tmp_path)
    digest = hashlib.sha256(base.read_bytes()).hexdigest()
    session = ProofreadSession(
        det, solver, None, Annotations(), checkpoint=base, config=config, work_dir=tmp_path / "w"
    )
    assert session.strategy == "random"
    session.go_to(halved)
    session.give(gt.children()[halved])
    assert session.round(finetune=True).labels == ["fine-tuning", "predicting", "re-solving"]
    session.finetune_and_resolve()
    done = tmp_path / "w" / "round001"
    assert (
        done / "finetune" / "model.pt"
    ).is_file() and session.model == done / "finetune" / "model.pt"
    assert Associations.load(done / "associations.parquet").equals(session.associations)
    assert Tracks.load(done / "tracks").equals(session.tracks)
    assert session.strategy == "confidence" and len(session.associations)
    assert {(halved, c) for c in gt.children()[halved]} <= set(
        map(tuple, session.tracks.edges.tolist())
    )
    assert hashlib.sha256(base.read_bytes()).hexdigest() == digest


def test_every_round_blends_its_fine_tuned_model_with_the_associations_before_any(
    movie, clip, tmp_path, single_thread
):
    from attrackt.link.held_out import blend
    from attrackt.predict import predict_from_checkpoint

    gt, solver, _, halved, ends = movie
    det, base, config = _tiny_base(movie, clip, tmp_path)
    before = predict_from_checkpoint(base, det, config.predict)
    session = ProofreadSession(
        det, solver, before, Annotations(), checkpoint=base, config=config, work_dir=tmp_path / "w"
    )
    pairs = (before.table["source"].to_numpy(), before.table["target"].to_numpy())
    for number, cell in enumerate((halved, ends), 1):
        session.go_to(cell)
        session.give(gt.children()[cell])
        session.finetune_and_resolve()
        tuned = predict_from_checkpoint(
            tmp_path / "w" / f"round{number:03d}" / "finetune" / "model.pt", det, config.predict
        )
        # the mean with the base model's, not with the previous round's
        assert session.associations.lookup(*pairs) == pytest.approx(
            blend(before, tuned).lookup(*pairs), abs=1e-6
        )
        assert not np.allclose(session.associations.lookup(*pairs), tuned.lookup(*pairs))


def test_cli_napari_says_how_to_install_napari(monkeypatch):
    import sys

    from typer.testing import CliRunner

    from attrackt.cli import app

    monkeypatch.setitem(sys.modules, "napari", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["napari", "."])
    assert result.exit_code == 1
    assert "pip install 'attrackt[napari]'" in result.output


def test_default_fine_tuning_takes_small_batches_and_minutes_a_person_waits(monkeypatch):
    import attrackt.train as train_mod
    from attrackt.cli import napari_session_config
    from attrackt.finetune import FinetuneConfig
    from attrackt.napari.session import (
        CPU_FINETUNE_BATCH,
        CPU_FINETUNE_MINUTES,
        GPU_FINETUNE_MINUTES,
        default_finetune_config,
    )

    monkeypatch.setattr(train_mod.torch.backends.mps, "is_available", lambda: False)
    monkeypatch.setattr(train_mod.torch.cuda, "is_available", lambda: False)
    on_cpu = default_finetune_config()
    assert on_cpu.train.batch_size == CPU_FINETUNE_BATCH < FinetuneConfig().train.batch_size
    assert on_cpu.minutes == CPU_FINETUNE_MINUTES == 5.0
    assert dataclasses.replace(on_cpu.train, batch_size=8) == FinetuneConfig().train
    # what `attrackt napari` hands the session: the same, and a --finetune-minutes wins
    assert napari_session_config("confidence", "", None).finetune == on_cpu
    assert napari_session_config("confidence", "", 2.0).finetune.minutes == 2.0
    monkeypatch.setattr(train_mod.torch.cuda, "is_available", lambda: True)
    on_gpu = default_finetune_config()
    assert on_gpu.train == FinetuneConfig().train  # a GPU keeps the method's batch
    assert on_gpu.minutes == GPU_FINETUNE_MINUTES == 1.0


def test_a_round_pins_the_answers_it_began_with_and_leaves_later_ones_for_the_next(movie, tmp_path):
    gt, solver, assoc, halved, ends = movie
    session = session_of(movie, tmp_path)
    session.go_to(ends)
    session.pick(0)
    job = session.round()
    session.go_to(halved)
    session.pick(0)  # given while the round runs
    outcome = job.run()
    assert set(outcome.pinned) == {ends}
    summary = session.apply(outcome)
    assert summary.pinned == 1 and summary.meanwhile == 1
    assert "1 answer(s) given meanwhile go into the next round" in summary.text()
    assert summary.answered_top == 2 and summary.top == min(100, len(session.ranking) + 2)
    assert (ends, gt.children()[ends][0]) in set(map(tuple, session.tracks.edges.tolist()))
    session.resolve()  # the next round pins both
    assert {(halved, c) for c in gt.children()[halved]} <= set(
        map(tuple, session.tracks.edges.tolist())
    )


def test_a_cancelled_round_keeps_nothing(movie, tmp_path):
    from attrackt.napari.rounds import Cancelled

    session = session_of(movie, tmp_path)
    session.accept()
    tracks = session.tracks
    job = session.round()
    seen = []

    def report(progress):
        seen.append(progress.label)
        job.cancel()  # cancelled while it runs

    with pytest.raises(Cancelled):
        job.run(report)
    assert seen == ["re-solving"]
    assert not (tmp_path / "rounds").exists() or list((tmp_path / "rounds").iterdir()) == []
    assert session.tracks is tracks
    assert session.next_round() == tmp_path / "rounds" / "round001"


def test_undo_takes_back_an_earlier_sessions_answers(movie, tmp_path):
    session = session_of(movie, tmp_path)
    first = session.current
    session.accept()
    second = session.current
    session.no_children()
    session.undo()  # undone in this session: not undone again later
    again = session_of(movie, tmp_path)
    assert again.undo().id == first.id
    assert replayed(tmp_path) == {}
    assert again.undo() is None
    assert second.id not in replayed(tmp_path)


def test_progress_tells_steps_and_time_left():
    from attrackt.napari.rounds import Progress

    progress = Progress("fine-tuning", 1, 3, done=40, total=400, unit="steps", seconds=20.0)
    assert progress.eta == pytest.approx(180.0)
    assert progress.text() == "fine-tuning (1/3) · 40/400 steps · about 3 min 0 s left"
    assert Progress("re-solving", 3, 3).text() == "re-solving (3/3)"
