"""Windows of consecutive frames, prepared once and kept on the device, gathered in batches.

A :class:`WindowSet` holds every detection once, as flat tensors (spatial position, time,
movie-normalised scalar features, appearance embedding ``z``, id, ancestor rows), plus a padded
``(n_windows, max_len)`` index into them. :meth:`WindowSet.batch` gathers a batch of windows and
augments it with pure tensor operations, so a training step costs no Python loop over samples.

Windows cover ``window`` consecutive frame indices of one sequence (a frame without detections
is simply absent; a movie shorter than the window gives one shorter window). A window with more
than ``max_tokens`` detections is split spatially into overlapping tiles (recursive bisection at
the median of its longest spatial axis; the halves overlap by ``tile_margin`` pixels so that a
cell moving across a cut stays linked in one of them). Each tile keeps every frame of the window
over its region: no detection and no frame is dropped, only the spatial extent shrinks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch

from attrackt.data import Detections
from attrackt.errors import InputError
from attrackt.voxels import relative_voxel_size

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AugmentConfig:
    """On-device augmentations applied by :meth:`WindowSet.batch` when ``augment=True``.

    ``rotate``: a uniform random in-plane (y, x) angle per window (so 90° turns included);
    ``flip``: mirror each spatial axis with probability 1/2; ``scale``: isotropic factor drawn
    log-uniformly from this range; ``feature_jitter``: standard deviation (in movie-normalised
    units) of a per-window offset of every scalar feature, plus half of it as per-detection noise;
    ``drop``: probability of masking out each detection (the first of a window is always kept).
    """

    rotate: bool = True
    flip: bool = True
    scale: tuple[float, float] = (0.9, 1.1)
    feature_jitter: float = 0.1
    drop: float = 0.05

    def __post_init__(self) -> None:
        low, high = self.scale
        if not 0 < low <= high < float("inf"):
            raise InputError(
                None, f"augment scale must be a range 0 < low <= high, got {self.scale}"
            )
        if not 0 <= self.feature_jitter < float("inf"):
            raise InputError(None, f"feature_jitter must be >= 0, got {self.feature_jitter}")
        if not 0 <= self.drop < 1:
            raise InputError(None, f"drop must lie in [0, 1), got {self.drop}")


@dataclass(frozen=True)
class WindowConfig:
    """How detections become windows.

    ``embedding``: the name of the vector block holding the appearance embedding ``z`` (``None``
    for none). ``feature_columns``: scalar columns used as token features (``None``: every
    feature column of the table). ``stride``: frames between the starts of consecutive windows.
    ``voxel_size``: the movie's voxel size (:mod:`attrackt.voxels`); the model sees positions
    multiplied by it relative to the finest axis (``tile_margin`` is in those units), so a
    z-step of 2 pixels in y-x is 2 apart in z, not 1.
    """

    window: int = 6
    max_tokens: int = 2048
    stride: int = 1
    tile_margin: float = 32.0
    embedding: str | None = "embedding"
    feature_columns: tuple[str, ...] | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    voxel_size: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.window < 2:
            raise InputError(None, f"window must be at least 2 frames, got {self.window}")
        if self.max_tokens < 2:
            raise InputError(None, f"max_tokens must be at least 2, got {self.max_tokens}")
        if self.stride < 1:
            raise InputError(None, f"stride must be at least 1, got {self.stride}")
        if self.voxel_size is not None:
            object.__setattr__(self, "voxel_size", tuple(float(v) for v in self.voxel_size))

    def positions(self, detections: Detections) -> np.ndarray:
        """``(N, ndim)`` positions as the model sees them (see ``voxel_size``)."""
        return detections.positions(relative_voxel_size(self.voxel_size, detections.ndim))


@dataclass
class WindowBatch:
    """A batch of ``B`` windows padded to ``N`` tokens (all tensors on one device).

    ``coords`` (B, N, 1+ndim): time since the window's first frame, then the spatial position in
    pixels relative to the window's centre; ``times`` (B, N) int64 frame index within the window
    (0 .. window-1); ``mask`` (B, N) bool, True for a real detection and False for padding (or a
    detection dropped by augmentation); ``features`` (B, N, F); ``z`` (B, N, D) the appearance
    embedding; ``ids`` (B, N) detection ids (-1 for padding); ``rows`` (B, N) flat rows into the
    :class:`WindowSet` (-1 for padding); ``windows`` (B,) the window indices; ``a_gt`` (B, N, N)
    float, 1 where token i is a ground-truth ancestor of token j (its parent, grandparent, ...:
    what the association of i and j at ``dt = t_j - t_i`` means; links that skip frames
    included), or ``None`` without ground truth. Padding entries of every tensor are zero.
    """

    coords: torch.Tensor
    times: torch.Tensor
    mask: torch.Tensor
    features: torch.Tensor
    z: torch.Tensor
    ids: torch.Tensor
    rows: torch.Tensor
    windows: torch.Tensor
    window: int
    a_gt: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.coords.shape[0]


def _standardise(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group: subtract the column means, divide by the column standard deviations."""
    out = np.empty_like(values, dtype=np.float32)
    for g in np.unique(groups):
        rows = groups == g
        block = values[rows].astype(np.float64)
        std = block.std(axis=0)
        std[std < 1e-12] = 1.0
        out[rows] = (block - block.mean(axis=0)) / std
    return out


