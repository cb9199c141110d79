"""Sliding-window prediction: averaging over windows and tiles, test-time augmentation."""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import pytest
import torch
from torch import nn

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.model import TransformerConfig, WindowBatch, WindowConfig, WindowSet, valid_pairs
from attrackt.predict import PredictConfig, plane_transforms, predict_associations
from attrackt.training import AssociationModel, AssociationModelConfig

pytestmark = pytest.mark.usefixtures("single_thread")


class WindowScore(nn.Module):
    """Scores every valid pair of window ``w`` with ``(w + 1) / (n + 1)``: windows disagree."""

    def __init__(self, n_windows: int) -> None:
        super().__init__()
        self.n = n_windows

    def associations(self, batch: WindowBatch) -> torch.Tensor:
        value = (batch.windows.float() + 1) / (self.n + 1)
        return valid_pairs(batch.times, batch.mask) * value[:, None, None]


def chain(frames: int, cells: int = 1, seed: int = 0, spread: float = 50.0) -> Detections:
    rng = np.random.default_rng(seed)
    t = np.repeat(np.arange(frames), cells)
    return Detections.from_arrays(
        t,
        rng.uniform(0, spread, (len(t), 2)),
        vectors={"embedding": rng.normal(size=(len(t), 4))},
        area=rng.uniform(50, 100, len(t)),
    )


def as_dict(associations) -> dict[tuple[int, int], float]:
    table = associations.table
    return dict(zip(zip(table.source, table.target, strict=True), table.score, strict=True))


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_a_pair_gets_the_mean_over_the_windows_that_hold_it(batch_size):
    det = chain(4)  # one cell per frame, ids 0..3; windows of 3 frames start at 0 and 1
    windows = WindowConfig(window=3, embedding=None)
    config = PredictConfig(max_dt=2, threshold=0.0, tta=False, batch_size=batch_size)
    got = predict_associations(WindowScore(2), det, windows, config)
    third, two_thirds = 1 / 3, 2 / 3
    want = {
        (0, 1): third,  # window 0 only
        (1, 2): (third + two_thirds) / 2,  # both windows disagree: the mean
        (2, 3): two_thirds,  # window 1 only
        (0, 2): third,
        (1, 3): two_thirds,
    }
    assert as_dict(got).keys() == want.keys()
    for pair, score in want.items():
        assert as_dict(got)[pair] == pytest.approx(score, abs=1e-6)
    table = got.table.set_index(["source", "target"])
    assert table.loc[(0, 2), "dt"] == 2 and table.loc[(1, 2), "dt"] == 1


def test_pairs_in_several_tiles_are_averaged_too():
    det = chain(4, cells=40, seed=1, spread=200.0)
    windows = WindowConfig(window=3, max_tokens=50, tile_margin=40.0, embedding=None)
    ws = WindowSet.build(det, None, windows)
    assert len(ws) > 4  # tiled
    # the reference: a loop over windows and their pairs
    scores = defaultdict(list)
    index = ws.index.numpy()
    for w, rows in enumerate(index):
        rows = rows[rows >= 0]
        t = det.times[rows]
        for a in range(len(rows)):
            for b in range(len(rows)):
                if t[b] - t[a] == 1:
                    scores[(det.ids[rows[a]], det.ids[rows[b]])].append((w + 1) / (len(ws) + 1))
    want = {k: np.mean(v) for k, v in scores.items()}
    assert max(len(v) for v in scores.values()) > 2  # some pair sits in several tiles
    config = PredictConfig(threshold=0.0, tta=False, batch_size=3)
    got = as_dict(predict_associations(WindowScore(len(ws)), det, windows, config))
    assert got.keys() == want.keys()
    np.testing.assert_allclose([got[k] for k in want], list(want.values()), atol=1e-6)


