"""The crop auto-encoder: shapes, training on tiny crops, embeddings, checkpoints, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from attrackt.cli import app
from attrackt.data import Detections
from attrackt.embed import (
    AutoEncoder,
    AutoEncoderConfig,
    EmbedConfig,
    embed_crops,
    embed_detections,
    load_autoencoder,
    train_autoencoder,
)
from attrackt.embed.train import augment_crops
from attrackt.errors import InputError
from attrackt.train import TrainConfig, load_checkpoint


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: tiny convolutions gain nothing from more, and a busy machine makes
    spinning OpenMP threads very slow."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n: int, size: tuple[int, ...], seed: int) -> np.ndarray:
    """``n`` random ellipsoids of random orientation, size and brightness."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(s) for s in size], indexing="ij"), -1).astype(float)
    out = np.zeros((n, *size), np.float32)
    for i in range(n):
        centre = rng.uniform(0.3, 0.7, len(size)) * np.asarray(size)
        rot, _ = np.linalg.qr(rng.normal(size=(len(size), len(size))))
        axes = rng.uniform(1.5, 0.35 * min(size), len(size))
        local = (grid - centre) @ rot / axes
        out[i] = ((local**2).sum(-1) <= 1) * rng.uniform(0.5, 1.0)
    return out


def _small(crop_size, variational=False, **kw) -> AutoEncoderConfig:
    return AutoEncoderConfig(
        crop_size=crop_size, base_channels=8, channel_mult=(1, 2), variational=variational, **kw
    )


def _config(model: AutoEncoderConfig, steps: int, **kw) -> EmbedConfig:
    train = TrainConfig(
        steps=steps,
        batch_size=16,
        lr=2e-3,
        warmup_steps=10,
        log_every=1,
        val_every=0,
        checkpoint_every=0,
        device="cpu",
        progress=False,
        seed=0,
    )
    return EmbedConfig(model=model, train=train, **kw)


@pytest.mark.parametrize("crop_size", [(16, 16), (4, 8, 8)])
@pytest.mark.parametrize("variational", [False, True])
def test_forward_backward_shapes(crop_size, variational):
    model = AutoEncoder(_small(crop_size, variational))
    x = torch.randn(3, 1, *crop_size)
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.mean.shape == (3, *model.config.latent_shape)
    assert (out.logvar is not None) == variational
    out.reconstruction.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.embed(x).shape == (3, model.config.embedding_dim)


def test_latent_and_embedding_sizes():
    default = AutoEncoderConfig()
    assert default.latent_shape == (4, 8, 8) and default.embedding_dim == 256
    thin = AutoEncoderConfig(crop_size=(6, 64, 64), embedding="pooled")
    assert thin.latent_shape == (4, 3, 8, 8)  # the 6 planes are halved once, then kept
    assert thin.embedding_dim == 4 * 2**3
    model = AutoEncoder(thin)
    assert model.embed(torch.zeros(2, 1, 6, 64, 64)).shape == (2, 32)
    with pytest.raises(InputError, match="crops"):
        model.embed(torch.zeros(2, 1, 6, 32, 32))
    with pytest.raises(InputError, match="embedding"):
        AutoEncoderConfig(embedding="mean")


def test_variational_embedding_is_the_deterministic_mean():
    model = AutoEncoder(_small((16, 16), variational=True)).eval()
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.embed(x), model.embed(x))
        a, b = model(x).reconstruction, model(x).reconstruction
    assert not torch.equal(a, b)  # sampling in the forward pass


def test_augmentation_is_a_dihedral_transform_per_crop():
    torch.manual_seed(0)
    crop = torch.arange(16.0).reshape(4, 4)
    batch = crop.expand(64, 4, 4).clone()
    out = augment_crops(batch, flip=True, rotate=True, jitter=0.0)
    dihedral = [torch.rot90(c, k) for c in (crop, crop.flip(0)) for k in range(4)]
    found = {next(i for i, d in enumerate(dihedral) if torch.equal(o, d)) for o in out}
    assert len(found) == 8  # every one of the 8 symmetries of the square occurs
    jittered = augment_crops(batch, flip=False, rotate=False, jitter=0.1)
    ratio = (jittered[:, 0, 1] - jittered[:, 0, 0]) / (crop[0, 1] - crop[0, 0])
    assert ((ratio > 0.9) & (ratio < 1.1)).all() and ratio.std() > 0


