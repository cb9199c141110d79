"""Deterministic synthetic time-lapse movies of textured nuclei, with exact ground truth.

Each nucleus is an ellipsoid that carries its own texture (a sum of a few plane waves in the
cell's own frame of reference). Cells move by a smooth random walk plus a common drift, change
size, shape, orientation, brightness and texture phase slowly and predictably, divide (two
daughters beside the mother, appearance inherited with a small perturbation), and enter or leave
the field through its y-x border. The ground truth is a label mask per frame (labelled by CTC
track label) and the CTC lineage table ``label, start, end, parent``.

Because appearance changes smoothly and differs from cell to cell, a cell's look identifies its
true predecessor, which is what an appearance-based (Attrackt) loss learns from. This data is the
built-in data of the demo and of the unit tests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from attrackt.data import Tracks
from attrackt.errors import InputError

log = logging.getLogger(__name__)

_WAVES = 3  # plane waves per texture
_INTENSITY_SCALE = 1000.0  # image units per unit intensity in the uint16 output
_SMOOTH = 0.8  # velocity persistence of the random walk (0 = Brownian, 1 = straight lines)
_SPACING = 0.9  # centres are pushed apart to at least this fraction of the bounding radii sum
_MIN_AGE = 4  # frames a cell lives before it may divide
_MAX_COVER = 0.5  # divisions stop as the cells cover this fraction of the field


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic movie. ``shape`` is ``(Y, X)`` (2D) or ``(Z, Y, X)`` (3D)."""

    shape: tuple[int, ...] = (256, 256)
    frames: int = 30
    density: float = 3.0
    """Cells per 100 x 100 px of the y-x plane in the first frame."""
    division_rate: float = 0.03
    """Probability per cell and frame of dividing (lowered as the field fills up)."""
    entry_rate: float = 0.02
    """Expected cells entering the field per frame and per 100 px of y-x border."""
    step: float = 1.5
    """Standard deviation (px) of a cell's own velocity per frame."""
    drift: float = 0.5
    """Speed (px per frame) of a drift common to all cells, direction drawn from the seed."""
    radius: float = 7.0
    """Mean nucleus radius (px)."""
    noise: float = 0.05
    """Standard deviation of additive Gaussian noise (unit intensity: cells are ~0.4-1)."""
    photons: float = 200.0
    """Photons per unit intensity for Poisson noise (0 turns Poisson noise off)."""
    background: float = 0.1
    """Background intensity."""
    appearance_spread: float = 1.0
    """How much cells differ in look (size, shape, brightness, texture): 1 the full variety,
    0 look-alike cells that differ only by pose, texture phase drift and noise."""
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if len(self.shape) not in (2, 3):
            raise InputError(None, f"shape must be (Y, X) or (Z, Y, X), got {self.shape}")
        if min(self.shape[-2:]) < 4 * self.radius:
            raise InputError(None, f"the field {self.shape} is too small for radius {self.radius}")
        if self.frames < 1 or self.radius <= 1:
            raise InputError(None, "frames must be >= 1 and radius > 1")
        if self.density < 0 or self.division_rate < 0 or self.entry_rate < 0:
            raise InputError(None, "density, division_rate and entry_rate must be >= 0")
        if not 0 <= self.appearance_spread <= 1:
            raise InputError(None, "appearance_spread must lie in [0, 1]")

    @property
    def ndim(self) -> int:
        return len(self.shape)


#: named settings of hard movies (the benchmarks' synthetic datasets); each a dict of
#: :class:`SyntheticConfig` fields
PRESETS: dict[str, dict[str, object]] = {
    # cells that look alike: appearance tells little, a model must not make linking worse
    "look-alike": dict(
        shape=(320, 320), frames=60, density=5.0, step=2.0, drift=0.5, appearance_spread=0.0
    ),
    # many cells moving far per frame: position alone errs, motion and appearance help
    "crowded": dict(shape=(320, 320), frames=60, density=9.0, step=4.0, drift=1.0),
}


