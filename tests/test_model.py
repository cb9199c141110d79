"""Windows, the association transformer and the normalisation of its logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.losses import AttracktHeads, objective
from attrackt.model import (
    AssociationTransformer,
    AugmentConfig,
    TransformerConfig,
    WindowConfig,
    WindowSet,
    normalise_associations,
    valid_pairs,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def chain_movie(
    frames: int, cells: int, seed: int = 0, skip_frames: tuple[int, ...] = (), step: float = 0
):
    """Cells that keep their index through the frames, with an embedding, one scalar feature
    and parent->child edges. Positions are random in every frame, or (``step`` > 0) a random
    walk with that step size. ``skip_frames`` are left empty (links then jump over them)."""
    rng = np.random.default_rng(seed)
    kept = [t for t in range(frames) if t not in skip_frames]
    ids = np.arange(len(kept) * cells).reshape(len(kept), cells)
    t = np.repeat(kept, cells)
    if step > 0:
        walk = rng.normal(scale=step, size=(len(kept), cells, 2)).cumsum(0)
        positions = (rng.uniform(0, 300, (1, cells, 2)) + walk).reshape(-1, 2)
    else:
        positions = rng.uniform(0, 300, (len(t), 2))
    det = Detections.from_arrays(
        t,
        positions,
        ids=ids.ravel(),
        vectors={"embedding": rng.normal(size=(len(t), 4))},
        area=rng.uniform(50, 150, len(t)),
    )
    edges = np.stack([ids[:-1].ravel(), ids[1:].ravel()], 1)
    return det, edges


def small_model(**overrides) -> AssociationTransformer:
    settings = dict(
        feature_dim=1,
        embedding_dim=4,
        d_model=32,
        n_heads=2,
        encoder_layers=2,
        decoder_layers=2,
        dropout=0.0,
    )
    settings.update(overrides)
    torch.manual_seed(0)
    return AssociationTransformer(TransformerConfig(**settings)).eval()


def run(model: AssociationTransformer, batch) -> torch.Tensor:
    return model(batch.coords, batch.mask, batch.features, batch.z)


# ---- windows -------------------------------------------------------------------------------


def test_windows_cover_consecutive_frames_and_keep_empty_frames_as_gaps():
    det, edges = chain_movie(10, 3, skip_frames=(4,))
    ws = WindowSet.build(det, edges, WindowConfig(window=6))
    assert len(ws) == 5  # starts 0..4
    assert ws.start.tolist() == [0, 1, 2, 3, 4]
    batch = ws.batch(np.arange(len(ws)))
    for k, start in enumerate(range(5)):
        frames = set(range(start, start + 6)) - {4}
        got = set((batch.times[k][batch.mask[k]] + start).tolist())
        assert got == frames
    # the links over the empty frame 4 (3 -> 5) are in the GT matrix of window 0
    t = batch.times[0]
    skip = batch.a_gt[0][(t == 3)][:, (t == 5)]
    assert torch.equal(skip, torch.eye(3))
    # such windows train like any other
    out = objective(small_model().train(), AttracktHeads(4), batch, "mixed")
    out["loss"].backward()
    assert all(torch.isfinite(v) for v in out.values())


def test_movie_shorter_than_window_gives_one_short_window():
    det, edges = chain_movie(3, 4)
    ws = WindowSet.build(det, edges, WindowConfig(window=6))
    assert len(ws) == 1
    batch = ws.batch([0])
    assert batch.mask.all() and batch.times.max() == 2
    model = small_model()
    A = normalise_associations(run(model, batch), batch.times, batch.mask, n_frames=6)
    assert torch.isfinite(A).all() and A.sum() > 0


def test_gt_matrix_marks_every_ancestor_within_the_window():
    det, edges = chain_movie(7, 5, seed=3)
    edges = np.concatenate([edges, [[0, 99]]])  # cell 0 of frame 0 also has a second child
    det = Detections.concat(
        [
            det,
            Detections.from_arrays(
                [1],
                np.array([[1.0, 1.0]]),
                ids=[99],
                vectors={"embedding": np.zeros((1, 4))},
                area=np.array([100.0]),
            ),
        ]
    )
    ws = WindowSet.build(det, edges, WindowConfig(window=6))
    batch = ws.batch([0, 1])
    parent = {c: p for p, c in edges.tolist()}

    def ancestors(c: int) -> set[int]:
        out = set()
        while c in parent:
            c = parent[c]
            out.add(c)
        return out

    for k in range(2):
        ids = batch.ids[k].tolist()
        want = torch.tensor([[float(p in ancestors(c)) for c in ids] for p in ids])
        assert torch.equal(batch.a_gt[k], want)
    # window 0: 5 chains over 6 frames (15 ancestor pairs each) + the extra child of cell 0
    assert batch.a_gt[0].sum() == 5 * 15 + 1 and batch.a_gt[1].sum() == 5 * 15


def test_token_budget_splits_windows_into_tiles_without_dropping_frames():
    det, edges = chain_movie(6, 60, seed=1, step=2.0)
    ws = WindowSet.build(det, edges, WindowConfig(window=6, max_tokens=100, tile_margin=20))
    assert len(ws) > 1 and ws.counts.max() <= 100
    covered = np.unique(ws.index[ws.index >= 0].numpy())
    assert np.array_equal(covered, np.arange(len(det)))  # no detection lost
    batch = ws.batch(np.arange(len(ws)))
    for k in range(len(ws)):
        assert set(batch.times[k][batch.mask[k]].tolist()) == set(range(6))  # no frame lost
    # the overlap keeps every cell with its next position in at least one tile
    linked = set()
    for k in range(len(ws)):
        parent, child = torch.nonzero(batch.a_gt[k], as_tuple=True)
        ids = batch.ids[k]
        linked |= set(zip(ids[parent].tolist(), ids[child].tolist(), strict=True))
    assert {tuple(e) for e in edges.tolist()} <= linked


def test_padding_changes_nothing_for_real_tokens():
    det_small, _ = chain_movie(6, 2, seed=4)
    det_big, _ = chain_movie(6, 9, seed=5)
    det_big = Detections(
        det_big.table.assign(id=det_big.table["id"] + 1000, sequence="big"), det_big.vectors
    )
    ws = WindowSet.build(Detections.concat([det_small, det_big]), None, WindowConfig(window=6))
    small = 0 if ws.sequences[0] == "" else 1
    alone = ws.batch([small])
    padded = ws.batch([small, 1 - small])
    n = alone.coords.shape[1]
    assert padded.coords.shape[1] > n and not padded.mask[0, n:].any()
    model = small_model()
    with torch.no_grad():
        a = run(model, alone)
        b = run(model, padded)
    torch.testing.assert_close(b[0, :n, :n], a[0], atol=1e-5, rtol=1e-5)
    A = normalise_associations(b, padded.times, padded.mask)
    assert (A[0, n:] == 0).all() and (A[0, :, n:] == 0).all()
    torch.testing.assert_close(
        A[0, :n, :n], normalise_associations(a, alone.times, alone.mask)[0], atol=1e-5, rtol=1e-5
    )


@pytest.mark.parametrize("mode", ["quiet_softmax", "softmax", "sigmoid"])
def test_normalisation_only_scores_earlier_to_later_and_bounds_parent_mass(mode):
    torch.manual_seed(0)
    b, n, frames = 3, 20, 5
    times = torch.randint(0, frames, (b, n))
    mask = torch.rand(b, n) > 0.2
    logits = torch.randn(b, n, n) * 4
    A = normalise_associations(logits, times, mask, mode=mode)
    later = times[:, None, :] > times[:, :, None]
    both = mask[:, :, None] & mask[:, None, :]
    assert (A[~(later & both)] == 0).all()
    assert (A[later & both] > 0).all()
    for s in range(frames):  # parent mass of each child j in parent frame s
        from_s = ((times == s) & mask)[:, :, None]
        mass = (A * from_s).sum(1)
        has = (from_s & later & both).any(1)
        if mode == "softmax":
            torch.testing.assert_close(mass[has], torch.ones_like(mass[has]))
        elif mode == "quiet_softmax":
            assert (mass[has] > 0).all() and (mass[has] < 1).all()
        assert (mass[~has] == 0).all()


def test_quiet_softmax_lets_a_cell_have_no_parent_and_several_children():
    times = torch.tensor([[0, 0, 1, 1, 1]])
    mask = torch.ones(1, 5, dtype=torch.bool)
    logits = torch.full((1, 5, 5), -20.0)
    logits[0, 0, 2] = logits[0, 0, 3] = 20.0  # token 0 parents 2 and 3; token 4 has none
    A = normalise_associations(logits, times, mask)
    assert A[0, 0, 2] > 0.99 and A[0, 0, 3] > 0.99
    assert A[0, :, 4].sum() < 1e-6


def test_logits_are_invariant_to_a_translation_in_space():
    det, edges = chain_movie(6, 6, seed=6)
    ws = WindowSet.build(det, edges, WindowConfig(window=6))
    batch = ws.batch([0])
    model = small_model().double()
    coords = batch.coords.double()
    shifted = coords.clone()
    shifted[..., 1:] += torch.tensor([1234.5, -987.25], dtype=torch.float64)
    feats, z = batch.features.double(), batch.z.double()
    with torch.no_grad():
        a = model(coords, batch.mask, feats, z)
        b = model(shifted, batch.mask, feats, z)
        moved = coords.clone()
        moved[0, 0, 1:] += 40.0  # moving one cell does change its logits
        c = model(moved, batch.mask, feats, z)
    torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-8)
    assert (a[0, 0] - c[0, 0]).abs().max() > 1e-3


def test_augmentation_keeps_links_and_relative_distances():
    det, edges = chain_movie(6, 8, seed=7)
    config = WindowConfig(window=6, augment=AugmentConfig(drop=0.0, feature_jitter=0.0))
    ws = WindowSet.build(det, edges, config)
    plain = ws.batch([0, 0, 0])
    gen = torch.Generator().manual_seed(1)
    aug = ws.batch([0, 0, 0], augment=True, generator=gen)
    assert torch.equal(aug.a_gt, plain.a_gt) and torch.equal(aug.mask, plain.mask)
    assert torch.equal(aug.coords[..., 0], plain.coords[..., 0])  # time untouched
    assert not torch.allclose(aug.coords[..., 1:], plain.coords[..., 1:])

    def distances(c: torch.Tensor) -> torch.Tensor:
        return torch.linalg.norm(c[:, :, None, 1:] - c[:, None, :, 1:], dim=-1)

    d_plain, d_aug = distances(plain.coords), distances(aug.coords)
    off = d_plain > 0
    ratio = d_aug[off] / d_plain[off]
    for k in range(3):  # one scale factor per window, within the configured range
        r = d_aug[k][off[k]] / d_plain[k][off[k]]
        torch.testing.assert_close(r, r.mean().expand_as(r), atol=1e-4, rtol=1e-4)
    assert ratio.min() >= 0.9 - 1e-4 and ratio.max() <= 1.1 + 1e-4
    # different windows got different rotations: the coordinates differ between them
    assert not torch.allclose(aug.coords[0], aug.coords[1])


def test_augmentation_drops_detections_by_masking_them_and_their_links():
    det, edges = chain_movie(6, 10, seed=8)
    config = WindowConfig(window=6, augment=AugmentConfig(drop=0.5))
    ws = WindowSet.build(det, edges, config)
    aug = ws.batch([0, 0], augment=True, generator=torch.Generator().manual_seed(0))
    dropped = ~aug.mask
    assert 0 < dropped.sum() < aug.mask.numel() and aug.mask[:, 0].all()
    assert (aug.a_gt[dropped] == 0).all() and (aug.a_gt.transpose(1, 2)[dropped] == 0).all()
    assert (aug.ids[dropped] == -1).all() and (aug.z[dropped] == 0).all()
    assert aug.a_gt.sum() > 0


def test_window_with_one_detection_and_bf16_autocast_train_without_nan():
    det = Detections.from_arrays(
        [0], np.array([[5.0, 5.0]]), vectors={"embedding": np.ones((1, 4))}, area=np.array([1.0])
    )
    ws = WindowSet.build(det, None, WindowConfig(window=6))
    batch = ws.batch([0], augment=True, generator=torch.Generator().manual_seed(0))
    model = small_model().train()
    heads = AttracktHeads(4)
    out = objective(model, heads, batch, "unsupervised")
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["loss"] == 0
    det, edges = chain_movie(6, 5)
    batch = WindowSet.build(det, edges).batch([0, 0])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective(model, heads, batch, "mixed")
    out["loss"].backward()
    assert all(torch.isfinite(v) and v.dtype == torch.float32 for v in out.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_bad_inputs_raise_clear_errors():
    det, edges = chain_movie(6, 3)
    area = det.table["area"].to_numpy().copy()
    area[4] = np.nan
    with pytest.raises(InputError, match=r"feature 'area' of detection 4 .*NaN"):
        WindowSet.build(det.with_columns(area=area), edges)
    z = det.vectors["embedding"].copy()
    z[2, 1] = np.inf
    with pytest.raises(InputError, match="embedding 'embedding' of detection 2"):
        WindowSet.build(det.with_vectors(embedding=z), edges)
    with pytest.raises(InputError, match="no vector block 'appearance'"):
        WindowSet.build(det, edges, WindowConfig(embedding="appearance"))
    with pytest.raises(InputError, match="unknown detection"):
        WindowSet.build(det, np.array([[0, 999]]))
    with pytest.raises(InputError, match="more than one parent"):
        WindowSet.build(det, np.array([[0, 3], [1, 3]]))
    with pytest.raises(InputError, match="window must be at least 2"):
        WindowConfig(window=1)
    for bad, message in [
        ({"scale": (0.0, 1.1)}, "scale"),
        ({"scale": (1.2, 0.9)}, "scale"),
        ({"drop": 1.0}, "drop"),
        ({"feature_jitter": float("nan")}, "feature_jitter"),
    ]:
        with pytest.raises(InputError, match=message):
            AugmentConfig(**bad)
    ws = WindowSet.build(det, edges)
    with pytest.raises(InputError, match="out of range"):
        ws.batch([len(ws)])
    with pytest.raises(ValueError, match="divisible"):
        TransformerConfig(d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="expects an embedding"):
        batch = ws.batch([0])
        small_model(use_embedding=True)(batch.coords, batch.mask, batch.features, None)


def test_appearance_stays_out_of_the_input_unless_asked_for():
    det, edges = chain_movie(6, 3)
    batch = WindowSet.build(det, edges).batch([0])
    other_z = torch.randn_like(batch.z)
    plain, seeing = small_model(), small_model(use_embedding=True)
    # the default model (the method's) does not see z: its logits ignore it
    assert torch.equal(run(plain, batch), plain(batch.coords, batch.mask, batch.features, other_z))
    # with use_embedding the token input holds z, and the logits change with it
    changed = seeing(batch.coords, batch.mask, batch.features, other_z)
    assert not torch.allclose(run(seeing, batch), changed)
    assert seeing.input_proj.in_features == plain.input_proj.in_features + 4


def test_valid_pairs_agrees_with_normalisation_support():
    times = torch.tensor([[0, 1, 1, 2, 0]])
    mask = torch.tensor([[True, True, True, True, False]])
    v = valid_pairs(times, mask)
    assert v.sum() == 2 + 2 + 1  # 0->1,0->2, 0->3, 1->3, 2->3
    assert v[0, 0, 3] and not v[0, 1, 2] and not v[0, 4].any() and not v[0, :, 4].any()