@pytest.mark.parametrize(
    ("crop_size", "variational", "steps"), [((16, 16), False, 300), ((8, 12, 12), True, 150)]
)
def test_training_reduces_loss_and_separates_shapes(tmp_path, crop_size, variational, steps):
    sources = _blobs(12, crop_size, seed=1)
    rng = np.random.default_rng(2)
    crops = np.repeat(sources, 16, axis=0)
    crops += rng.normal(0, 0.05, crops.shape).astype(np.float32)
    cfg = _config(
        _small(crop_size, variational), steps, beta=1e-4, augment=False, intensity_jitter=0.0
    )
    model = train_autoencoder(crops, cfg, tmp_path)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    log = [r for r in map(json.loads, lines) if "loss" in r]
    key = "mse" if variational else "loss"
    assert np.mean([r[key] for r in log[-20:]]) < 0.1 * log[0][key]

    noisy = sources + rng.normal(0, 0.05, sources.shape).astype(np.float32)

    def margins(net: AutoEncoder) -> np.ndarray:
        """Nearest source of each noisy copy, and how much nearer it is than the runner-up."""
        own = embed_crops(net, sources, device="cpu")
        other = embed_crops(net, noisy, device="cpu")
        distance = ((other[:, None] - own[None]) ** 2).sum(-1)
        assert np.array_equal(distance.argmin(axis=1), np.arange(len(sources)))
        ranked = np.sort(distance, axis=1)
        return np.median(ranked[:, 1] / ranked[:, 0])

    # random features already tell these blobs apart; training must widen the gap
    assert margins(model) > 2 * margins(AutoEncoder(cfg.model))


def test_checkpoint_round_trip_and_wrong_kind(tmp_path):
    crops = _blobs(20, (16, 16), seed=3)
    model = train_autoencoder(crops, _config(_small((16, 16)), 3), tmp_path)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt.kind == "autoencoder" and ckpt.model_config["crop_size"] == (16, 16)
    loaded = load_autoencoder(tmp_path / "last.pt")
    batched_by_7 = embed_crops(model, crops, batch_size=7, device="cpu")
    np.testing.assert_allclose(batched_by_7, embed_crops(loaded, crops, 64), atol=1e-5)
    bigger = AutoEncoder(_small((16, 16), latent_channels=8))
    with pytest.raises(InputError, match=r"last\.pt.*shape"):
        ckpt.load_into(bigger)


def test_bad_crops_are_refused(tmp_path):
    cfg = _config(_small((16, 16)), 2)
    with pytest.raises(InputError, match=r"expected \(N, 16, 16\)"):
        train_autoencoder(np.zeros((4, 8, 8), np.float32), cfg, tmp_path)
    nan = np.zeros((4, 16, 16), np.float32)
    nan[2, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        train_autoencoder(nan, cfg, tmp_path)


def _movie(tmp_path):
    """A 3-frame movie with bright squares; frame 1 has no detections."""
    images = np.random.default_rng(0).integers(100, 120, (3, 40, 40)).astype(np.uint16)
    points = [(0, 10, 10), (0, 30, 25), (2, 20, 1)]
    for t, y, x in points:
        images[t, max(y - 2, 0) : y + 3, max(x - 2, 0) : x + 3] = 3000
    det = Detections.from_arrays([p[0] for p in points], np.array([p[1:] for p in points]))
    np.save(tmp_path / "movie.npy", images)
    det.save(tmp_path / "det.parquet")
    return images, det


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"beta": -1e-3}, "beta"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"intensity_jitter": -0.1}, "intensity_jitter"),
        ({"low": 99.9, "high": 1.0}, "percentiles"),
        ({"minutes": 0.0}, "minutes"),
    ],
)
def test_bad_embedding_settings_are_refused_where_they_are_made(bad, message):
    with pytest.raises(InputError, match=message):
        EmbedConfig(**bad)


def test_embed_detections_trains_then_reuses_the_checkpoint(tmp_path):
    images, det = _movie(tmp_path)
    cfg = _config(_small((16, 16)), 5)
    out = embed_detections(det, {"": images}, cfg, tmp_path / "ae")
    assert out.vectors["embedding"].shape == (3, cfg.model.embedding_dim)
    again = embed_detections(det, {"": images}, EmbedConfig(), checkpoint=tmp_path / "ae/last.pt")
    assert np.array_equal(out.vectors["embedding"], again.vectors["embedding"])
    with pytest.raises(InputError, match="no movie"):
        embed_detections(det, {"other": images}, cfg, tmp_path / "ae2")


