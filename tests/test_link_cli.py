"""``attrackt link``: parquet or CTC masks in, Tracks (and CTC / geff) out."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from test_link_link import clean_movie
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Annotations, Answer, Detections, Tracks

runner = CliRunner()


def test_link_a_detections_file(tmp_path: Path) -> None:
    det, truth, ids = clean_movie()
    det.save(tmp_path / "det.parquet")
    out = tmp_path / "tracks"
    result = runner.invoke(app, ["link", str(tmp_path / "det.parquet"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert set(map(tuple, Tracks.load(out).edges.tolist())) == truth
    # answers, the greedy solver and a geff copy
    journal = Annotations(tmp_path / "answers.jsonl")
    journal.add(Answer(ids[(3, 6)], ()))
    result = runner.invoke(
        app,
        [
            "link",
            str(tmp_path / "det.parquet"),
            "--out",
            str(out),
            "--annotations",
            str(tmp_path / "answers.jsonl"),
            "--solver",
            "greedy",
            "--geff-out",
            str(tmp_path / "tracks.geff"),
        ],
    )
    assert result.exit_code == 0, result.output
    edges = Tracks.load(out).edges
    assert ids[(3, 6)] not in edges[:, 0]
    assert (tmp_path / "tracks.geff").exists()


def test_bad_input_is_one_clear_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["link", str(tmp_path / "none.parquet"), "--out", "x"])
    assert result.exit_code == 1
    assert "none.parquet: no such file" in result.output
    det, _, _ = clean_movie()
    det.save(tmp_path / "det.parquet")
    result = runner.invoke(app, ["link", str(tmp_path / "det.parquet"), "--out", "x", "--k", "0"])
    assert result.exit_code == 1 and "k must be at least 1" in result.output
    result = runner.invoke(
        app, ["link", str(tmp_path / "det.parquet"), "--out", "x", "--ctc-out", "y"]
    )
    assert result.exit_code == 1 and "needs detections read from a CTC mask folder" in result.output


def test_link_ctc_markers_and_write_a_ctc_result(shared_data: Path, tmp_path: Path) -> None:
    from attrackt.evaluate import evaluate
    from attrackt.io.ctc import load_ctc

    seq = shared_data / "ci" / "Fluo-N2DL-HeLa_01_t0-40_crop350x550"
    tra = seq / "01_GT" / "TRA"
    out, res = tmp_path / "tracks", tmp_path / "01_RES"
    result = runner.invoke(
        app, ["link", str(tra), "--out", str(out), "--ctc-out", str(res), "--k", "3"]
    )
    assert result.exit_code == 0, result.output
    pred = load_ctc(res, images=False)
    gt = load_ctc(tra, images=False)
    assert len(pred.tracks.detections) == len(gt.tracks.detections) == 575
    scores = evaluate(pred.tracks, gt.tracks, pred_masks=pred.masks, gt_masks=gt.masks)
    # position-only linking of well separated nuclei: few link errors
    assert scores["fn_edges"] + scores["fp_edges"] < 0.05 * scores["gt_edges"]
    assert np.isfinite(scores["AOGM"])


def test_start_costs_on_position_alone_follow_appear_where_given(tmp_path: Path) -> None:
    t = np.repeat([0, 1], 10)
    x = np.tile(np.arange(10) * 10.0, 2)
    y = np.zeros(20)
    y[19] = 40.0  # the last cell moves far: its link costs more than a cheap end and start
    Detections.from_arrays(t, np.stack([y, x], axis=1), ids=np.arange(20)).save(
        tmp_path / "det.parquet"
    )

    def edges(*extra: str) -> set[tuple[int, int]]:
        out = tmp_path / "tracks"
        args = ["link", str(tmp_path / "det.parquet"), "--out", str(out), "--k", "2", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return set(map(tuple, Tracks.load(out).edges.tolist()))

    assert (8, 18) in edges() and (9, 19) not in edges()  # cheap starts and ends on position
    dear = ["--appear", "5", "--disappear", "5"]
    assert (9, 19) in edges(*dear)  # --appear counts on position too where given
    cheap = ["--position-appear", "0.1", "--position-disappear", "0.1"]
    assert (9, 19) not in edges(*dear, *cheap)


def test_daughter_size_weight_carries_to_position_unless_given(tmp_path: Path) -> None:
    """A parent at 50 beside, one frame on, its continuation (2 px) and a small cell (12 px):
    with dear track starts the small cell is its daughter unless unequal daughters cost enough;
    --daughter-size-weight counts on position alone too where --position-... is not given."""
    Detections.from_arrays(
        [0, 1, 1], [[50, 50], [50, 52], [50, 62]], ids=np.arange(3),
        area=np.array([400.0, 400.0, 16.0]),
    ).save(tmp_path / "det.parquet")  # fmt: skip

    def divides(*extra: str) -> bool:
        out = tmp_path / "tracks"
        args = ["link", str(tmp_path / "det.parquet"), "--out", str(out), "--no-normalise",
                "--distance-weight", "0.1", "--position-appear", "3", *extra]  # fmt: skip
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        return (0, 2) in set(map(tuple, Tracks.load(out).edges.tolist()))

    assert divides()  # the default on position alone (1) is too cheap to stop it here
    assert not divides("--daughter-size-weight", "2")
    assert divides("--daughter-size-weight", "2", "--position-daughter-size-weight", "0")