def _normalise_embedding(z: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Per group: centre each dimension, divide by one overall scale (keeps relative scales)."""
    out = np.empty_like(z, dtype=np.float32)
    for g in np.unique(groups):
        rows = groups == g
        block = z[rows].astype(np.float64)
        block = block - block.mean(axis=0)
        scale = np.sqrt((block**2).mean()) if block.size else 1.0
        out[rows] = block / (scale if scale > 1e-12 else 1.0)
    return out


def _tiles(pos: np.ndarray, max_tokens: int, margin: float) -> list[np.ndarray]:
    """Split points (n, ndim) into overlapping spatial tiles of at most ``max_tokens`` points."""
    done: list[np.ndarray] = []
    todo = [np.arange(len(pos))]
    while todo:
        idx = todo.pop()
        if len(idx) <= max_tokens:
            done.append(np.sort(idx))
            continue
        p = pos[idx]
        axis = int(np.argmax(np.ptp(p, axis=0)))
        coord = p[:, axis]
        order = np.argsort(coord, kind="stable")
        half = len(idx) // 2
        cut = coord[order[half]]
        left = np.zeros(len(idx), bool)
        right = np.zeros(len(idx), bool)
        left[order[:half]] = True
        right[order[half:]] = True
        with_margin_left = left | (coord < cut + margin)
        with_margin_right = right | (coord >= cut - margin)
        # the overlap must still shrink the problem; otherwise cut without it
        if max(with_margin_left.sum(), with_margin_right.sum()) <= 0.75 * len(idx):
            left, right = with_margin_left, with_margin_right
        todo += [idx[left], idx[right]]
    return done


def _feature_block(detections: Detections, columns: tuple[str, ...] | None) -> np.ndarray:
    """The scalar feature columns as (N, F) float64, checked to be numeric and finite."""
    table = detections.table
    names = list(detections.feature_columns) if columns is None else list(columns)
    missing = [c for c in names if c not in table.columns]
    if missing:
        raise InputError(None, f"feature column(s) {missing} not in the detections table")
    non_numeric = [c for c in names if not np.issubdtype(table[c].dtype, np.number)]
    if non_numeric:
        raise InputError(None, f"feature column(s) {non_numeric} are not numeric")
    feats = table[names].to_numpy(np.float64) if names else np.zeros((len(table), 0))
    bad = ~np.isfinite(feats)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise InputError(
            None,
            f"feature {names[col]!r} of detection {int(detections.ids[row])} "
            f"(t={int(detections.times[row])}) is NaN/inf",
        )
    return feats


def _embedding_block(detections: Detections, name: str) -> np.ndarray:
    """The vector block ``name`` (N, D), checked to exist and be finite."""
    if name not in detections.vectors:
        raise InputError(
            None,
            f"detections carry no vector block {name!r} (they have {sorted(detections.vectors)});"
            " compute embeddings first or set embedding=None",
        )
    z = detections.vectors[name]
    bad = ~np.isfinite(z).all(axis=1)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            None,
            f"embedding {name!r} of detection {int(detections.ids[row])} "
            f"(t={int(detections.times[row])}) is NaN/inf",
        )
    return z


def _ancestor_rows(detections: Detections, edges: np.ndarray, depth: int) -> np.ndarray:
    """(N, depth) rows of each detection's parent, grandparent, ... (-1 where there is none)."""
    n, times = len(detections), detections.times
    edges = np.asarray(edges, np.int64).reshape(-1, 2)
    known = detections.has_ids(edges.ravel()).reshape(-1, 2)
    if not known.all():
        bad = edges[~known.all(axis=1)][0]
        raise InputError(None, f"edge {bad.tolist()} refers to an unknown detection")
    rows = detections.rows_of(edges.ravel()).reshape(-1, 2)
    backwards = times[rows[:, 1]] <= times[rows[:, 0]]
    if backwards.any():
        raise InputError(None, f"edge {edges[backwards][0].tolist()} does not go forward in time")
    n_parents = np.bincount(rows[:, 1], minlength=n)
    if (n_parents > 1).any():
        child = detections.ids[np.argmax(n_parents)]
        raise InputError(None, f"detection {child} has more than one parent")
    ancestors = np.full((n, depth), -1, np.int64)
    ancestors[rows[:, 1], 0] = rows[:, 0]
    for k in range(1, depth):
        up = ancestors[:, k - 1]
        ancestors[up >= 0, k] = ancestors[up[up >= 0], 0]
    return ancestors


def _window_rows(
    detections: Detections, config: WindowConfig
) -> tuple[list[np.ndarray], list[int], list[str]]:
    """The rows of every window (tiles included), its first frame and its sequence."""
    groups = detections.table["sequence"].to_numpy()
    times, pos = detections.times, config.positions(detections)
    w = config.window
    windows, starts, seqs = [], [], []
    bounds = np.r_[0, np.flatnonzero(groups[1:] != groups[:-1]) + 1, len(groups)]
    for lo_row, hi_row in zip(bounds[:-1], bounds[1:], strict=True):  # rows sorted by sequence
        rows_seq = np.arange(lo_row, hi_row)
        t_seq = times[rows_seq]
        t0, t1 = int(t_seq[0]), int(t_seq[-1])
        last = max(t0, t1 - w + 1)
        begin = list(range(t0, last + 1, config.stride))
        if begin[-1] != last:
            begin.append(last)
        lo = np.searchsorted(t_seq, begin, side="left")
        hi = np.searchsorted(t_seq, np.asarray(begin) + w, side="left")
        for start, a, e in zip(begin, lo, hi, strict=True):
            if e == a:
                continue  # frames without any detection: nothing to learn from
            rows = rows_seq[a:e]
            for tile in _tiles(pos[rows], config.max_tokens, config.tile_margin):
                windows.append(rows[tile])
                starts.append(start)
                seqs.append(str(groups[lo_row]))
    return windows, starts, seqs


class WindowSet:
    """Every detection once as flat device tensors, plus a padded index of windows into them.

    Build it with :meth:`build`; gather batches with :meth:`batch`.
    """

    def __init__(
        self,
        *,
        positions: torch.Tensor,
        times: torch.Tensor,
        features: torch.Tensor,
        z: torch.Tensor,
        ids: torch.Tensor,
        ancestors: torch.Tensor | None,
        index: torch.Tensor,
        start: torch.Tensor,
        center: torch.Tensor,
        sequences: np.ndarray,
        config: WindowConfig,
    ) -> None:
        self.positions = positions
        self.times = times
        self.features = features
        self.z = z
        self.ids = ids
        self.ancestors = ancestors
        self.index = index
        self.start = start
        self.center = center
        self.sequences = sequences
        self.config = config
        self.counts = (index >= 0).sum(1).cpu().numpy()

    # ---- construction ----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        detections: Detections,
        edges: np.ndarray | None = None,
        config: WindowConfig | None = None,
        device: str | torch.device = "cpu",
    ) -> WindowSet:
        """Prepare the windows of every sequence of ``detections``.

        ``edges``: optional ground-truth ``(E, 2)`` parent -> child ids (e.g. ``Tracks.edges``);
        with them every batch carries its association matrix ``a_gt`` (ancestor -> descendant).
        """
        config = config or WindowConfig()
        if len(detections) == 0:
            raise InputError(None, "no detections to build windows from")
        groups = detections.table["sequence"].to_numpy()
        pos = config.positions(detections)
        feats = _standardise(_feature_block(detections, config.feature_columns), groups)
        if config.embedding is None:
            z = np.zeros((len(detections), 0), np.float32)
        else:
            z = _normalise_embedding(_embedding_block(detections, config.embedding), groups)
        ancestors = None
        if edges is not None:
            ancestors = _ancestor_rows(detections, edges, depth=config.window - 1)
        windows, starts, seqs = _window_rows(detections, config)
        width = max(len(r) for r in windows)
        index = np.full((len(windows), width), -1, np.int64)
        for k, rows in enumerate(windows):
            index[k, : len(rows)] = rows
        centers = np.stack([pos[rows].mean(axis=0) for rows in windows])
        logger.info(
            "%d windows of up to %d frames (%d of them spatial tiles), at most %d tokens",
            len(windows),
            config.window,
            len(windows) - len(set(zip(seqs, starts, strict=True))),
            width,
        )

        def tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.tensor(np.asarray(a), dtype=dtype, device=device)

        return cls(
            positions=tensor(pos, torch.float32),
            times=tensor(detections.times, torch.int64),
            features=tensor(feats, torch.float32),
            z=tensor(z, torch.float32),
            ids=tensor(detections.ids, torch.int64),
            ancestors=None if ancestors is None else tensor(ancestors, torch.int64),
            index=tensor(index, torch.int64),
            start=tensor(np.asarray(starts), torch.int64),
            center=tensor(np.asarray(centers), torch.float32),
            sequences=np.asarray(seqs),
            config=config,
        )

    # ---- views -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.index.shape[0]

    @property
    def device(self) -> torch.device:
        return self.index.device

    @property
    def ndim(self) -> int:
        return self.positions.shape[1]

    @property
    def feature_dim(self) -> int:
        return self.features.shape[1]

    @property
    def embedding_dim(self) -> int:
        return self.z.shape[1]

    def to(self, device: str | torch.device) -> WindowSet:
        """The same windows with every tensor on ``device``."""
        return WindowSet(
            positions=self.positions.to(device),
            times=self.times.to(device),
            features=self.features.to(device),
            z=self.z.to(device),
            ids=self.ids.to(device),
            ancestors=None if self.ancestors is None else self.ancestors.to(device),
            index=self.index.to(device),
            start=self.start.to(device),
            center=self.center.to(device),
            sequences=self.sequences,
            config=self.config,
        )

    # ---- batches ---------------------------------------------------------------------------
    def batch(
        self,
        window_indices: np.ndarray | torch.Tensor | list[int],
        augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> WindowBatch:
        """Gather windows into a padded batch (tensor ops only; ``generator`` on this device)."""
        chosen = torch.as_tensor(window_indices, dtype=torch.int64).reshape(-1).cpu()
        if len(chosen) == 0:
            raise InputError(None, "a batch needs at least one window")
        if chosen.min() < 0 or chosen.max() >= len(self):
            raise InputError(None, f"window index out of range 0..{len(self) - 1}")
        n_tokens = int(self.counts[chosen.numpy()].max())
        w = chosen
        if self.device.type == "cuda":  # no wait for the device (see attrackt.train.to_device)
            w = chosen.pin_memory().to(self.device, non_blocking=True)
        rows = self.index[w, :n_tokens]
        mask = rows >= 0
        safe = rows.clamp(min=0)
        times = torch.where(mask, self.times[safe] - self.start[w, None], 0)
        spatial = (self.positions[safe] - self.center[w, None]) * mask[..., None]
        features = self.features[safe] * mask[..., None]
        z = self.z[safe] * mask[..., None]
        if augment:
            spatial, features, mask = self._augment(spatial, features, mask, generator)
        coords = torch.cat([times[..., None].to(spatial.dtype), spatial], dim=-1)
        a_gt = None
        if self.ancestors is not None:
            ancestors = self.ancestors[safe]  # (B, N, window-1)
            a_gt = torch.zeros(rows.shape + rows.shape[-1:], dtype=torch.bool, device=self.device)
            for k in range(ancestors.shape[-1]):  # over generations, not samples
                a_gt |= rows[:, :, None] == ancestors[:, None, :, k]
            a_gt = (a_gt & mask[:, :, None] & mask[:, None, :]).to(torch.float32)
        return WindowBatch(
            coords=coords * mask[..., None],
            times=times * mask,
            mask=mask,
            features=features * mask[..., None],
            z=z * mask[..., None],
            ids=torch.where(mask, self.ids[safe], -1),
            rows=torch.where(mask, rows, -1),
            windows=w,
            window=self.config.window,
            a_gt=a_gt,
        )

    def _augment(
        self,
        spatial: torch.Tensor,
        features: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        aug = self.config.augment
        b, n, ndim = spatial.shape
        dev, g = spatial.device, generator
        if aug.rotate:  # in-plane: the last two axes (y, x)
            theta = torch.rand(b, device=dev, generator=g) * (2 * torch.pi)
            cos, sin = theta.cos()[:, None], theta.sin()[:, None]
            y, x = spatial[..., -2], spatial[..., -1]
            plane = torch.stack([cos * y - sin * x, sin * y + cos * x], dim=-1)
            spatial = torch.cat([spatial[..., :-2], plane], dim=-1)
        if aug.flip:
            flips = torch.rand(b, 1, ndim, device=dev, generator=g) < 0.5
            spatial = torch.where(flips, -spatial, spatial)
        lo, hi = np.log(aug.scale[0]), np.log(aug.scale[1])
        if hi > lo:
            factor = torch.exp(lo + (hi - lo) * torch.rand(b, 1, 1, device=dev, generator=g))
            spatial = spatial * factor
        if aug.feature_jitter > 0 and features.shape[-1]:
            f = features.shape[-1]
            offset = torch.randn(b, 1, f, device=dev, generator=g) * aug.feature_jitter
            noise = torch.randn(b, n, f, device=dev, generator=g) * (aug.feature_jitter / 2)
            features = features + offset + noise
        if aug.drop > 0:
            keep = torch.rand(b, n, device=dev, generator=g) >= aug.drop
            keep[:, 0] = True  # a window is packed from the left: token 0 is always real
            mask = mask & keep
        return spatial, features, mask
