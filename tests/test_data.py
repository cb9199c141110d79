"""Core types: invariants, tracklets and divisions, lossless disk round trips."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from attrackt import Annotations, Answer, Associations, Detections, InputError, Tracks


def _lineage() -> Tracks:
    """Two cells over three frames; cell A divides into C and D between t=1 and t=2."""
    t = [0, 0, 1, 1, 2, 2, 2]
    pos = np.array([[10, 10], [50, 50], [11, 12], [52, 49], [8, 13], [14, 13], [53, 50]], float)
    det = Detections.from_arrays(
        t, pos, ids=[10, 20, 11, 21, 12, 13, 22], labels=[1, 2, 1, 2, 3, 4, 2], sequence="01"
    )
    edges = [[10, 11], [20, 21], [11, 12], [11, 13], [21, 22]]
    return Tracks(det, np.array(edges))


def test_detections_sorted_and_typed() -> None:
    det = Detections.from_arrays([2, 0, 1], np.array([[1, 2], [3, 4], [5, 6]]), ids=[7, 8, 9])
    assert det.times.tolist() == [0, 1, 2]
    assert det.ids.tolist() == [8, 9, 7]
    assert det.positions().tolist() == [[3, 4], [5, 6], [1, 2]]
    assert det.rows_of([7, 8]).tolist() == [2, 0]
    with pytest.raises(KeyError):
        det.rows_of([99])


def test_detections_reject_nan_and_duplicate_ids() -> None:
    with pytest.raises(InputError, match="NaN"):
        Detections.from_arrays([0, 1], np.array([[0, np.nan], [1, 1]]))
    with pytest.raises(InputError, match="more than once"):
        Detections.from_arrays([0, 1], np.zeros((2, 2)), ids=[3, 3])


def test_vectors_follow_their_rows_when_sorting() -> None:
    vec = np.array([[2.0], [0.0], [1.0]])
    det = Detections.from_arrays([2, 0, 1], np.zeros((3, 2)), vectors={"z": vec})
    assert det.vectors["z"][:, 0].tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("ndim", [2, 3])
def test_detections_round_trip(tmp_path, ndim: int) -> None:
    rng = np.random.default_rng(0)
    det = Detections.from_arrays(
        rng.integers(0, 5, 20),
        rng.random((20, ndim)) * 100,
        labels=rng.integers(1, 9, 20),
        sequence="02",
        vectors={"embedding": rng.random((20, 8)), "other": rng.random((20, 1))},
        meta={"image_shape": [64] * ndim},
        area=rng.random(20),
    )
    det.save(tmp_path / "d.parquet")
    back = Detections.load(tmp_path / "d.parquet")
    assert back.equals(det)
    assert back.spatial_axes == det.spatial_axes
    assert back.feature_columns == ["area"]


def test_load_rejects_foreign_files(tmp_path) -> None:
    (tmp_path / "x.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="x.parquet"):
        Detections.load(tmp_path / "x.parquet")
    Associations().save(tmp_path / "a.parquet")
    with pytest.raises(InputError, match="not an attrackt detections file"):
        Detections.load(tmp_path / "a.parquet")


def test_tracklets_split_at_divisions() -> None:
    tracks = _lineage()
    label, table = tracks.tracklets()
    det = tracks.detections
    by_id = dict(zip(det.ids.tolist(), label.tolist(), strict=True))
    assert by_id[10] == by_id[11]  # A continues
    assert by_id[20] == by_id[21] == by_id[22]  # B never divides
    assert len({by_id[12], by_id[13], by_id[10]}) == 3  # daughters start new tracks
    rows = table.set_index("label")
    assert rows.loc[by_id[12], "parent"] == by_id[10]
    assert rows.loc[by_id[13], "parent"] == by_id[10]
    assert rows.loc[by_id[20], "parent"] == 0
    assert (rows.loc[by_id[10], "start"], rows.loc[by_id[10], "end"]) == (0, 1)
    assert tracks.divisions().tolist() == [11]


def test_tracks_reject_two_parents_and_backward_edges() -> None:
    det = _lineage().detections
    with pytest.raises(InputError, match="more than one parent"):
        Tracks(det, np.array([[10, 11], [20, 11]]))
    with pytest.raises(InputError, match="forward in time"):
        Tracks(det, np.array([[11, 10]]))
    with pytest.raises(InputError, match="unknown detection"):
        Tracks(det, np.array([[10, 999]]))


def test_tracks_round_trip_disk_and_networkx(tmp_path) -> None:
    tracks = _lineage()
    tracks.save(tmp_path / "tracks")
    assert Tracks.load(tmp_path / "tracks").equals(tracks)
    tracks.save(tmp_path / "tracks")  # overwriting an existing folder is atomic too
    assert Tracks.load(tmp_path / "tracks").equals(tracks)
    back = Tracks.from_networkx(tracks.to_networkx())
    assert back.equals(tracks)


def test_associations_lookup_mass_and_round_trip(tmp_path) -> None:
    assoc = Associations.from_arrays(
        np.array([10, 10, 20]), np.array([11, 21, 21]), np.array([0.7, 0.2, 0.9]), dt=1
    )
    assert assoc.lookup(np.array([10, 20, 20]), np.array([21, 21, 11])).tolist() == pytest.approx(
        [0.2, 0.9, 0.0]
    )
    assert assoc.outgoing_mass(np.array([10, 20, 11])).tolist() == pytest.approx([0.9, 0.9, 0])
    assoc.save(tmp_path / "a.parquet")
    assert Associations.load(tmp_path / "a.parquet").equals(assoc)
    with pytest.raises(InputError, match="twice"):
        Associations.from_arrays(np.array([1, 1]), np.array([2, 2]), np.array([0.1, 0.2]))


def test_the_mean_of_associations_counts_an_absent_pair_as_zero() -> None:
    a = Associations.from_arrays(np.array([1, 1]), np.array([2, 3]), np.array([0.8, 0.2]))
    b = Associations.from_arrays(np.array([1, 4]), np.array([2, 5]), np.array([0.4, 0.6]), [1, 2])
    mean = Associations.mean([a, b])
    assert mean.lookup(np.array([1, 1, 4]), np.array([2, 3, 5])).tolist() == pytest.approx(
        [0.6, 0.1, 0.3]
    )
    assert mean.table.set_index("target")["dt"].to_dict() == {2: 1, 3: 1, 5: 2}
    assert mean.meta["ensemble"] == 2
    with pytest.raises(InputError, match="no associations"):
        Associations.mean([])
    weighted = Associations.mean([a, b], (0.25, 0.75))
    assert weighted.lookup(np.array([1, 1, 4]), np.array([2, 3, 5])).tolist() == pytest.approx(
        [0.5, 0.05, 0.45]
    )
    with pytest.raises(InputError, match="sum to 1"):
        Associations.mean([a, b], (0.5, 0.6))


def test_annotations_latest_wins_history_kept(tmp_path) -> None:
    path = tmp_path / "answers.jsonl"
    journal = Annotations(path)
    journal.add(Answer(5, (6, 7), time=1.0))
    journal.add(Answer(8, (), time=2.0))
    journal.add(Answer(5, (6,), time=3.0))
    replay = Annotations.load(path)
    assert replay.latest() == {5: (6,), 8: ()}
    assert len(replay.history) == 3
    assert replay.links().tolist() == [[5, 6]]


def test_a_retracted_answer_leaves_the_cell_unanswered_and_the_history_whole(tmp_path) -> None:
    path = tmp_path / "answers.jsonl"
    journal = Annotations(path)
    journal.add(Answer(5, (6,), time=1.0))
    journal.add(Answer(8, (9,), time=2.0))
    journal.retract(5)
    replay = Annotations.load(path)
    assert replay.latest() == {8: (9,)} and len(replay) == 1
    assert replay.links().tolist() == [[8, 9]]
    assert replay.to_frame()["id"].tolist() == [8]
    history = replay.to_frame(history=True)
    assert history["retracted"].tolist() == [False, False, True]
    assert history["latest"].tolist() == [False, True, True]
    with pytest.raises(InputError, match="no answer to retract"):
        replay.retract(5)
    with pytest.raises(InputError, match="no answer to edit"):
        replay.edit(5, [6])
    replay.add(Answer(5, (7,)))  # answered again after the retraction
    assert Annotations.load(path).latest() == {8: (9,), 5: (7,)}
    assert '"retracted"' not in path.read_text().splitlines()[0]  # old lines stay as they were


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"id": 3, "children": [4]}', "no 'time'"),
        ('{"id": "3", "children": [4], "time": 2}', "'id' must be an integer"),
        ('{"id": 3, "children": 4, "time": 2}', "'children' must be a list of integers"),
        ('{"id": 3, "children": [4, 5, 6], "time": 2}', "3 children; at most 2"),
        ('{"id": 3, "children": [3], "time": 2}', "given the children"),
        ('{"id": 3, "children": [], "time": NaN}', "'time' must be a number"),
        ('{"id": 3, "children": [], "time": 2, "retracted": "yes"}', "true or false"),
        ("[3, 4]", "expected a JSON object"),
        ('{"id": 3, "children": [4], "time": 2', "not JSON"),
    ],
)
@pytest.mark.parametrize("ended", [True, False])
def test_a_complete_but_invalid_line_is_an_error_naming_it(tmp_path, line, problem, ended) -> None:
    path = tmp_path / "answers.jsonl"
    Annotations(path).add(Answer(1, (2,), time=1.0))
    with open(path, "a") as fh:
        fh.write(line + "\n" + Answer(5, (), time=3.0).to_json() + ("\n" if ended else ""))
    with pytest.raises(InputError, match=rf"answers.jsonl: line 2 .*{re.escape(problem)}"):
        Annotations.load(path)
    if ended:  # the bad line last, complete (a newline after it): still an error
        path.write_text(Answer(1, (2,), time=1.0).to_json() + "\n" + line + "\n")
        with pytest.raises(InputError, match="line 2"):
            Annotations.load(path)


def test_a_valid_last_line_without_its_newline_is_kept(tmp_path) -> None:
    path = tmp_path / "answers.jsonl"
    path.write_text(Answer(1, (2,), time=1.0).to_json())  # written by hand, no final newline
    journal = Annotations.load(path)
    assert journal.latest() == {1: (2,)}
    journal.add(Answer(3, (), time=2.0))
    assert Annotations.load(path).latest() == {1: (2,), 3: ()}


def test_annotations_survive_a_cut_off_last_line(tmp_path) -> None:
    path = tmp_path / "answers.jsonl"
    Annotations(path).add(Answer(1, (2,), time=1.0))
    with open(path, "a") as fh:
        fh.write(json.dumps({"id": 3, "children": [4]})[:9])  # a crash mid-write
    assert Annotations.load(path).latest() == {1: (2,)}
    Annotations.load(path).add(Answer(5, (6,), time=2.0))  # drops the cut line, then appends
    assert Annotations.load(path).latest() == {1: (2,), 5: (6,)}
    lines = path.read_text().splitlines()
    path.write_text("garbage\n" + "\n".join(lines) + "\n")
    with pytest.raises(InputError, match="line 1"):
        Annotations.load(path)


def test_cli_answers_are_checked_within_the_linkers_reach_and_line_by_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from attrackt.cli import app

    Detections.from_arrays([0, 1, 2, 3], [[5.0, 5.0]] * 4).save(tmp_path / "d.parquet")
    journal = tmp_path / "answers.jsonl"
    Annotations(journal).add(Answer(0, (3,), time=1.0))  # three frames on
    check = ["answers", str(journal), "--check", str(tmp_path / "d.parquet")]
    result = CliRunner().invoke(app, check)
    assert result.exit_code == 1 and "+3 frame(s) away, not later (by at most 1" in result.output
    assert CliRunner().invoke(app, [*check, "--max-gap", "3"]).exit_code == 0
    with open(journal, "a") as fh:
        fh.write('{"id": 1, "children": [2]}\n')
    result = CliRunner().invoke(app, check)
    assert result.exit_code == 1 and "answers.jsonl: line 2 is not a valid answer" in result.output
