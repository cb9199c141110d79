"""Every JSON file attrackt writes is strict JSON: NaN and infinities become null."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from attrackt.active import save_ranking
from attrackt.evaluate import results_json
from attrackt.io.jsonfile import strict_json, write_json


def _strict_load(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_numbers_become_null_and_numpy_values_plain(tmp_path) -> None:
    value = {
        "nan": float("nan"),
        "inf": np.float32("inf"),
        "scores": np.array([1.5, np.nan]),
        "pair": (np.int64(2), -math.inf),
        3: np.bool_(True),
    }
    expected = {"nan": None, "inf": None, "scores": [1.5, None], "pair": [2, None], "3": True}
    assert _strict_load(strict_json(value)) == expected
    write_json(tmp_path / "v.json", value)
    assert _strict_load((tmp_path / "v.json").read_text()) == expected
    with pytest.raises(TypeError):
        strict_json({"object": object()})


def test_results_and_rankings_are_written_strictly(tmp_path) -> None:
    assert _strict_load(results_json({"a": {"TRA": float("nan"), "AOGM": 3.0}})) == {
        "a": {"TRA": None, "AOGM": 3.0}
    }
    ranking = pd.DataFrame({"rank": [1], "id": [7], "score": [np.nan], "model_children": [[8, 9]]})
    save_ranking(ranking, tmp_path / "r.json")
    assert _strict_load((tmp_path / "r.json").read_text()) == [
        {"rank": 1, "id": 7, "score": None, "model_children": [8, 9]}
    ]
