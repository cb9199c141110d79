"""Figures: error classes match evaluate's counts, lineage layouts hold their geometry, curves
draw what the logs hold, and figure files land whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba
from matplotlib.image import imread

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.evaluate import evaluate
from attrackt.plots import (
    lineage_layout,
    plot_budget_curves,
    plot_learning_curves,
    plot_lineage,
    plot_track_errors,
    save_figure,
    track_errors,
)
from attrackt.synthetic import SyntheticConfig, SyntheticMovie, generate

# ---- a hand-made movie ----------------------------------------------------------------------
# A: 0..5 (t 0..5); B: 10, 11, 12 divides into 13 -> 15 and 14 -> 16; C: 20..25 (t 0..5);
# D: 30, 31 (t 3, 4) starts late; E: 40, 41, 42 (t 0..2) ends early; F: 50 alone at t 2.
_TRACKS = {
    "A": ([0, 1, 2, 3, 4, 5], [0, 1, 2, 3, 4, 5], 10.0),
    "B": ([10, 11, 12], [0, 1, 2], 30.0),
    "B1": ([13, 15], [3, 4], 25.0),
    "B2": ([14, 16], [3, 4], 35.0),
    "C": ([20, 21, 22, 23, 24, 25], [0, 1, 2, 3, 4, 5], 50.0),
    "D": ([30, 31], [3, 4], 70.0),
    "E": ([40, 41, 42], [0, 1, 2], 90.0),
    "F": ([50], [2], 110.0),
}


def _hand_gt() -> Tracks:
    ids, ts, xs = [], [], []
    edges = [(12, 13), (12, 14)]
    for chain, times, x in _TRACKS.values():
        ids += chain
        ts += times
        xs += [x + 0.5 * t for t in times]
        edges += list(zip(chain[:-1], chain[1:], strict=True))
    pos = np.stack([3.0 * np.asarray(ts) + 5, np.asarray(xs)], axis=1)
    det = Detections.from_arrays(ts, pos, ids=ids, labels=np.asarray(ids) + 1, sequence="01")
    return Tracks(det, np.asarray(edges))


def _edit(tracks: Tracks, remove=(), add=()) -> Tracks:
    edges = {tuple(e) for e in tracks.edges.tolist()}
    assert set(remove) <= edges
    edges = (edges - set(remove)) | set(add)
    return Tracks(tracks.detections, np.asarray(sorted(edges)).reshape(-1, 2))


def _pairs(array: np.ndarray) -> set[tuple[int, int]]:
    return {tuple(p) for p in array.tolist()}


@pytest.fixture(scope="module")
def hand() -> tuple[Tracks, Tracks]:
    """gt, and pred with one removed link, one added link and one swapped pair."""
    gt = _hand_gt()
    pred = _edit(gt, remove=[(2, 3), (4, 5), (24, 25)], add=[(42, 30), (4, 25), (24, 5)])
    return gt, pred


def _agrees_with_evaluate(errors, pred: Tracks, gt: Tracks, **kw) -> None:
    counts, scores = errors.counts(), evaluate(pred, gt, chota=False, **kw)
    for key in ("fp_edges", "fn_edges", "ws_edges", "fp_divisions", "fn_divisions"):
        assert counts[key] == scores[key], key


def test_removed_added_and_swapped_links_are_classified_exactly(hand) -> None:
    gt, pred = hand
    errors = track_errors(pred, gt)
    assert _pairs(errors.edges_of("fn")) == {(2, 3), (4, 5), (24, 25)}
    assert _pairs(errors.edges_of("fp")) == {(42, 30), (4, 25), (24, 5)}
    assert len(errors.edges_of("ws")) == len(errors.edges_of("unmatched")) == 0
    right = _pairs(gt.edges) - {(2, 3), (4, 5), (24, 25)}
    assert _pairs(errors.edges_of("tp")) == right
    assert errors.counts()["tp_divisions"] == 1 and len(errors.mapping) == len(gt.detections)
    _agrees_with_evaluate(errors, pred, gt)


def test_missed_and_spurious_divisions(hand) -> None:
    gt, _ = hand
    missed = _edit(gt, remove=[(12, 14)])
    errors = track_errors(missed, gt)
    assert _pairs(errors.edges_of("fn")) == {(12, 14)}
    assert _pairs(errors.edges_of("ws")) == {(12, 13)}  # now a continuation, not a daughter
    fn = errors.divisions[errors.divisions["kind"] == "fn"]
    assert fn[["gt", "pred"]].to_numpy().tolist() == [[12, 12]]
    _agrees_with_evaluate(errors, missed, gt)

    spurious = _edit(gt, add=[(11, 50)])
    errors = track_errors(spurious, gt)
    fp = errors.divisions[errors.divisions["kind"] == "fp"]
    assert fp["pred"].tolist() == [11]
    assert _pairs(errors.edges_of("fp")) == {(11, 50)}
    assert _pairs(errors.edges_of("ws")) == {(11, 12)}
    _agrees_with_evaluate(errors, spurious, gt)


@pytest.fixture(scope="module")
def movie() -> SyntheticMovie:
    cfg = SyntheticConfig(
        shape=(96, 112), frames=12, density=9, division_rate=0.1, entry_rate=0.05, seed=4
    )
    return generate(cfg)


def test_point_matching_maps_errors_to_each_side(movie) -> None:
    gt = movie.tracks("01")
    rng = np.random.default_rng(0)
    table = gt.detections.table.copy()
    table[["y", "x"]] += rng.normal(0, 0.3, (len(table), 2))
    table["id"] += 1000
    table["label"] = 0
    drop = gt.edges[rng.choice(len(gt.edges), 5, replace=False)]
    kept = _edit(gt, remove=[tuple(e) for e in drop.tolist()]).edges
    pred = Tracks(Detections(table), kept + 1000)
    errors = track_errors(pred, gt, match_distance=3.0)
    assert _pairs(errors.edges_of("fn")) == _pairs(drop)  # gt ids
    assert len(errors.edges_of("tp")) + len(errors.edges_of("ws")) == len(pred.edges)
    assert (errors.mapping[:, 1] - errors.mapping[:, 0] == 1000).all()
    _agrees_with_evaluate(errors, pred, gt, match_distance=3.0)


# ---- the error overlay ----------------------------------------------------------------------


def _collection(fig, gid: str):
    found = [c for ax in fig.axes for c in ax.collections if c.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def test_error_overlay_draws_each_class_in_its_colour(hand) -> None:
    gt, pred = hand
    fig = plot_track_errors(pred, gt)
    tp, fp, fn = (_collection(fig, k) for k in ("tp", "fp", "fn"))
    assert len(fp.get_segments()) == 3 and len(fn.get_segments()) == 3
    assert len(tp.get_segments()) == len(gt.edges) - 3
    assert np.allclose(fp.get_colors(), to_rgba("tab:red"))
    assert np.allclose(fn.get_colors(), to_rgba("tab:blue"))
    assert np.allclose(tp.get_colors()[0][:3], to_rgba("0.55")[:3])
    assert fn.get_linestyle()[0][1] is not None and tp.get_linestyle()[0][1] is None  # dashed
    # the missed link 2 -> 3 is drawn from (x, y) of detection 2 to that of detection 3
    xy = gt.detections.table.set_index("id").loc[[2, 3], ["x", "y"]].to_numpy()
    assert any(np.allclose(seg, xy) for seg in fn.get_segments())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "false positive links (3)" in labels and "false negative links (3)" in labels


def test_error_overlay_keeps_frames_and_projects_3d(hand) -> None:
    gt, pred = hand
    fig = plot_track_errors(pred, gt, frames=(0, 3))
    t = gt.detections.table.set_index("id")["t"]
    expected_tp = [e for e in _pairs(gt.edges) - {(2, 3), (4, 5), (24, 25)} if t[e[1]] <= 3]
    assert len(_collection(fig, "tp").get_segments()) == len(expected_tp)
    assert len(_collection(fig, "fn").get_segments()) == 1  # only 2 -> 3 lies in frames 0..3
    assert _collection(fig, "fp").get_segments()[0][1].tolist() == list(
        gt.detections.table.set_index("id").loc[30, ["x", "y"]]
    )  # of the false positives, only 42 -> 30 lies in frames 0..3
    assert len(_collection(fig, "fp").get_segments()) == 1

    table = gt.detections.table.assign(z=7.0)
    gt3 = Tracks(Detections(table), gt.edges)
    volume = np.zeros((4, 20, 30))
    volume[2, 5, 6] = 9.0
    fig = plot_track_errors(_edit(gt3, remove=[(0, 1)]), gt3, image=volume)
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape == (20, 30) and shown[5, 6] == 9.0
    assert len(_collection(fig, "fn").get_segments()) == 1


def test_error_overlay_refuses_mixed_sequences_and_foreign_errors(hand) -> None:
    gt, pred = hand
    with pytest.raises(InputError, match="other tracks"):
        plot_track_errors(pred, gt, errors=track_errors(gt, gt))
    two = Detections.concat([gt.detections, _renamed(gt.detections)])
    both = Tracks(two, gt.edges)
    with pytest.raises(InputError, match="several sequences"):
        plot_track_errors(both, both)
    fig = plot_track_errors(both, both, sequence="01")
    assert len(_collection(fig, "tp").get_segments()) == len(gt.edges)


def _renamed(det: Detections) -> Detections:
    table = det.table.assign(sequence="02", id=det.ids + 500)
    return Detections(table)


# ---- lineage trees --------------------------------------------------------------------------


def test_lineage_layout_separates_lineages_and_joins_mothers_to_daughters(movie) -> None:
    gt = movie.tracks("01")
    layout = lineage_layout(gt)
    assert len(layout) == len(gt.tracklets()[1]) and len(gt.divisions()) >= 4
    spans = layout.groupby("root")["x"].agg(["min", "max"]).sort_values("min")
    assert (spans["min"].to_numpy()[1:] > spans["max"].to_numpy()[:-1]).all()  # disjoint
    by_label = layout.set_index("label")
    daughters = layout[layout["parent"] > 0]
    mothers = by_label.loc[daughters["parent"]]
    assert (daughters["start"].to_numpy() == mothers["end"].to_numpy() + 1).all()
    for label, kids in daughters.groupby("parent")["x"]:
        assert kids.min() < by_label.loc[label, "x"] < kids.max()
    # tracklets alive at the same time never share a column
    for _, same_x in layout.groupby("x"):
        spans_t = same_x.sort_values("start")[["start", "end"]].to_numpy()
        assert (spans_t[1:, 0] > spans_t[:-1, 1]).all()

    fig = plot_lineage(gt)
    segments = np.asarray(_collection(fig, "tracklets").get_segments())
    expected = np.stack(
        [layout[["x", "start"]].to_numpy(float), layout[["x", "end"]].to_numpy(float)], axis=1
    )
    assert np.allclose(segments, expected)
    connectors = _collection(fig, "divisions").get_segments()
    assert len(connectors) == len(daughters)
    for path, (_, kid) in zip(connectors, daughters.iterrows(), strict=True):
        mother = by_label.loc[kid["parent"]]
        assert np.allclose(path[0], (mother["x"], mother["end"]))  # from the mother's end
        assert np.allclose(path[-1], (kid["x"], kid["start"]))  # to the daughter's start
        assert path[0][1] == path[1][1]  # a horizontal piece at the mother's last frame


def test_lineage_picks_trees(movie) -> None:
    gt = movie.tracks("01")
    labels, table = gt.tracklets()
    full = lineage_layout(gt)
    sizes = full.set_index("label")["root"].loc[labels].value_counts()
    top = set(lineage_layout(gt, max_trees=3)["root"])
    assert len(top) == 3 and sizes.nunique() > 1
    assert sizes[list(top)].min() >= sizes.drop(list(top)).max()  # the largest lineages
    one = lineage_layout(gt, roots=[int(gt.detections.ids[-1])])
    assert one["root"].nunique() == 1
    assert set(one["label"]) == set(full.loc[full["root"] == one["root"].iloc[0], "label"])
    with pytest.raises(InputError, match="unknown detection"):
        lineage_layout(gt, roots=[10**9])


def test_lineage_marks_errors_on_either_side(hand) -> None:
    gt, _ = hand
    pred = _edit(gt, remove=[(2, 3)], add=[(11, 50)])
    errors = track_errors(pred, gt)
    places = {}
    for tracks in (gt, pred):
        labels, _ = tracks.tracklets()
        x = lineage_layout(tracks).set_index("label")["x"]
        places[id(tracks)] = dict(zip(tracks.detections.ids.tolist(), x.loc[labels], strict=True))
    on_gt = plot_lineage(gt, errors=errors)
    (missed,) = _collection(on_gt, "fn").get_segments()  # along the gt tree
    xg = places[id(gt)]
    assert np.allclose(missed[0], (xg[2], 2)) and np.allclose(missed[-1], (xg[3], 3))
    on_pred = plot_lineage(pred, errors=errors)
    (lacking,) = _collection(on_pred, "fn").get_segments()  # a straight line across lineages
    xp = places[id(pred)]
    assert np.allclose(lacking, [(xp[2], 2), (xp[3], 3)]) and xp[2] != xp[3]
    (spurious,) = _collection(on_pred, "fp").get_segments()
    assert np.allclose(spurious[-1], (xp[50], 2))
    assert np.allclose(_collection(on_pred, "fp_div").get_offsets(), [(xp[11], 1)])
    with pytest.raises(InputError, match="other tracks"):
        plot_lineage(gt, errors=errors, side="pred")


# ---- curves and files -----------------------------------------------------------------------


def test_learning_curves_from_a_real_training_log(tmp_path) -> None:
    import torch

    from attrackt.train import TrainConfig, Validation, fit

    g = torch.Generator().manual_seed(0)
    x = torch.randn(24, 3, generator=g)
    y = x.sum(1, keepdim=True)

    def loss_fn(model, batch):
        return {"loss": (model(batch[0]) - batch[1]).square().mean()}

    cfg = TrainConfig(
        steps=12, batch_size=4, lr=1e-2, log_every=3, val_every=6, device="cpu", progress=False
    )
    val = Validation(8, lambda idx: (x[idx], y[idx]))
    fit(torch.nn.Linear(3, 1), loss_fn, 24, lambda idx: (x[idx], y[idx]), cfg, tmp_path, val=val)
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    fig = plot_learning_curves({"run": tmp_path}, keys=("loss", "val_loss", "absent"))
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert set(lines) == {"loss", "val_loss"}
    assert lines["loss"].get_xdata().tolist() == [3, 6, 9, 12]
    assert lines["loss"].get_ydata().tolist() == [r["loss"] for r in records if "loss" in r]
    assert lines["val_loss"].get_xdata().tolist() == [6, 12]
    with pytest.raises(InputError, match="no run logs"):
        plot_learning_curves({"run": tmp_path}, keys=("absent",))


def test_learning_curves_smooth_hand_written_records() -> None:
    records = [{"step": s, "loss": float(v)} for s, v in enumerate([4, 0, 4, 0, 4], 1)]
    fig = plot_learning_curves({"a": records, "b": records[:2]}, smoothing=0.5)
    lines = fig.axes[0].get_lines()
    labelled = {line.get_label(): line for line in lines if not line.get_label().startswith("_")}
    assert set(labelled) == {"a: loss", "b: loss"} and len(lines) == 4  # raw + smoothed each
    assert np.allclose(labelled["a: loss"].get_ydata(), [4, 2, 3, 1.5, 2.75])


def test_budget_curves_sort_budgets_and_draw_references() -> None:
    results = {"random": {"100": 30.0, "0": 50.0, "10": 40.0}, "optimal": {"0": 50, "10": 20}}
    fig = plot_budget_curves(results, reference={"supervised": 12.5})
    ax = fig.axes[0]
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert lines["random"].get_xdata().tolist() == [0, 10, 100]
    assert lines["random"].get_ydata().tolist() == [50, 40, 30]
    assert list(lines["supervised"].get_ydata()) == [12.5, 12.5]
    assert ax.get_xscale() == "symlog" and ax.get_xlim()[0] == 0
    nested = {"random": {"5": {"AOGM": 3.0, "TRA": 0.9}}}
    ax2 = plot_budget_curves(nested, metric="TRA").axes[0]
    assert ax2.get_lines()[0].get_ydata().tolist() == [0.9] and ax2.get_xscale() == "log"


def test_figures_are_written_whole(tmp_path, hand, monkeypatch) -> None:
    gt, pred = hand
    target = tmp_path / "errors.png"
    fig = plot_track_errors(pred, gt, out=target)
    width, height = fig.get_size_inches() * 150
    assert imread(target).shape == (round(height), round(width), 4)
    before = target.read_bytes()

    def broken(path, **kw):  # a crash half-way through writing
        Path(path).write_bytes(b"\x89PNG half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", broken)
    with pytest.raises(RuntimeError):
        save_figure(fig, target)
    assert target.read_bytes() == before and sorted(tmp_path.iterdir()) == [target]


# ---- command line ---------------------------------------------------------------------------


def test_plot_commands(tmp_path, hand) -> None:
    from typer.testing import CliRunner

    from attrackt.cli import app

    gt, pred = hand
    gt.save(tmp_path / "gt")
    pred.save(tmp_path / "pred")
    np.save(tmp_path / "movie.npy", np.random.default_rng(0).random((6, 30, 130)))
    run = CliRunner().invoke
    out = tmp_path / "e.png"
    args = ["plot", "errors", str(tmp_path / "pred"), str(tmp_path / "gt"), "--out", str(out)]
    result = run(app, [*args, "--images", str(tmp_path / "movie.npy"), "--image-frame", "2"])
    assert result.exit_code == 0, result.output
    assert "3 FP, 3 FN, 0 WS" in result.output and imread(out).ndim == 3
    result = run(app, [*args, "--images", str(tmp_path / "movie.npy"), "--image-frame", "9"])
    assert result.exit_code == 1 and "no frame 9" in result.output

    lineage = tmp_path / "l.png"
    args = ["plot", "lineage", str(tmp_path / "pred"), "--gt", str(tmp_path / "gt")]
    result = run(app, [*args, "--out", str(lineage)])
    assert result.exit_code == 0, result.output
    assert lineage.is_file()

    log = tmp_path / "run" / "log.jsonl"
    log.parent.mkdir()
    log.write_text("".join(json.dumps({"step": s, "loss": 1 / s}) + "\n" for s in (1, 2, 3)))
    curves = tmp_path / "c.png"
    result = run(app, ["plot", "curves", str(log), "--out", str(curves)])
    assert result.exit_code == 0, result.output
    assert curves.is_file()

    active = tmp_path / "active.json"
    active.write_text(json.dumps({"random": {"0": 9, "10": 5}, "confidence": {"0": 9, "10": 2}}))
    budget = tmp_path / "b.png"
    args = ["plot", "budget", str(active), "--out", str(budget), "--reference", "supervised=1"]
    result = run(app, args)
    assert result.exit_code == 0, result.output
    assert budget.is_file()
    result = run(app, ["plot", "budget", str(active), "--out", str(budget), "--reference", "x"])
    assert result.exit_code == 1 and "NAME=VALUE" in result.output


@pytest.mark.realdata
def test_reference_result_errors_match_the_published_counts(shared_data, tmp_path) -> None:
    from attrackt.evaluate import load_result

    pred, pred_masks = load_result(shared_data / "reference" / "Fluo-N2DL-HeLa" / "01_RES")
    gt, gt_masks = load_result(shared_data / "Fluo-N2DL-HeLa" / "01_GT")
    errors = track_errors(pred, gt, pred_masks=pred_masks, gt_masks=gt_masks)
    counts = errors.counts()
    assert (counts["fp_edges"], counts["fn_edges"], counts["ws_edges"]) == (60, 87, 47)
    fig = plot_lineage(pred, errors=errors, out=tmp_path / "lineage.png")
    assert len(_collection(fig, "ws").get_segments()) == 47
