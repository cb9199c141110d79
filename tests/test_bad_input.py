"""Awkward input through the training and prediction path: near-empty windows, empty frames,
short movies, cells at the image border, NaN features."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from _ctc_movie import write_raw_ctc

from attrackt.data import Detections
from attrackt.embed import AutoEncoderConfig, EmbedConfig, embed_store
from attrackt.errors import InputError
from attrackt.model import TransformerConfig, WindowConfig
from attrackt.predict import PredictConfig, predict_associations
from attrackt.prepare import PrepareConfig, prepare
from attrackt.train import TrainConfig, load_checkpoint
from attrackt.training import AssociationTrainConfig, train_association_model

pytestmark = pytest.mark.usefixtures("single_thread")


def _config(objective: str = "unsupervised", window: int = 3) -> AssociationTrainConfig:
    return AssociationTrainConfig(
        objective=objective,
        model=TransformerConfig(
            d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1, dropout=0.0
        ),
        windows=WindowConfig(window=window),
        heads_width=8,
        train=TrainConfig(steps=4, batch_size=2, device="cpu", progress=False, log_every=1),
        val_frames=0.0,
    )


def _detections(times: list[int], seed: int = 0, **columns) -> Detections:
    rng = np.random.default_rng(seed)
    t = np.asarray(times)
    return Detections.from_arrays(
        t,
        rng.uniform(0, 40, (len(t), 2)),
        vectors={"embedding": rng.normal(size=(len(t), 4))},
        area=columns.get("area", rng.uniform(20, 40, len(t))),
    )


def _train_and_predict(det, edges, tmp_path, objective="unsupervised", window=3):
    config = _config(objective, window)
    model = train_association_model(det, edges, config, tmp_path)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(log) == 4 and all(np.isfinite(r["loss"]) for r in log)
    assert load_checkpoint(tmp_path / "last.pt").step == 4
    return predict_associations(model, det, config.windows, PredictConfig(tta=False))


@pytest.mark.parametrize("objective", ["unsupervised", "supervised"])
def test_a_lone_detection_and_empty_frames_train_and_predict(tmp_path, objective):
    # frames 0-4 hold three cells, 5-8 none, 9 one: the window over frames 7-9 holds one token
    times = [t for t in range(5) for _ in range(3)] + [9]
    det = _detections(times)
    edges = np.stack([np.arange(12), np.arange(3, 15)], axis=1)
    got = _train_and_predict(det, edges, tmp_path, objective)
    rows_s, rows_t = det.rows_of(got.table.source), det.rows_of(got.table.target)
    assert (det.times[rows_t] - det.times[rows_s] == 1).all()
    assert 15 not in set(got.table.target)  # the lone cell has no candidate one frame back


def test_only_one_detection_at_all(tmp_path):
    det = _detections([0])
    got = _train_and_predict(det, np.zeros((0, 2), np.int64), tmp_path, "supervised")
    assert len(got) == 0


def test_a_movie_shorter_than_the_window(tmp_path):
    det = _detections([0, 0, 1, 1])
    got = _train_and_predict(det, None, tmp_path, window=6)
    assert set(got.table.dt) == {1} and set(got.table.source) <= {0, 1}


def test_nan_features_are_refused_naming_the_detection(tmp_path):
    area = np.array([30.0, np.nan, 25.0, 20.0])
    det = _detections([0, 0, 1, 1], area=area)
    with pytest.raises(InputError, match="feature 'area' of detection 1 \\(t=0\\) is NaN"):
        train_association_model(det, None, _config(), tmp_path)
    good = _detections([0, 0, 1, 1])
    model = train_association_model(good, None, _config(), tmp_path)
    with pytest.raises(InputError, match="feature 'area' of detection 1"):
        predict_associations(model, det, _config().windows)


def test_cells_at_the_image_border_go_through_the_whole_chain(tmp_path):
    images = np.full((4, 32, 32), 10, np.uint16)
    masks = np.zeros((4, 32, 32), np.uint16)
    for t in range(4):
        masks[t, 0:3, t : t + 3] = 1  # touching the top border
        masks[t, 28:32, 26:30] = 2  # in the bottom-right corner
        images[t][masks[t] > 0] = 500
    table = pd.DataFrame({"label": [1, 2], "start": [0, 0], "end": [3, 3], "parent": [0, 0]})
    write_raw_ctc(tmp_path / "DS", images, masks, table)
    store = prepare([tmp_path / "DS"], PrepareConfig(crop_size=16, crop_pixels=8))
    assert (store.crops[:, 0, :] == 0).all()  # the rows above the image are background
    embed_config = EmbedConfig(
        model=AutoEncoderConfig(base_channels=4, channel_mult=(1, 2)),
        train=TrainConfig(steps=2, batch_size=4, device="cpu", progress=False),
        val_fraction=0.0,
    )
    store = embed_store(store, embed_config, tmp_path / "ae")
    got = _train_and_predict(store.detections, store.edges(), tmp_path / "run", "mixed")
    assert len(got) > 0 and got.table.score.between(0, 1).all()


def test_an_input_error_from_a_worker_process_reaches_the_parent_whole() -> None:
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool:
        future = pool.submit(_raise_input_error, "answers.jsonl", "line 3 is not JSON")
        with pytest.raises(InputError) as caught:
            future.result()
    assert caught.value.source == "answers.jsonl"
    assert caught.value.problem == "line 3 is not JSON"
    assert str(caught.value) == "answers.jsonl: line 3 is not JSON"


def _raise_input_error(source: str, problem: str) -> None:
    raise InputError(source, problem)
