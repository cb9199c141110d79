"""The Attrackt, transitive, motion and supervised losses, including known-answer training runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attrackt.data import Detections
from attrackt.losses import (
    AttracktHeads,
    attrackt_loss,
    link_error,
    motion_loss,
    objective,
    supervised_loss,
    transitive_loss,
)
from attrackt.model import (
    AssociationTransformer,
    AugmentConfig,
    TransformerConfig,
    WindowConfig,
    WindowSet,
    normalise_associations,
    valid_pairs,
)

DIM = 8  # embedding width of the synthetic movies
pytestmark = pytest.mark.usefixtures("single_thread")


def appearance_movies(n_movies: int, seed: int, divide: bool = False, cells: int = 8):
    """Movies of 6 frames where appearance identifies each cell and position is noise.

    Each tracked cell has its own random embedding that drifts slowly and linearly; every frame
    also holds 4 one-frame cells with random embeddings; all positions are drawn afresh in every
    frame. With ``divide``, cell 0 divides after frame 2 into two daughters whose embeddings
    start near the mother's. Returns the detections and the true parent -> child edges.
    """
    rng = np.random.default_rng(seed)
    parts, edges, next_id = [], [], 0
    for m in range(n_movies):
        # a track: (first frame, last frame, embedding at its first frame, drift, parent track)
        tracks = [
            (0, 5, rng.normal(size=DIM), rng.normal(scale=0.1, size=DIM), None)
            for _ in range(cells)
        ]
        if divide:
            first, _, z0, drift, _ = tracks[0]
            tracks[0] = (0, 2, z0, drift, None)
            at_division = z0 + 3 * drift
            tracks += [
                (3, 5, at_division + rng.normal(scale=0.3, size=DIM), drift, 0) for _ in range(2)
            ]
        tracks += [
            (t, t, rng.normal(size=DIM), np.zeros(DIM), None) for t in range(6) for _ in range(4)
        ]
        rows = []  # (t, id, z)
        last_id = {}
        for k, (first, last, z0, drift, parent) in enumerate(tracks):
            previous = last_id.get(parent) if parent is not None else None
            for t in range(first, last + 1):
                rows.append((t, next_id, z0 + (t - first) * drift))
                if previous is not None:
                    edges.append((previous, next_id))
                previous = next_id
                next_id += 1
            last_id[k] = previous
        t = np.array([r[0] for r in rows])
        parts.append(
            Detections.from_arrays(
                t,
                rng.uniform(0, 50, (len(t), 2)),
                ids=np.array([r[1] for r in rows]),
                sequence=f"m{m:03d}",
                vectors={"embedding": np.stack([r[2] for r in rows])},
            )
        )
    return Detections.concat(parts), np.array(edges)


def parent_choices(model, windows: WindowSet):
    """Per child with a true parent one frame earlier: (predicted parent == true parent,
    whether the true parent divides)."""
    model.eval()
    batch = windows.batch(np.arange(len(windows)))
    with torch.no_grad():
        logits = model(batch.coords, batch.mask, batch.features, batch.z)
    A = normalise_associations(logits, batch.times, batch.mask, n_frames=batch.window)
    one_step = valid_pairs(batch.times, batch.mask) & (
        batch.times[:, None, :] == batch.times[:, :, None] + 1
    )
    links = batch.a_gt * one_step  # parent -> child (a_gt holds every ancestor)
    predicted = torch.where(one_step, A, -1.0).argmax(1)
    truth = links.argmax(1)
    has_parent = links.sum(1) > 0
    n_children = links.sum(2)
    parent_divides = torch.gather(n_children, 1, truth) >= 2
    correct = predicted == truth
    return correct[has_parent], parent_divides[has_parent]


def train_unsupervised(
    divide: bool = False, noise_target: bool = False, steps: int = 250, seed: int = 0
):
    """Only the Attrackt loss, a small transformer with z in its token input; returns the
    choices on held-out movies."""
    torch.manual_seed(seed)
    config = WindowConfig(window=6, augment=AugmentConfig(drop=0.0, feature_jitter=0.0))
    train = WindowSet.build(*appearance_movies(64, seed=1 + 2 * seed, divide=divide), config)
    test = WindowSet.build(*appearance_movies(16, seed=2 + 2 * seed, divide=divide), config)
    model = AssociationTransformer(
        TransformerConfig(
            embedding_dim=DIM,
            use_embedding=True,  # positions here are random: only appearance tells the links
            d_model=32,
            n_heads=2,
            encoder_layers=1,
            decoder_layers=1,
            dropout=0.0,
        )
    )
    heads = AttracktHeads(DIM, width=32)
    optimiser = torch.optim.Adam([*model.parameters(), *heads.parameters()], lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        batch = train.batch(rng.integers(len(train), size=8), augment=True, generator=generator)
        logits = model(batch.coords, batch.mask, batch.features, batch.z)
        A = normalise_associations(logits, batch.times, batch.mask, n_frames=batch.window)
        target = torch.randn(batch.z.shape, generator=generator) if noise_target else None
        loss = attrackt_loss(
            A, batch.z, batch.times, batch.mask, heads, target=target, n_frames=batch.window
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return parent_choices(model, test)


def test_attrackt_loss_alone_learns_the_true_links_from_appearance():
    correct, _ = train_unsupervised()
    assert len(correct) == 16 * 5 * 8
    assert correct.float().mean() >= 0.9
    # control: the same training reconstructing noise instead of z learns no links
    correct, _ = train_unsupervised(noise_target=True)
    assert correct.float().mean() < 0.4


def test_attrackt_loss_alone_links_both_daughters_to_their_mother():
    correct, daughters = train_unsupervised(divide=True)
    assert daughters.sum() == 16 * 2
    assert correct.float().mean() >= 0.9
    assert correct[daughters].float().mean() >= 0.9


def _reference_attrackt(A, z, times, mask, heads, n_frames):
    """A per-sample, per-cell loop version of the loss (no normalisation)."""
    per_dt = []
    for dt in range(1, n_frames):
        errors = []
        for b in range(A.shape[0]):
            for j in range(A.shape[1]):
                source = (times[b] == times[b, j] - dt) & mask[b]
                if not mask[b, j] or not source.any():
                    continue
                message = (A[b, source, j, None] * heads.m_e(z[b, source])).sum(0)
                errors.append(((heads.m_d(message) - z[b, j]) ** 2).mean())
        per_dt.append(torch.stack(errors).mean() if errors else torch.tensor(0.0))
    return torch.stack(per_dt).sum()


def test_attrackt_loss_matches_a_per_cell_loop_and_ignores_cells_without_candidates():
    torch.manual_seed(1)
    b, n, frames = 3, 14, 5
    times = torch.randint(0, frames, (b, n))
    times[1][times[1] == 2] = 3  # window 1 has no frame 2: cells of 3 lack dt=1 candidates
    mask = torch.rand(b, n) > 0.2
    z = torch.randn(b, n, 6)
    A = normalise_associations(torch.randn(b, n, n), times, mask)
    heads = AttracktHeads(6, width=16)
    for p in heads.parameters():  # leave the identity start: a generic head
        torch.nn.init.normal_(p, std=0.3)
    got = attrackt_loss(A, z, times, mask, heads, n_frames=frames, normalise=False)
    want = _reference_attrackt(A, z, times, mask, heads, frames)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the reconstruction target of cells in the first frame (no earlier cells) does not count
    target = z.clone()
    target[times == 0] += 100.0
    again = attrackt_loss(A, z, times, mask, heads, n_frames=frames, normalise=False, target=target)
    torch.testing.assert_close(again, got)
    # normalising divides by the variance of z: scaling z does not change the optimum's scale
    normalised = attrackt_loss(A, z, times, mask, heads, n_frames=frames)
    real = z[mask]
    variance = ((real - real.mean(0)) ** 2).mean()
    torch.testing.assert_close(normalised, got / variance)


def _chain(perms: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """A (1, N, N) association matrix of len(perms)+1 frames of k cells each, where frame s
    maps onto s+1 by perms[s] and every longer step by the composed permutations."""
    k = perms[0].shape[0]
    frames = len(perms) + 1
    A = torch.zeros(frames * k, frames * k)
    for s in range(frames):
        step = torch.eye(k)
        for d in range(s + 1, frames):
            step = step @ perms[d - 1]
            A[s * k : (s + 1) * k, d * k : (d + 1) * k] = step
    times = torch.arange(frames).repeat_interleave(k)
    return A[None], times[None]


def test_transitive_loss_is_zero_for_a_consistent_chain_and_positive_otherwise():
    torch.manual_seed(2)
    perms = [torch.eye(4)[torch.randperm(4)] for _ in range(4)]
    A, times = _chain(perms)
    mask = torch.ones_like(times, dtype=torch.bool)
    assert transitive_loss(A, times, mask) == 0
    broken = A.clone()
    broken[0, 0:4, 8:12] = torch.eye(4)[[1, 0, 3, 2]] @ broken[0, 0:4, 8:12]  # wrong 0 -> 2
    value = transitive_loss(broken, times, mask)
    # 8 wrong entries of the 3 x 16 (t, t+2) entries, each off by 1
    torch.testing.assert_close(value, torch.tensor(8 / 48))


def test_transitive_loss_matches_a_per_triple_loop_with_padding():
    torch.manual_seed(3)
    b, n = 2, 12
    times = torch.sort(torch.randint(0, 5, (b, n)), dim=1).values
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[1, -3:] = False
    A = normalise_associations(torch.randn(b, n, n), times, mask)
    total, count = 0.0, 0
    for k in range(b):
        for s in range(3):
            i = torch.nonzero((times[k] == s) & mask[k]).ravel()
            j = torch.nonzero((times[k] == s + 1) & mask[k]).ravel()
            m = torch.nonzero((times[k] == s + 2) & mask[k]).ravel()
            direct = A[k][i][:, m]
            total += ((direct - A[k][i][:, j] @ A[k][j][:, m]) ** 2).sum()
            count += direct.numel()
    torch.testing.assert_close(transitive_loss(A, times, mask), total / count)


def test_motion_loss_is_zero_on_resting_parents_and_its_gradient_moves_mass_nearer():
    # frame 0: cells at x = 0 and x = 10; frame 1: one cell at x = 1 (the near parent is 0)
    times = torch.tensor([[0, 0, 1]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    positions = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [1.0, 0.0]]])
    mean_d2 = (1.0 + 81.0) / 2  # the two candidate pairs
    logits = torch.zeros(1, 3, 3, requires_grad=True)
    A = normalise_associations(logits, times, mask, "softmax")
    value = motion_loss(A, positions, times, mask)
    torch.testing.assert_close(value, torch.tensor((0.5 * 1 + 0.5 * 81) / mean_d2))  # = 1
    value.backward()
    assert logits.grad[0, 0, 2] < 0 < logits.grad[0, 1, 2]  # descent raises the near parent
    resting = positions.clone()
    resting[0, 2] = resting[0, 0]  # the child where its parent was
    near = torch.zeros(1, 3, 3)
    near[0, 0, 2] = 1.0
    assert motion_loss(near, resting, times, mask) == 0
    # the amount of mass does not matter, only where it sits
    torch.testing.assert_close(
        motion_loss(0.3 * near, positions, times, mask), motion_loss(near, positions, times, mask)
    )


def test_link_error_counts_children_whose_strongest_parent_is_not_theirs():
    # frame 0: cells 0, 1; frame 1: cells 2, 3 (children of 1 and 0) and 4 (no parent);
    # frame 2: cell 5 (child of 2: an ancestor link 1 -> 5 must not count)
    times = torch.tensor([[0, 0, 1, 1, 1, 2]])
    mask = torch.ones(1, 6, dtype=torch.bool)
    gt = torch.zeros(1, 6, 6)
    gt[0, 1, 2] = gt[0, 0, 3] = gt[0, 2, 5] = gt[0, 1, 5] = 1.0
    right = torch.zeros(1, 6, 6)
    right[0, 1, 2] = right[0, 0, 3] = right[0, 2, 5] = 0.9
    right[0, 0, 5] = 0.95  # a two-frame score above the true parent's: ignored
    assert link_error(right, gt, times, mask) == 0
    swapped = right.clone()
    swapped[0, 0, 2], swapped[0, 1, 2] = 0.9, 0.1  # cell 2 prefers 0: one of three wrong
    torch.testing.assert_close(link_error(swapped, gt, times, mask), torch.tensor(1 / 3))
    mask[0, 5] = False  # a padded child does not count
    torch.testing.assert_close(link_error(swapped, gt, times, mask), torch.tensor(1 / 2))


def test_supervised_loss_weights_missed_links_more_than_false_links():
    times = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 1]])
    mask = torch.ones(1, 8, dtype=torch.bool)
    valid = valid_pairs(times, mask)
    A_gt = torch.zeros(1, 8, 8)
    A_gt[0, torch.arange(4), torch.arange(4) + 4] = 1.0
    missed = A_gt.clone()
    missed[0, 0, 4] = 0.5  # a true link scored 0.5
    false = A_gt.clone()
    false[0, 1, 4] = 0.5  # a non-link scored 0.5
    auto_missed = supervised_loss(missed, A_gt, valid)
    auto_false = supervised_loss(false, A_gt, valid)
    assert auto_missed > 2 * auto_false  # 12 non-links per 4 links: weight 3
    torch.testing.assert_close(auto_missed / auto_false, torch.tensor(3.0), rtol=1e-3, atol=0)
    plain_missed = supervised_loss(missed, A_gt, valid, pos_weight=None)
    plain_false = supervised_loss(false, A_gt, valid, pos_weight=None)
    torch.testing.assert_close(plain_missed, plain_false)
    # pairs outside `valid` do not count
    assert supervised_loss(A_gt, A_gt, valid) < 1e-4
    outside = A_gt.clone()
    outside[0, 4, 0] = 1.0  # later -> earlier: not a valid pair
    torch.testing.assert_close(
        supervised_loss(outside, A_gt, valid), supervised_loss(A_gt, A_gt, valid)
    )


def test_supervised_objective_fits_a_tiny_batch_with_a_division():
    windows = WindowSet.build(*appearance_movies(2, seed=4, divide=True), WindowConfig(window=6))
    batch = windows.batch([0, 1])
    torch.manual_seed(0)
    model = AssociationTransformer(
        TransformerConfig(
            embedding_dim=DIM,
            use_embedding=True,  # positions here are random: only appearance tells the links
            d_model=32,
            n_heads=2,
            encoder_layers=1,
            decoder_layers=1,
            dropout=0.0,
        )
    )
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        out = objective(model, None, batch, "supervised", transitive_weight=0.0)
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        logits = model(batch.coords, batch.mask, batch.features, batch.z)
    A = normalise_associations(logits, batch.times, batch.mask)
    valid = valid_pairs(batch.times, batch.mask)
    links = (batch.a_gt > 0) & valid
    non_links = A[valid & ~links]
    assert (A[links] > 0.9).all()  # every ancestor link, both daughters' included
    assert non_links.mean() < 0.05 and (non_links < 0.5).float().mean() > 0.98
    one_step = batch.times[:, None, :] == batch.times[:, :, None] + 1
    # each window has one mother with two daughters
    assert ((batch.a_gt * one_step).sum(2) == 2).sum() == 2


def test_objective_kinds_and_their_requirements():
    windows = WindowSet.build(*appearance_movies(1, seed=5), WindowConfig(window=6))
    batch = windows.batch([0])
    model = AssociationTransformer(
        TransformerConfig(
            embedding_dim=DIM, d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1
        )
    )
    heads = AttracktHeads(DIM)
    out = objective(model, heads, batch, "unsupervised", transitive_weight=0.1)
    assert set(out) == {"attrackt", "transitive", "loss"}
    torch.testing.assert_close(out["loss"], out["attrackt"] + 0.1 * out["transitive"])
    out = objective(model, heads, batch, "unsupervised", transitive_weight=0.0, motion_weight=2.0)
    assert set(out) == {"attrackt", "motion", "loss"}
    torch.testing.assert_close(out["loss"], out["attrackt"] + 2.0 * out["motion"])
    out = objective(model, heads, batch, "mixed", transitive_weight=0.0)
    assert set(out) == {"attrackt", "supervised", "link_error", "loss"}
    torch.testing.assert_close(out["loss"], out["attrackt"] + out["supervised"])
    with pytest.raises(ValueError, match="needs heads"):
        objective(model, None, batch, "unsupervised")
    batch.a_gt = None
    with pytest.raises(ValueError, match="ground-truth"):
        objective(model, heads, batch, "supervised")
    with pytest.raises(ValueError, match="unknown objective"):
        objective(model, heads, batch, "selfish")