def preset(name: str, **overrides: object) -> SyntheticConfig:
    """The :data:`PRESETS` entry ``name`` with ``overrides`` (e.g. ``seed``)."""
    if name not in PRESETS:
        raise InputError(None, f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SyntheticConfig(**{**PRESETS[name], **overrides})


@dataclass
class SyntheticMovie:
    """A synthetic movie and its ground truth.

    ``images``: ``(T, [Z,] Y, X)`` uint16; ``masks``: same shape, uint16, 0 = background, else
    the CTC track label; ``track_table``: the CTC lineage ``label, start, end, parent``.
    """

    images: np.ndarray
    masks: np.ndarray
    track_table: pd.DataFrame
    config: SyntheticConfig = field(default_factory=SyntheticConfig)

    def tracks(self, sequence: str = "") -> Tracks:
        """The ground-truth lineage graph: one detection per (frame, label) at the mask centroid.

        Detection ids are ``0, 1, ...`` in (t, label) order; ``label`` is the track label;
        ``area`` and ``intensity_mean`` are feature columns.
        """
        from attrackt.io.ctc import tracks_from_ctc

        return tracks_from_ctc(self.masks, self.track_table, sequence, self.images)

    def write(self, root: str | Path, name: str = "01") -> Path:
        """Write the movie in CTC layout: ``root/name/tNNN.tif`` and ``root/name_GT/TRA/``."""
        from attrackt.io.ctc import write_ctc_sequence

        return write_ctc_sequence(Path(root), name, self.images, self.masks, self.track_table)


# --------------------------------------------------------------------------------------------
# The cell population: one row per living cell, struct-of-arrays
# --------------------------------------------------------------------------------------------


@dataclass
class _Cells:
    label: np.ndarray  # (n,) CTC track label
    age: np.ndarray  # (n,) frames since birth
    pos: np.ndarray  # (n, d) centre, pixels
    vel: np.ndarray  # (n, d) own velocity
    radius: np.ndarray  # (n,) current mean radius
    target: np.ndarray  # (n,) radius the cell grows towards
    aspect: np.ndarray  # (n, d) log semi-axis factors (sum 0)
    aspect_target: np.ndarray  # (n, d)
    rot: np.ndarray  # (n, d, d) columns: the cell's axes in image coordinates
    spin: np.ndarray  # (n, 1|3) angular velocity (rad per frame)
    waves: np.ndarray  # (n, K, d) texture wave vectors (cycles per target radius)
    phase: np.ndarray  # (n, K)
    phase_rate: np.ndarray  # (n, K) rad per frame
    weight: np.ndarray  # (n, K) texture amplitudes
    brightness: np.ndarray  # (n,)
    brightness_target: np.ndarray  # (n,)

    def __len__(self) -> int:
        return len(self.label)

    def take(self, rows: np.ndarray) -> _Cells:
        return _Cells(**{f.name: getattr(self, f.name)[rows] for f in fields(self)})

    @staticmethod
    def concat(parts: list[_Cells]) -> _Cells:
        return _Cells(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(_Cells)}
        )

    def semi_axes(self) -> np.ndarray:
        return self.radius[:, None] * np.exp(self.aspect)

    def bounding_radius(self) -> np.ndarray:
        return self.semi_axes().max(axis=1)


def _rotation(spin: np.ndarray) -> np.ndarray:
    """Rotations ``(n, d, d)`` from angles ``(n, 1)`` (2D) or rotation vectors ``(n, 3)``."""
    if spin.shape[1] == 3:
        return Rotation.from_rotvec(spin).as_matrix()
    c, s = np.cos(spin[:, 0]), np.sin(spin[:, 0])
    return np.stack([np.stack([c, -s], 1), np.stack([s, c], 1)], 1)