def test_the_threshold_drops_weak_pairs():
    det = chain(4)
    windows = WindowConfig(window=3, embedding=None)
    config = PredictConfig(threshold=0.6, tta=False)  # keeps 2/3, drops 1/2 and 1/3
    assert set(as_dict(predict_associations(WindowScore(2), det, windows, config))) == {(2, 3)}


def _model() -> AssociationModel:
    torch.manual_seed(0)
    shape = TransformerConfig(
        feature_dim=1,
        embedding_dim=4,
        d_model=32,
        n_heads=2,
        encoder_layers=1,
        decoder_layers=1,
        dropout=0.0,
        window=4,
        spatial_scale=64.0,
    )
    return AssociationModel(AssociationModelConfig(shape)).eval()


def test_test_time_augmentation_makes_scores_invariant_to_flips_and_transposition():
    det = chain(6, cells=5, seed=2)
    pos = det.positions()
    turned = det.with_columns(y=pos[:, 1], x=80.0 - pos[:, 0])  # a 90-degree turn
    windows = WindowConfig(window=4)
    model = _model()

    def scores(d: Detections, tta: bool) -> np.ndarray:
        config = PredictConfig(max_dt=2, threshold=0.0, tta=tta)
        got = as_dict(predict_associations(model, d, windows, config))
        return np.array([got[k] for k in sorted(got)])

    plain, plain_turned = scores(det, False), scores(turned, False)
    assert np.abs(plain - plain_turned).max() > 1e-3  # the model alone is not invariant
    np.testing.assert_allclose(scores(det, True), scores(turned, True), atol=2e-5)
    assert len(plane_transforms(True)) == 8 and plane_transforms(False) == [(False,) * 3]


def test_scores_point_forward_in_time_and_lie_in_0_1():
    det = chain(7, cells=4, seed=3)
    got = predict_associations(_model(), det, WindowConfig(window=4), PredictConfig(max_dt=3))
    table = got.table
    rows_s, rows_t = det.rows_of(table.source), det.rows_of(table.target)
    assert (det.times[rows_t] - det.times[rows_s] == table.dt).all()
    assert set(table.dt) == {1, 2, 3}
    assert table.score.between(0.01, 1.0).all()  # below the default threshold: dropped
    with pytest.raises(InputError, match="max_dt 4 needs windows longer than 4"):
        predict_associations(_model(), det, WindowConfig(window=4), PredictConfig(max_dt=4))


def test_predicting_one_sequence_of_several_keeps_its_ids():
    a = chain(5, cells=3, seed=4)
    b = dataclasses.replace(chain(5, cells=3, seed=5))
    b = Detections(b.table.assign(id=b.ids + 100, sequence="b"), b.vectors)
    both = Detections.concat([a, b])
    windows = WindowConfig(window=4)
    config = PredictConfig(threshold=0.0, tta=False)
    together = as_dict(predict_associations(_model(), both, windows, config))
    alone = as_dict(predict_associations(_model(), b, windows, config))
    assert all(s >= 100 and t >= 100 for s, t in alone)
    assert not any((s < 100) != (t < 100) for s, t in together)  # never across sequences
    for pair, score in alone.items():
        assert together[pair] == pytest.approx(score, abs=1e-5)


def test_a_model_without_appearance_in_its_input_predicts_cells_without_an_embedding():
    det = chain(5, cells=3, seed=2)
    torch.manual_seed(0)
    shape = TransformerConfig(
        feature_dim=1, embedding_dim=4, d_model=32, n_heads=2, encoder_layers=1,
        decoder_layers=1, dropout=0.0, window=3,
    )  # fmt: skip
    model = AssociationModel(AssociationModelConfig(shape)).eval()
    windows = WindowConfig(window=3, embedding="embedding")  # as the checkpoint recorded it
    config = PredictConfig(tta=False, threshold=0.0)
    bare = Detections(det.table)  # no embedding, as in a project with a new segmentation
    assert as_dict(predict_associations(model, bare, windows, config)) == pytest.approx(
        as_dict(predict_associations(model, det, windows, config))
    )
