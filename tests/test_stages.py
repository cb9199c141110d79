"""The stage records of a project folder: digests, file signatures, stages.json."""

from __future__ import annotations

import pytest

from attrackt.errors import InputError
from attrackt.stages import StageRecord, StageRecords, digest, result_settings, signature


def test_signatures_see_every_file_but_the_folder_left_out(tmp_path) -> None:
    (tmp_path / "data" / "project").mkdir(parents=True)
    (tmp_path / "data" / "a.tif").write_bytes(b"12")
    (tmp_path / "data" / "project" / "stages.json").write_text("{}")
    assert signature(tmp_path / "nowhere") is None
    whole = signature(tmp_path / "data")
    assert [name for name, *_ in whole] == ["a.tif", "project/stages.json"]
    skipped = signature(tmp_path / "data", skip=tmp_path / "data" / "project")
    assert skipped == whole[:1] and skipped[0][1] == 2
    assert signature(tmp_path / "data" / "a.tif")[0][:2] == ["", 2]


def test_digests_ignore_key_order_and_the_settings_of_how_to_run() -> None:
    assert digest({"a": 1, "b": [1.5, None]}) == digest({"b": [1.5, float("nan")], "a": 1})
    settings = {"train": {"steps": 5, "device": "cuda", "progress": False}, "seed": 1}
    assert result_settings(settings) == {"train": {"steps": 5}, "seed": 1}


def test_records_round_trip_and_say_what_is_current(tmp_path) -> None:
    records = StageRecords.load(tmp_path / "stages.json")
    assert records.records == {}
    records.start("train", StageRecord("d1", config={"train": {"steps": 5}}))
    assert records.can_go_on("train", "d1") and not records.can_go_on("train", "d2")
    assert records.configuration(["train"]) == {}  # unfinished: describes no output
    records.finish("train", "out1")
    again = StageRecords.load(tmp_path / "stages.json")
    assert again.is_current("train", "d1", "out1")
    assert not again.is_current("train", "d2", "out1") and not again.is_current("train", "d1", "x")
    assert again.outputs_of("train") == "out1" and again.outputs_of("link") is None
    assert again.configuration(["train"]) == {"train": {"steps": 5}}


@pytest.mark.parametrize("text", ["{", '{"format": 99, "stages": {}}', '{"stages": {"a": 1}}'])
def test_an_unreadable_record_says_how_to_start_over(tmp_path, text) -> None:
    (tmp_path / "stages.json").write_text(text)
    with pytest.raises(InputError, match=r"stages.json: not a readable .*delete it"):
        StageRecords.load(tmp_path / "stages.json")
