"""The command-line chain prepare -> embed -> train -> predict on a tiny synthetic movie."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Associations, Detections, Tracks
from attrackt.store import Store
from attrackt.synthetic import SyntheticConfig, generate

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = ["--d-model", "16", "--layers", "1", "--heads", "2", "--batch-size", "2"]


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    return result.output


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth") / "S"
    for k, seed in ((1, 0), (2, 1)):
        config = SyntheticConfig(shape=(96, 96), frames=6, density=5, seed=seed)
        generate(config).write(root, f"{k:02d}")
    return root


def test_prepare_embed_train_predict(dataset, tmp_path):
    store = tmp_path / "s.npz"
    run("prepare", dataset, "--out", store, "--crop-size", "24", "--crop-pixels", "8")
    raw = Store.load(store)
    assert raw.sequences == ["S/01", "S/02"] and raw.crops.shape[1:] == (8, 8)

    embedded = tmp_path / "e.npz"
    ae = ["--steps", "2", "--batch-size", "4", "--device", "cpu"]
    run("embed", store, "--out", embedded, *ae)
    with_z = Store.load(embedded)
    assert with_z.detections.vectors["embedding"].shape[0] == len(raw.detections)
    run("embed", store, "--in-place", "--checkpoint", tmp_path / "e_autoencoder" / "last.pt")
    assert np.array_equal(
        Store.load(store).detections.vectors["embedding"],
        with_z.detections.vectors["embedding"],
    )

    common = ["--steps", "3", "--device", "cpu", *TINY]
    run("train", embedded, "--out", tmp_path / "unsup", *common)
    run(
        "train", embedded, "--out", tmp_path / "sup", "--objective", "supervised",
        "--sequences", "01", *common,
    )  # fmt: skip
    for name in ("unsup", "sup"):
        out = tmp_path / f"{name}.parquet"
        run(
            "predict", embedded, "--checkpoint", tmp_path / name / "last.pt", "--out", out,
            "--sequences", "02", "--no-tta", "--device", "cpu",
            "--detections-out", tmp_path / "d02.parquet",
        )  # fmt: skip
        assoc = Associations.load(out)
        second = with_z.select(["02"]).detections
        assert len(assoc) > 0 and assoc.table.score.between(0.01, 1).all()
        assert np.isin(assoc.table[["source", "target"]], second.ids).all()
        # the linker takes both: the associations lower the cost of the links they score
        tracks = tmp_path / f"tracks_{name}"
        run("link", tmp_path / "d02.parquet", "--associations", out, "--out", tracks)
        linked = Tracks.load(tracks)
        assert linked.detections.equals(Detections.load(tmp_path / "d02.parquet"))
        assert len(linked.edges) > len(second) // 2
    # both models at once: the ensemble's score of a pair is the mean of theirs (absent = 0)
    both = tmp_path / "both.parquet"
    run(
        "predict", embedded, "--checkpoint", tmp_path / "unsup" / "last.pt", "--checkpoint",
        tmp_path / "sup" / "last.pt", "--out", both, "--sequences", "02", "--no-tta",
        "--device", "cpu",
    )  # fmt: skip
    ensemble = Associations.load(both)
    unsup, sup = (Associations.load(tmp_path / f"{n}.parquet") for n in ("unsup", "sup"))
    pairs = pd.concat([unsup.table, sup.table])[["source", "target"]].drop_duplicates()
    expected = (
        unsup.lookup(pairs.source, pairs.target) + sup.lookup(pairs.source, pairs.target)
    ) / 2
    assert len(ensemble) == len(pairs) and ensemble.meta["ensemble"] == 2
    np.testing.assert_allclose(ensemble.lookup(pairs.source, pairs.target), expected, rtol=1e-6)


def test_train_reports_what_does_not_fit(dataset, tmp_path):
    store = tmp_path / "s.npz"
    run("prepare", dataset / "01", "--out", store, "--crop-size", "24", "--crop-pixels", "8")
    common = ["--steps", "2", "--device", "cpu", "--batch-size", "2"]
    # no embedding yet: the unsupervised objective says what to run first
    assert "run `attrackt embed` first" in fails("train", store, "--out", tmp_path / "r", *common)
    run("train", store, "--out", tmp_path / "r", "--objective", "supervised", *common, *TINY[:-2])
    # resuming the run with another model shape names the parameter and both shapes
    output = fails(
        "train", store, "--out", tmp_path / "r", "--objective", "supervised", *common,
        "--d-model", "32", "--layers", "1", "--heads", "2",
    )  # fmt: skip
    assert "last.pt" in output and "shape" in output and "(16" in output and "(32" in output
    # a file that is not a checkpoint, and a checkpoint of another kind of model
    (tmp_path / "junk.pt").write_bytes(b"junk")
    predict = ["predict", store, "--out", tmp_path / "a.parquet", "--device", "cpu"]
    assert "not a readable checkpoint" in fails(*predict, "--checkpoint", tmp_path / "junk.pt")
    run("embed", store, "--in-place", "--steps", "1", "--batch-size", "2", "--device", "cpu")
    autoencoder = tmp_path / "s_autoencoder" / "last.pt"
    assert "not an association model" in fails(*predict, "--checkpoint", autoencoder)
    assert "matches no sequence" in fails(
        "train", store, "--out", tmp_path / "x", "--sequences", "07", *common
    )
