"""The synthetic movies: deterministic, exact ground truth, lifelike events, telling appearance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from attrackt.errors import InputError
from attrackt.synthetic import SyntheticConfig, SyntheticMovie, generate

CONFIGS = {
    "2d": SyntheticConfig(shape=(128, 160), frames=20, density=6, seed=3),
    "3d": SyntheticConfig(shape=(20, 80, 96), frames=12, density=10, seed=4),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def movie(request) -> SyntheticMovie:
    return generate(CONFIGS[request.param])


def test_shapes_and_types(movie: SyntheticMovie) -> None:
    cfg = movie.config
    assert movie.images.shape == movie.masks.shape == (cfg.frames, *cfg.shape)
    assert movie.images.dtype == movie.masks.dtype == np.uint16
    assert list(movie.track_table.columns) == ["label", "start", "end", "parent"]


def test_same_seed_same_movie_other_seed_other_movie() -> None:
    cfg = SyntheticConfig(shape=(96, 96), frames=8, seed=11)
    a, b = generate(cfg), generate(cfg)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    pd.testing.assert_frame_equal(a.track_table, b.track_table)
    c = generate(SyntheticConfig(shape=(96, 96), frames=8, seed=12))
    assert not np.array_equal(a.masks, c.masks)


def test_masks_hold_exactly_the_living_tracks_each_in_one_piece(movie: SyntheticMovie) -> None:
    table = movie.track_table
    for t, frame in enumerate(movie.masks):
        present = set(np.unique(frame).tolist()) - {0}
        alive = set(table.loc[(table["start"] <= t) & (table["end"] >= t), "label"].tolist())
        assert present == alive, f"frame {t}"
        for lab in present:
            assert ndi.label(frame == lab)[1] == 1, f"label {lab} split in frame {t}"


def test_lineage_is_consistent(movie: SyntheticMovie) -> None:
    table = movie.track_table.set_index("label")
    daughters = table[table["parent"] > 0]
    assert len(daughters) > 0, "no division happened"
    per_mother = daughters.groupby("parent").size()
    assert (per_mother == 2).all()
    assert (
        daughters["start"].to_numpy() == table.loc[daughters["parent"], "end"].to_numpy() + 1
    ).all()
    assert (table["start"] <= table["end"]).all()


def test_cells_enter_and_leave_through_the_border() -> None:
    cfg = SyntheticConfig(shape=(128, 128), frames=30, density=5, drift=1.5, seed=5)
    movie = generate(cfg)
    tracks = movie.tracks()
    table = movie.track_table
    det = tracks.detections.table
    entered = table[(table["start"] > 0) & (table["parent"] == 0)]
    mothers = set(table["parent"])
    left = table[(table["end"] < cfg.frames - 1) & ~table["label"].isin(mothers)]
    assert len(entered) and len(left)
    first = det.merge(entered, left_on=["label", "t"], right_on=["label", "start"])
    last = det.merge(left, left_on=["label", "t"], right_on=["label", "end"])
    for rows in (first, last):
        yx = rows[["y", "x"]].to_numpy()
        to_border = np.minimum(yx, np.array(cfg.shape) - 1 - yx).min(axis=1)
        assert (to_border < 2 * cfg.radius).all()


def test_without_divisions_entries_or_drift_the_population_is_fixed() -> None:
    cfg = SyntheticConfig(
        shape=(128, 128), frames=15, division_rate=0, entry_rate=0, drift=0, step=0.2, seed=2
    )
    table = generate(cfg).track_table
    assert (table["parent"] == 0).all() and (table["start"] == 0).all()


def test_tracks_reproduce_the_lineage_table(movie: SyntheticMovie) -> None:
    tracks = movie.tracks(sequence="01")
    labels, table = tracks.tracklets()
    assert np.array_equal(labels, tracks.detections.labels)
    pd.testing.assert_frame_equal(table, movie.track_table, check_dtype=False)
    # centroids lie on their own label
    det = tracks.detections
    idx = tuple(np.rint(det.positions()).astype(int).T)
    assert (movie.masks[(det.times, *idx)] == det.labels).mean() > 0.99


def test_noise_free_background_is_the_background_level() -> None:
    cfg = SyntheticConfig(shape=(96, 96), frames=3, noise=0, photons=0, background=0.2, seed=1)
    movie = generate(cfg)
    assert np.all(movie.images[movie.masks == 0] == 200)
    assert movie.images[movie.masks > 0].mean() > 300


def _descriptors(image: np.ndarray, mask: np.ndarray, det: pd.DataFrame, r: int) -> np.ndarray:
    """Shift-invariant look of each cell: the spectrum of its masked, centred crop."""
    img = np.pad(image.astype(float), r)
    lab = np.pad(mask, r)
    out = []
    for label, y, x in det[["label", "y", "x"]].to_numpy():
        yi, xi = int(round(y)) + r, int(round(x)) + r
        box = np.s_[yi - r : yi + r + 1, xi - r : xi + r + 1]
        own = lab[box] == label
        crop = (img[box] - img[box][own].mean()) * own
        spec = np.abs(np.fft.fft2(crop, s=(32, 32))).ravel()
        spec -= spec.mean()
        out.append(spec / np.linalg.norm(spec))
    return np.asarray(out)


def test_appearance_identifies_the_predecessor() -> None:
    movie = generate(SyntheticConfig(shape=(192, 192), frames=12, density=6, seed=7))
    tracks = movie.tracks()
    det = tracks.detections.table
    parents = tracks.parents
    single = {p for p, kids in tracks.children().items() if len(kids) == 1}
    hits = total = candidates = 0
    for t in range(1, movie.config.frames):
        prev, now = det[det["t"] == t - 1], det[det["t"] == t]
        sim = (
            _descriptors(movie.images[t], movie.masks[t], now, 10)
            @ _descriptors(movie.images[t - 1], movie.masks[t - 1], prev, 10).T
        )
        best = prev["id"].to_numpy()[sim.argmax(axis=1)]
        for child, guess in zip(now["id"].tolist(), best.tolist(), strict=True):
            if parents.get(child) in single:
                hits += guess == parents[child]
                total += 1
                candidates += len(prev)
    assert total > 100
    assert hits / total > 0.85  # chance is total / candidates, a few percent
    assert total / candidates < 0.1


def test_bad_configs_are_refused() -> None:
    with pytest.raises(InputError, match="shape"):
        SyntheticConfig(shape=(10,))
    with pytest.raises(InputError, match="too small"):
        SyntheticConfig(shape=(16, 16), radius=7)


def test_write_gives_a_valid_ctc_sequence_that_reads_back(tmp_path) -> None:
    from attrackt.io.ctc import load_ctc

    movie = generate(SyntheticConfig(shape=(64, 80), frames=6, density=10, seed=8))
    folder = movie.write(tmp_path, "02")
    assert folder == tmp_path / "02"
    data = load_ctc(tmp_path, "02")
    assert np.array_equal(data.images, movie.images) and np.array_equal(data.masks, movie.masks)
    pd.testing.assert_frame_equal(data.track_table, movie.track_table, check_dtype=False)
    assert np.array_equal(data.tracks.edges, movie.tracks().edges)


def test_synth_command_writes_sequences_that_validate(tmp_path) -> None:
    from typer.testing import CliRunner

    from attrackt.cli import app

    runner = CliRunner()
    args = ["synth", str(tmp_path / "demo"), "--frames", "5", "--size", "64", "--density", "8"]
    result = runner.invoke(app, [*args, "--sequences", "2", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["01", "01_GT", "02", "02_GT"]
    assert runner.invoke(app, ["validate", str(tmp_path / "demo")]).exit_code == 0
    again = runner.invoke(app, [*args, "--seed", "4"])  # sequence 01 of seed 4 = 02 of seed 3
    assert again.exit_code == 0
    first = sorted((tmp_path / "demo" / "01_GT" / "TRA").iterdir())
    second = sorted((tmp_path / "demo" / "02_GT" / "TRA").iterdir())
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]
    three_d = runner.invoke(app, [*args, "--ndim", "3", "--depth", "12"])
    assert three_d.exit_code == 0
    tiny = runner.invoke(app, ["synth", str(tmp_path / "x"), "--size", "10"])
    assert tiny.exit_code == 1 and "too small" in tiny.output