def _template_look(rng: np.random.Generator, d: int) -> dict[str, np.ndarray]:
    """One cell's look (size factor, aspect, texture waves and weights, brightness): the look
    that look-alike cells share."""
    aspect = rng.normal(0, 0.12, d)
    direction = rng.normal(size=(_WAVES, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    weight = rng.uniform(0.2, 1.0, _WAVES)
    return {
        "size": np.exp(rng.normal(0, 0.12)),
        "aspect": aspect - aspect.mean(),
        "waves": direction * rng.uniform(0.5, 1.6, (_WAVES, 1)),
        "weight": weight / weight.sum(),
        "brightness": rng.uniform(0.4, 1.0),
    }


class _World:
    """The simulation: draws cells, moves them, divides them, lets them in and out."""

    def __init__(self, config: SyntheticConfig) -> None:
        self.cfg = config
        self.rng = np.random.default_rng(config.seed)
        self.d = config.ndim
        self.size = np.asarray(config.shape, np.float64)
        angle = self.rng.uniform(0, 2 * np.pi)
        self.drift = np.zeros(self.d)
        self.drift[-2:] = config.drift * np.array([np.sin(angle), np.cos(angle)])
        self.next_label = 1
        self.template = _template_look(np.random.default_rng([config.seed, 2]), self.d)
        self.start: dict[int, int] = {}
        self.end: dict[int, int] = {}
        self.parent: dict[int, int] = {}

    # ---- births ----------------------------------------------------------------------------
    def _labels(self, n: int, t: int, parent: np.ndarray | None = None) -> np.ndarray:
        labels = np.arange(self.next_label, self.next_label + n)
        self.next_label += n
        for i, lab in enumerate(labels.tolist()):
            self.start[lab] = t
            self.parent[lab] = 0 if parent is None else int(parent[i])
        return labels

    def new_cells(self, pos: np.ndarray, t: int) -> _Cells:
        """Fresh, unrelated cells at the given centres; their look lies between the movie's
        template and an independent draw, by ``appearance_spread``."""
        rng, d, n = self.rng, self.d, len(pos)
        cfg = self.cfg
        size = np.exp(rng.normal(0, 0.12, n))
        aspect = rng.normal(0, 0.12, (n, d))
        aspect -= aspect.mean(1, keepdims=True)
        spin_dim = 1 if d == 2 else 3
        if d == 2:
            rot = _rotation(rng.uniform(0, 2 * np.pi, (n, 1)))
        else:
            rot = Rotation.random(n, random_state=rng).as_matrix().reshape(n, 3, 3)
        direction = rng.normal(size=(n, _WAVES, d))
        direction /= np.linalg.norm(direction, axis=2, keepdims=True)
        waves = direction * rng.uniform(0.5, 1.6, (n, _WAVES, 1))
        weight = rng.uniform(0.2, 1.0, (n, _WAVES))
        weight /= weight.sum(1, keepdims=True)
        brightness = rng.uniform(0.4, 1.0, n)
        if cfg.appearance_spread < 1:
            k = cfg.appearance_spread
            size, aspect, waves, weight, brightness = (
                self.template[name] + k * (own - self.template[name])
                for name, own in (
                    ("size", size), ("aspect", aspect), ("waves", waves),
                    ("weight", weight), ("brightness", brightness),
                )
            )  # fmt: skip
        target = cfg.radius * size
        return _Cells(
            label=self._labels(n, t),
            age=np.zeros(n, np.int64),
            pos=pos.astype(np.float64),
            vel=rng.normal(0, cfg.step, (n, d)),
            radius=target.copy(),
            target=target,
            aspect=aspect,
            aspect_target=aspect.copy(),
            rot=rot,
            spin=rng.normal(0, 0.03, (n, spin_dim)),
            waves=waves,
            phase=rng.uniform(0, 2 * np.pi, (n, _WAVES)),
            phase_rate=rng.uniform(-0.15, 0.15, (n, _WAVES)),
            weight=weight,
            brightness=brightness,
            brightness_target=brightness.copy(),
        )

    def initial(self) -> _Cells:
        """The first frame: cells spread over the field, not overlapping."""
        cfg = self.cfg
        area = float(np.prod(self.size[-2:]))
        n = self.rng.poisson(cfg.density * area / 1e4)
        pos = self.rng.uniform(0, 1, (n, self.d)) * (self.size - 1)
        cells = self.new_cells(pos, 0)
        return self.relax(cells, iterations=50)

    def enter(self, t: int) -> _Cells | None:
        """Cells coming in through the y-x border, heading inwards."""
        cfg = self.cfg
        ny, nx = self.size[-2:]
        perimeter = 2 * (ny + nx)
        n = self.rng.poisson(cfg.entry_rate * perimeter / 100)
        if n == 0:
            return None
        # a side (top, bottom, left, right) with odds by its length, a point along it, a depth
        side = self.rng.choice(4, size=n, p=np.array([nx, nx, ny, ny]) / perimeter)
        length = np.where(side < 2, nx, ny) - 1
        along = self.rng.uniform(0, 1, n) * length
        depth = self.rng.uniform(0, 0.5 * cfg.radius, n)
        far = np.where(side < 2, ny, nx) - 1 - depth
        across = np.where(side % 2 == 0, depth, far)
        pos = np.zeros((n, self.d))
        pos[:, -2] = np.where(side < 2, across, along)
        pos[:, -1] = np.where(side < 2, along, across)
        if self.d == 3:
            pos[:, 0] = self.rng.uniform(0, self.size[0] - 1, n)
        cells = self.new_cells(pos, t)
        inward = (self.size - 1) / 2 - cells.pos
        inward[:, :-2] = 0
        inward /= np.linalg.norm(inward, axis=1, keepdims=True)
        cells.vel = inward * cfg.step + self.rng.normal(0, 0.3 * cfg.step, (n, self.d))
        return cells

    def divide(self, cells: _Cells, t: int) -> _Cells:
        """Replace each dividing mother by two daughters beside it (the mother's track ends)."""
        cfg, rng, d = self.cfg, self.rng, self.d
        area = float(np.prod(self.size[-2:]))
        cover = float(np.sum(np.pi * cells.radius**2)) / area
        rate = cfg.division_rate * max(0.0, 1.0 - cover / _MAX_COVER)
        axis = rng.normal(size=(len(cells), d))
        axis /= np.linalg.norm(axis, axis=1, keepdims=True)
        offset = axis * (0.7 * cells.bounding_radius())[:, None]
        inside = self.inside(cells.pos + offset) & self.inside(cells.pos - offset)
        divides = (rng.uniform(size=len(cells)) < rate) & (cells.age >= _MIN_AGE) & inside
        if not divides.any():
            return cells
        mothers = cells.take(np.flatnonzero(divides))
        for lab in mothers.label.tolist():
            self.end[lab] = t - 1
        m = len(mothers)
        both = mothers.take(np.repeat(np.arange(m), 2))
        sign = np.tile([1.0, -1.0], m)[:, None]
        off = np.repeat(offset[divides], 2, axis=0) * sign
        both.label = self._labels(2 * m, t, parent=both.label)
        both.age = np.zeros(2 * m, np.int64)
        both.pos = both.pos + off
        both.vel = both.vel + off / np.linalg.norm(off, axis=1, keepdims=True) * 0.5 * cfg.step
        both.radius = both.radius * 2 ** (-1 / d)
        # inherited appearance, slightly perturbed: daughters resemble their mother (and each
        # other) more than any other cell
        k = both.waves.shape[1]
        # each daughter keeps the texture of the half of the mother it came from
        local = np.einsum("nd,nde->ne", off, both.rot) / both.target[:, None]
        shift = 2 * np.pi * np.einsum("nkd,nd->nk", both.waves, local)
        both.waves = both.waves * np.exp(rng.normal(0, 0.05, (2 * m, k, 1)))
        both.phase = both.phase + shift + rng.normal(0, 0.3, (2 * m, k))
        both.brightness = both.brightness * np.exp(rng.normal(0, 0.05, 2 * m))
        both.brightness_target = both.brightness.copy()
        return _Cells.concat([cells.take(np.flatnonzero(~divides)), both])

    # ---- motion and appearance -------------------------------------------------------------
    def move(self, cells: _Cells) -> None:
        """Smooth random walk + drift; slow, smooth change of size, shape, pose and texture."""
        cfg, rng, n, d = self.cfg, self.rng, len(cells), self.d
        kick = rng.normal(0, cfg.step, (n, d))
        cells.vel = _SMOOTH * cells.vel + np.sqrt(1 - _SMOOTH**2) * kick
        cells.pos = cells.pos + cells.vel + self.drift
        cells.radius = (
            cells.radius
            + 0.1 * (cells.target - cells.radius)
            + rng.normal(0, 0.01, n) * cells.radius
        )
        aspect = cells.aspect + 0.1 * (cells.aspect_target - cells.aspect)
        aspect += rng.normal(0, 0.01, (n, d))
        cells.aspect = aspect - aspect.mean(1, keepdims=True)
        cells.spin = cells.spin + rng.normal(0, 0.005, cells.spin.shape)
        cells.rot = np.einsum("nij,njk->nik", cells.rot, _rotation(cells.spin))
        cells.phase = cells.phase + cells.phase_rate
        cells.brightness = (
            cells.brightness
            + 0.1 * (cells.brightness_target - cells.brightness)
            + rng.normal(0, 0.01, n)
        )
        cells.age = cells.age + 1

    def relax(self, cells: _Cells, iterations: int = 10) -> _Cells:
        """Push overlapping cells apart (newborn cells stay inside the field)."""
        if len(cells) < 2:
            return cells
        bound = cells.bounding_radius()
        reach = 2 * _SPACING * bound.max()
        pos = cells.pos.copy()
        for _ in range(iterations):
            pairs = cKDTree(pos).query_pairs(reach, output_type="ndarray")
            if not len(pairs):
                break
            i, j = pairs[:, 0], pairs[:, 1]
            delta = pos[i] - pos[j]
            dist = np.linalg.norm(delta, axis=1)
            need = _SPACING * (bound[i] + bound[j])
            close = dist < need
            if not close.any():
                break
            i, j, delta, dist, need = i[close], j[close], delta[close], dist[close], need[close]
            direction = delta / np.maximum(dist, 1e-9)[:, None]
            push = 0.5 * (need - dist)[:, None] * direction
            shift = np.zeros_like(pos)
            np.add.at(shift, i, push)
            np.add.at(shift, j, -push)
            pos += shift
            pos = self.confine(pos, cells.age == 0)
        cells.pos = pos
        return cells

    def confine(self, pos: np.ndarray, newborn: np.ndarray) -> np.ndarray:
        """Keep z inside the stack, and newborn cells inside the field."""
        pos = pos.copy()
        if self.d == 3:
            margin = min(0.5 * self.cfg.radius, (self.size[0] - 1) / 2)
            pos[:, 0] = np.clip(pos[:, 0], margin, self.size[0] - 1 - margin)
        pos[newborn] = np.clip(pos[newborn], 0, self.size - 1)
        return pos

    def inside(self, pos: np.ndarray) -> np.ndarray:
        """Whether each centre lies in the field (its nearest pixel is in the image)."""
        yx = pos[:, -2:]
        return ((yx >= -0.5) & (yx < self.size[-2:] - 0.5)).all(axis=1)

    def leave(self, cells: _Cells, t: int) -> _Cells:
        """Drop cells whose centre left the field; their tracks end in the previous frame."""
        inside = self.inside(cells.pos)
        for lab in cells.label[~inside].tolist():
            self.end[lab] = t - 1
        return cells.take(np.flatnonzero(inside))

    def step(self, cells: _Cells, t: int) -> _Cells:
        """From frame ``t - 1`` to ``t``: move, divide, let cells in, push apart, let cells out."""
        self.move(cells)
        parts = [self.divide(cells, t)]
        entering = self.enter(t)
        if entering is not None:
            parts.append(entering)
        cells = self.relax(_Cells.concat(parts))
        cells.pos = self.confine(cells.pos, cells.age == 0)
        return self.leave(cells, t)


# --------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------


def _paint(cells: _Cells, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Paint one frame: clean intensity image and label mask.

    Each cell is painted in its bounding box. Where ellipsoids overlap, a pixel belongs to the
    cell in whose (normalised) frame it lies deeper, so masks are exact and never stacked.
    """
    clean = np.zeros(shape, np.float32)
    labels = np.zeros(shape, np.uint16)
    depth = np.full(shape, np.inf, np.float32)
    axes = cells.semi_axes()
    # half extent of an ellipsoid along each image axis
    half = np.sqrt(np.einsum("nij,nj->ni", cells.rot**2, axes**2))
    lo = np.maximum(np.floor(cells.pos - half).astype(int), 0)
    hi = np.minimum(np.ceil(cells.pos + half).astype(int) + 1, np.asarray(shape))
    for i in range(len(cells)):
        if (hi[i] <= lo[i]).any():
            continue
        box = tuple(slice(a, b) for a, b in zip(lo[i], hi[i], strict=True))
        grids = np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij")
        offset = np.stack(grids, -1) - cells.pos[i]
        u = (offset @ cells.rot[i]) / axes[i]  # coordinates in the cell's unit ball
        rho = np.sqrt(np.sum(u**2, -1))
        wins = (rho < 1) & (rho < depth[box])
        if not wins.any():
            continue
        rw = rho[wins]
        # the texture lives in the cell's own frame at a fixed physical scale, so it turns and
        # moves with the cell and keeps its look when the cell grows or divides
        local = (offset[wins] @ cells.rot[i]) / cells.target[i]
        texture = np.cos(2 * np.pi * local @ cells.waves[i].T + cells.phase[i]) @ cells.weight[i]
        profile = np.clip((1 - rw) / 0.2, 0, 1) * (0.75 + 0.25 * (1 - rw**2))
        value = cells.brightness[i] * profile * (1 + 0.6 * texture)
        depth[box][wins] = rw
        labels[box][wins] = cells.label[i]
        clean[box][wins] = value
    return clean, labels


def generate(config: SyntheticConfig | None = None) -> SyntheticMovie:
    """Simulate a movie; the same config (seed included) gives the same movie."""
    cfg = config or SyntheticConfig()
    world = _World(cfg)
    cells = world.initial()
    shape = (cfg.frames, *cfg.shape)
    images = np.zeros(shape, np.uint16)
    masks = np.zeros(shape, np.uint16)
    noise_rng = np.random.default_rng([cfg.seed, 1])
    for t in range(cfg.frames):
        if t > 0:
            cells = world.step(cells, t)
        if world.next_label > np.iinfo(np.uint16).max:
            raise InputError(None, "more than 65535 tracks: lower density, frames or rates")
        clean, masks[t] = _paint(cells, cfg.shape)
        images[t] = _noisy(clean, cfg, noise_rng)
    for lab in cells.label.tolist():
        world.end[lab] = cfg.frames - 1
    labels = np.array(sorted(world.start), np.int64)
    table = pd.DataFrame(
        {
            "label": labels,
            "start": [world.start[lab] for lab in labels],
            "end": [world.end[lab] for lab in labels],
            "parent": [world.parent[lab] for lab in labels],
        }
    ).astype(np.int64)
    log.info(
        "synthetic movie %s: %d tracks, %d divisions",
        shape,
        len(table),
        int((table["parent"] > 0).sum()) // 2,
    )
    return SyntheticMovie(images, masks, table, cfg)


def _noisy(clean: np.ndarray, cfg: SyntheticConfig, rng: np.random.Generator) -> np.ndarray:
    """Background, Poisson (shot) noise and Gaussian (read) noise, as uint16."""
    signal = clean + np.float32(cfg.background)
    if cfg.photons > 0:
        signal = rng.poisson(signal * cfg.photons).astype(np.float32) / np.float32(cfg.photons)
    if cfg.noise > 0:
        signal += rng.normal(0, cfg.noise, signal.shape).astype(np.float32)
    out = np.clip(np.rint(signal * _INTENSITY_SCALE), 0, np.iinfo(np.uint16).max)
    return out.astype(np.uint16)
