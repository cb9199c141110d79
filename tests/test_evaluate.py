"""Metrics: known edits of the ground truth give the error counts computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.evaluate import evaluate, evaluate_ctc, evaluate_paths, format_table, result_kind
from attrackt.synthetic import SyntheticConfig, SyntheticMovie, generate


@pytest.fixture(scope="module")
def movie() -> SyntheticMovie:
    cfg = SyntheticConfig(
        shape=(128, 144),
        frames=15,
        density=9,
        division_rate=0.08,
        entry_rate=0.06,
        drift=1.0,
        seed=21,
    )
    return generate(cfg)


@pytest.fixture(scope="module")
def gt(movie: SyntheticMovie) -> Tracks:
    tracks = movie.tracks(sequence="01")
    assert len(tracks.divisions()) >= 3 and len(tracks.edges) > 100
    return tracks


def _continuations(tracks: Tracks) -> np.ndarray:
    """Edges whose parent has exactly one child."""
    outdeg = tracks.out_degree()[tracks.detections.rows_of(tracks.edges[:, 0])]
    return tracks.edges[outdeg == 1]


def _without(tracks: Tracks, drop: np.ndarray) -> np.ndarray:
    keep = ~(tracks.edges[:, None, :] == np.asarray(drop)[None, :, :]).all(-1).any(1)
    return tracks.edges[keep]


def test_perfect_prediction(gt: Tracks) -> None:
    r = evaluate(gt, gt)
    assert r["AOGM"] == 0 and r["TRA"] == 1 and r["DET"] == 1 and r["CHOTA"] == pytest.approx(1)
    assert r["division_f1"] == 1 and r["gt_divisions"] == len(gt.divisions())
    assert r["gt_nodes"] == len(gt.detections) and r["gt_edges"] == len(gt.edges)


def test_removed_edges_are_false_negatives(gt: Tracks) -> None:
    rng = np.random.default_rng(0)
    cont = _continuations(gt)
    drop = cont[rng.choice(len(cont), 7, replace=False)]
    r = evaluate(Tracks(gt.detections, _without(gt, drop)), gt)
    assert (r["fn_edges"], r["fp_edges"], r["ws_edges"]) == (7, 0, 0)
    assert r["AOGM"] == 7 * 1.5
    assert r["TRA"] == pytest.approx(1 - 10.5 / (10 * len(gt.detections) + 1.5 * len(gt.edges)))


def test_added_edges_are_false_positives(gt: Tracks) -> None:
    det = gt.detections
    ends = det.ids[(gt.out_degree() == 0) & (det.times < det.times.max())]
    starts = det.ids[(gt.in_degree() == 0) & (det.times > 0)]
    t = dict(zip(det.ids.tolist(), det.times.tolist(), strict=True))
    added, used = [], set()
    for a in ends.tolist():
        for b in starts.tolist():
            if t[b] > t[a] and b not in used:
                added.append((a, b))
                used.add(b)
                break
        if len(added) == 3:
            break
    assert len(added) == 3
    pred = Tracks(det, np.concatenate([gt.edges, np.asarray(added)]))
    r = evaluate(pred, gt)
    assert (r["fp_edges"], r["fn_edges"], r["ws_edges"]) == (3, 0, 0)
    assert r["AOGM"] == 3


def test_swapped_edges_are_two_false_positives_and_two_false_negatives(gt: Tracks) -> None:
    det = gt.detections
    cont = _continuations(gt)
    frame = det.times[det.rows_of(cont[:, 0])]
    swaps = []
    for t in np.unique(frame)[::3][:4]:  # disjoint pairs of edges of one frame
        pair = cont[frame == t][:2]
        if len(pair) == 2:
            swaps.append(pair)
    assert len(swaps) == 4
    edges = _without(gt, np.concatenate(swaps))
    crossed = [[(a[0], b[1]), (b[0], a[1])] for a, b in swaps]
    pred = Tracks(det, np.concatenate([edges, np.asarray(crossed).reshape(-1, 2)]))
    r = evaluate(pred, gt)
    assert (r["fp_edges"], r["fn_edges"], r["ws_edges"]) == (8, 8, 0)
    assert r["AOGM"] == 8 * 1 + 8 * 1.5
    assert r["fp_nodes"] == r["fn_nodes"] == r["ns_nodes"] == 0


def test_missed_division_lowers_recall_as_computed_by_hand(gt: Tracks) -> None:
    mothers = gt.divisions()
    n = len(mothers)
    children = gt.children()
    drop = np.array([[mothers[0], children[int(mothers[0])][0]]])
    r = evaluate(Tracks(gt.detections, _without(gt, drop)), gt)
    # the other daughter's edge now continues the mother: right link, wrong semantics
    assert (r["fn_edges"], r["ws_edges"], r["fp_edges"]) == (1, 1, 0)
    assert r["AOGM"] == 1.5 + 1
    assert r["division_recall"] == (n - 1) / n
    assert r["division_precision"] == 1
    assert r["division_f1"] == pytest.approx(2 * (n - 1) / n / (1 + (n - 1) / n))
    assert (r["tp_divisions"], r["fn_divisions"], r["fp_divisions"]) == (n - 1, 1, 0)


def _relabel(movie: SyntheticMovie, gt: Tracks) -> tuple[np.ndarray, Tracks]:
    """The same segmentation under other labels (and other ids)."""
    new = np.zeros(int(movie.masks.max()) + 1, np.int64)
    new[1:] = np.random.default_rng(3).permutation(np.arange(1, len(new))) + 500
    table = gt.detections.table.assign(
        label=new[gt.detections.labels], id=gt.detections.ids + 100_000
    )
    return new[movie.masks], Tracks(Detections(table), gt.edges + 100_000)


def test_identity_and_ctc_matching_agree(movie: SyntheticMovie, gt: Tracks) -> None:
    rng = np.random.default_rng(1)
    cont = _continuations(gt)
    pred = Tracks(gt.detections, _without(gt, cont[rng.choice(len(cont), 5, replace=False)]))
    pred_masks, pred = _relabel(movie, pred)
    by_identity = evaluate(pred, gt)  # labels differ: matched by position
    by_ctc = evaluate(pred, gt, pred_masks=pred_masks, gt_masks=movie.masks, matching="ctc")
    assert by_identity == pytest.approx(by_ctc, nan_ok=True)
    assert by_ctc["fn_edges"] == 5


def test_point_matching_and_refusals(gt: Tracks) -> None:
    jitter = np.random.default_rng(2).normal(0, 0.3, (len(gt.detections), 2))
    table = gt.detections.table.copy()
    table[["y", "x"]] += jitter
    table["label"] = 0
    pred = Tracks(Detections(table), gt.edges)
    with pytest.raises(InputError, match="not over the same detections"):
        evaluate(pred, gt)
    r = evaluate(pred, gt, match_distance=3.0)
    assert r["AOGM"] == 0 and r["DET"] == 1
    with pytest.raises(InputError, match="matching must be"):
        evaluate(gt, gt, matching="nearest")
    with pytest.raises(InputError, match="needs both"):
        evaluate(gt, gt, matching="ctc")


def test_sequences_are_scored_apart_and_summed(gt: Tracks) -> None:
    rng = np.random.default_rng(4)
    cont = _continuations(gt)
    one = Tracks(gt.detections, _without(gt, cont[rng.choice(len(cont), 2, replace=False)]))
    two = Tracks(gt.detections, _without(gt, cont[rng.choice(len(cont), 3, replace=False)]))

    def as_second(tracks: Tracks) -> Tracks:
        det = tracks.detections
        table = det.table.assign(id=det.ids + 50_000, sequence="02")
        return Tracks(Detections(table), tracks.edges + 50_000)

    both_gt = Tracks(
        Detections.concat([gt.detections, as_second(gt).detections]),
        np.concatenate([gt.edges, as_second(gt).edges]),
    )
    both_pred = Tracks(
        Detections.concat([one.detections, as_second(two).detections]),
        np.concatenate([one.edges, as_second(two).edges]),
    )
    r = evaluate(both_pred, both_gt, chota=False)
    assert r["fn_edges"] == 5 and r["AOGM"] == 7.5 and "CHOTA" not in r
    assert r["gt_divisions"] == 2 * len(gt.divisions())


def test_results_on_disk_score_like_the_arrays(tmp_path, movie: SyntheticMovie, gt: Tracks) -> None:
    from attrackt.io.ctc import write_ctc_result
    from attrackt.io.geff import write_geff

    rng = np.random.default_rng(5)
    cont = _continuations(gt)
    mothers = gt.divisions()
    drop = np.concatenate(
        [
            cont[rng.choice(len(cont), 4, replace=False)],
            [[mothers[0], gt.children()[mothers[0]][0]]],
        ]
    )
    pred = Tracks(gt.detections, _without(gt, drop))
    expected = evaluate(pred, gt)
    assert (expected["fn_edges"], expected["ws_edges"]) == (5, 1)

    movie.write(tmp_path / "data", "01")
    gt_folder = tmp_path / "data" / "01_GT"
    write_ctc_result(tmp_path / "data" / "01_RES", pred, movie.masks)
    assert evaluate_ctc(tmp_path / "data" / "01_RES", gt_folder) == pytest.approx(expected)
    write_geff(pred, tmp_path / "pred.geff")
    pred.save(tmp_path / "pred_tracks")
    for path in (tmp_path / "data" / "01_RES", tmp_path / "pred.geff", tmp_path / "pred_tracks"):
        assert evaluate_paths(path, gt_folder) == pytest.approx(expected), path
    assert [result_kind(p) for p in (gt_folder, tmp_path / "pred.geff")] == ["ctc", "geff"]
    with pytest.raises(InputError, match="not a CTC result"):
        evaluate_paths(tmp_path, gt_folder)


def test_format_table_puts_results_side_by_side() -> None:
    a = {"AOGM": 231.5, "TRA": 0.99871, "division_f1": 0.859, "fn_edges": 12.0}
    b = {"AOGM": 352.0, "TRA": 0.9971, "division_f1": math.nan, "fn_edges": 30.0}
    text = format_table({"attrackt": a, "position only": b})
    lines = text.splitlines()
    assert lines[0].split() == ["metric", "attrackt", "position", "only"]
    assert lines[2].split() == ["AOGM", "231.5000", "352"]
    assert lines[3].split() == ["TRA", "0.9987", "0.9971"]
    assert "nan" in text
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up
    assert format_table(a).splitlines()[0].split() == ["metric", "value"]


@pytest.mark.realdata
def test_reference_result_on_hela_reproduces_the_published_figures(shared_data) -> None:
    r = evaluate_ctc(
        shared_data / "reference" / "Fluo-N2DL-HeLa" / "01_RES",
        shared_data / "Fluo-N2DL-HeLa" / "01_GT",
    )
    assert r["DET"] == 0.9954855886097927
    assert r["CHOTA"] == 0.9224725394515368
    assert (r["fp_edges"], r["fn_edges"], r["ws_edges"]) == (60, 87, 47)
    assert (r["fn_nodes"], r["fp_nodes"], r["ns_nodes"]) == (39, 0, 0)
    assert r["TRA"] == pytest.approx(0.993676, abs=1e-6)


def test_evaluate_command_prints_a_table_and_writes_json(tmp_path, movie, gt) -> None:
    import json

    from typer.testing import CliRunner

    from attrackt.cli import app

    movie.write(tmp_path / "data", "01")
    rng = np.random.default_rng(6)
    cont = _continuations(gt)
    Tracks(gt.detections, _without(gt, cont[rng.choice(len(cont), 2, replace=False)])).save(
        tmp_path / "pred"
    )
    runner = CliRunner()
    out = tmp_path / "scores.json"
    result = runner.invoke(
        app,
        ["evaluate", str(tmp_path / "pred"), str(tmp_path / "data" / "01_GT"), "--json", str(out)],
    )
    assert result.exit_code == 0, result.output
    assert "AOGM" in result.output and "3" in result.output.split("AOGM")[1].splitlines()[0]
    scores = json.loads(out.read_text())
    assert scores["fn_edges"] == 2 and scores["AOGM"] == 3.0
    bad = runner.invoke(app, ["evaluate", str(tmp_path), str(tmp_path / "data" / "01_GT")])
    assert bad.exit_code == 1 and "not a CTC result" in bad.output