def test_cli_embed_writes_an_embedding_block(tmp_path):
    _movie(tmp_path)
    args = [
        "embed",
        str(tmp_path / "det.parquet"),
        "--images",
        str(tmp_path / "movie.npy"),
        "--out",
        str(tmp_path / "out.parquet"),
        "--steps",
        "3",
        "--crop-size",
        "16",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = Detections.load(tmp_path / "out.parquet")
    assert out.vectors["embedding"].shape[0] == 3
    assert (tmp_path / "out_autoencoder" / "last.pt").is_file()
    reuse = CliRunner().invoke(
        app,
        args[:6]
        + [
            "--out",
            str(tmp_path / "b.parquet"),
            "--checkpoint",
            str(tmp_path / "out_autoencoder/last.pt"),
        ],
    )
    assert reuse.exit_code == 0, reuse.output
    assert np.array_equal(
        Detections.load(tmp_path / "b.parquet").vectors["embedding"], out.vectors["embedding"]
    )


def test_cli_features_adds_columns(tmp_path):
    images, det = _movie(tmp_path)
    masks = np.zeros(images.shape, np.int32)
    masks[images == 3000] = 1
    masks[0, :, 20:] *= 2  # the two squares of frame 0 are cells 1 and 2
    np.save(tmp_path / "masks.npy", masks)
    det = det.with_columns(label=np.array([1, 2, 1]))
    det.save(tmp_path / "det.parquet")
    result = CliRunner().invoke(
        app,
        [
            "features",
            str(tmp_path / "det.parquet"),
            "--images",
            str(tmp_path / "movie.npy"),
            "--masks",
            str(tmp_path / "masks.npy"),
            "--out",
            str(tmp_path / "f.parquet"),
        ],
    )
    assert result.exit_code == 0, result.output
    table = Detections.load(tmp_path / "f.parquet").table
    assert table["area"].tolist() == [25, 25, 20]  # the last square is cut by the border


def test_cli_reads_ctc_folders_masks_others_and_reports_bad_input(tmp_path):
    import tifffile

    images = np.full((2, 32, 32), 100, np.uint16)
    masks = np.zeros((2, 32, 32), np.uint16)
    for t, label, (y, x) in [(0, 1, (10, 10)), (0, 2, (10, 18)), (1, 1, (20, 20))]:
        images[t, y - 2 : y + 3, x - 2 : x + 3] = 1000 * label
        masks[t, y - 2 : y + 3, x - 2 : x + 3] = label
    det = Detections.from_arrays(
        [0, 0, 1], np.array([[10, 10], [10, 18], [20, 20]]), labels=[1, 2, 1]
    )
    det.save(tmp_path / "det.parquet")
    for name, stack, prefix in [("02", images, "t"), ("02_GT/TRA", masks, "man_track")]:
        (tmp_path / name).mkdir(parents=True)
        for t, frame in enumerate(stack):
            tifffile.imwrite(tmp_path / name / f"{prefix}{t:03d}.tif", frame)
    base = [
        "embed",
        str(tmp_path / "det.parquet"),
        "--images",
        str(tmp_path / "02"),
        "--steps",
        "2",
        "--crop-size",
        "16",
        "--batch-size",
        "2",
        "--device",
        "cpu",
    ]
    plain = CliRunner().invoke(app, base + ["--out", str(tmp_path / "a.parquet")])
    masked = CliRunner().invoke(
        app,
        base
        + [
            "--out",
            str(tmp_path / "b.parquet"),
            "--masks",
            str(tmp_path / "02_GT/TRA"),
            "--mask-others",
            "--checkpoint",
            str(tmp_path / "a_autoencoder" / "last.pt"),
        ],
    )
    assert plain.exit_code == 0 and masked.exit_code == 0, plain.output + masked.output
    a = Detections.load(tmp_path / "a.parquet").vectors["embedding"]
    b = Detections.load(tmp_path / "b.parquet").vectors["embedding"]
    # same model: the neighbours in frame 0 see each other unless masked; the lone cell does not
    assert not np.allclose(a[:2], b[:2]) and np.allclose(a[2], b[2], atol=1e-5)
    missing = CliRunner().invoke(app, base[:3] + [str(tmp_path / "nowhere"), "--out", "x.parquet"])
    assert missing.exit_code == 1 and "nowhere: no such file or folder" in missing.output
