"""One compact file that holds everything the learning stages need: the store.

A store is a single ``.npz`` file (``numpy.savez_compressed``; read with ``numpy.load``, no
pyarrow, no pickle) with, for one or more sequences:

- the detections: every column of the :class:`~attrackt.data.Detections` table (ids, times,
  positions, labels, sequence names, scalar features) and its vector blocks (e.g. ``embedding``);
- the ground-truth edges of each sequence that has them (:class:`~attrackt.data.Tracks`);
- a ``uint8`` image crop of each detection (movie percentile-normalised, 0..1 -> 0..255);
- optionally the label masks of each sequence (compressed);
- facts: image shape per sequence, the crops' field of view and resolution, free metadata.

It is what travels to a GPU machine: the auto-encoder, training and prediction all read it.
Files inside the archive: ``store.json`` (the facts, JSON as bytes), ``col/<name>``,
``vec/<name>``, ``crops``, ``edges/<k>`` and ``masks/<k>`` for the k-th sequence.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data import Detections, Tracks
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

FORMAT = "attrackt-store"
VERSION = 1


@dataclass
class Store:
    """Detections of one or more sequences with their GT edges, crops and masks.

    ``tracks`` maps a sequence name to its ground truth (only sequences that have one);
    ``crops`` is ``(N, *crop_pixels)`` uint8 aligned with the rows of ``detections`` (or
    ``None``); ``masks`` maps a sequence name to its ``(T, [Z,] Y, X)`` label stack; ``meta``
    holds ``image_shape`` (per sequence), ``crop_size`` (the field of view in pixels),
    ``crop_pixels`` (the crops' resolution) and anything else JSON-able.
    """

    detections: Detections
    tracks: dict[str, Tracks] = field(default_factory=dict)
    crops: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = set(self.detections.sequences)
        for what, mapping in (("tracks", self.tracks), ("masks", self.masks)):
            unknown = sorted(set(mapping) - names)
            if unknown:
                raise InputError("store", f"{what} given for unknown sequence(s) {unknown}")
        if self.crops is not None:
            if self.crops.dtype != np.uint8:
                raise InputError("store", f"crops must be uint8, got {self.crops.dtype}")
            if len(self.crops) != len(self.detections):
                raise InputError(
                    "store", f"{len(self.crops)} crops for {len(self.detections)} detections"
                )

    # ---- views -----------------------------------------------------------------------------
    @property
    def sequences(self) -> list[str]:
        return self.detections.sequences

    def edges(self, sequences: Sequence[str] | None = None) -> np.ndarray | None:
        """GT parent -> child ids of the given sequences (default: all), ``None`` if one lacks
        a ground truth."""
        names = self.sequences if sequences is None else list(sequences)
        if any(name not in self.tracks for name in names):
            return None
        parts = [self.tracks[name].edges for name in names]
        return np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)

    def select(self, sequences: Sequence[str]) -> Store:
        """The part of the store that holds the given sequences (by full name or suffix:
        ``"02"`` picks ``"Fluo-N2DL-HeLa/02"``)."""
        names = resolve_sequences(self.sequences, sequences)
        rows = np.isin(self.detections.table["sequence"].to_numpy(), names)
        return Store(
            self.detections.take(rows),
            {k: v for k, v in self.tracks.items() if k in names},
            None if self.crops is None else self.crops[rows],
            {k: v for k, v in self.masks.items() if k in names},
            dict(self.meta),
        )

    def crops_float(self, dtype: Any = np.float16) -> np.ndarray:
        """The crops as floats in [0, 1] (what the auto-encoder trains on)."""
        if self.crops is None:
            raise InputError("store", "holds no crops (prepare it with crops)")
        return (self.crops.astype(np.float32) / 255.0).astype(dtype)

    def with_vectors(self, **vectors: np.ndarray) -> Store:
        """A copy whose detections carry extra (or replaced) vector blocks."""
        return Store(
            self.detections.with_vectors(**vectors),
            dict(self.tracks),
            self.crops,
            dict(self.masks),
            dict(self.meta),
        )

    # ---- disk ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write the store to one compressed ``.npz`` file, atomically."""
        det = self.detections
        table = det.table
        names = self.sequences
        codes = pd.Categorical(table["sequence"], categories=names).codes.astype(np.int32)
        arrays: dict[str, np.ndarray] = {}
        columns = []
        for name in table.columns:
            if name == "sequence":
                arrays["col/sequence"] = codes
            else:
                values = table[name].to_numpy()
                if values.dtype == object:
                    raise InputError("store", f"column {name!r} is not numeric; cannot store it")
                arrays[f"col/{name}"] = values
            columns.append(name)
        for name, vec in det.vectors.items():
            arrays[f"vec/{name}"] = vec
        if self.crops is not None:
            arrays["crops"] = self.crops
        for k, name in enumerate(names):
            if name in self.tracks:
                arrays[f"edges/{k}"] = self.tracks[name].edges
            if name in self.masks:
                arrays[f"masks/{k}"] = np.asarray(self.masks[name])
        facts = {
            "format": FORMAT,
            "version": VERSION,
            "sequences": names,
            "columns": columns,
            "vectors": list(det.vectors),
            "detections_meta": det.meta,
            "meta": self.meta,
        }
        arrays["store.json"] = np.frombuffer(json.dumps(facts).encode(), np.uint8)
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    @classmethod
    def load(cls, path: str | Path, *, masks: bool = True) -> Store:
        """Read a store written by :meth:`save` (``masks=False`` skips the masks)."""
        path = Path(path)
        if not path.is_file():
            raise InputError(path, "no such store file")
        try:
            archive = np.load(path, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as err:
            raise InputError(path, f"not a readable store ({err})") from err
        with archive:
            if "store.json" not in archive.files:
                raise InputError(path, "not an attrackt store (no store.json inside)")
            try:
                facts = json.loads(archive["store.json"].tobytes())
            except (ValueError, zipfile.BadZipFile, OSError) as err:
                raise InputError(path, f"a damaged store ({err})") from err
            if facts.get("format") != FORMAT:
                raise InputError(path, "not an attrackt store")
            if facts.get("version", 0) > VERSION:
                raise InputError(
                    path, f"written by a newer attrackt (store version {facts['version']})"
                )
            try:
                return cls._from_archive(archive, facts, masks)
            except (KeyError, ValueError, zipfile.BadZipFile, OSError) as err:
                if isinstance(err, InputError):
                    raise InputError(path, err.problem) from err
                raise InputError(path, f"a damaged or incomplete store ({err})") from err

    @classmethod
    def _from_archive(cls, archive: Mapping[str, np.ndarray], facts: dict, masks: bool) -> Store:
        names = list(facts["sequences"])
        data = {}
        for column in facts["columns"]:
            data[column] = archive[f"col/{column}"]
        data["sequence"] = np.asarray(names, dtype=object)[data["sequence"]]
        vectors = {name: archive[f"vec/{name}"] for name in facts["vectors"]}
        detections = Detections(pd.DataFrame(data), vectors, facts.get("detections_meta", {}))
        files = set(archive.files)
        tracks, stacks = {}, {}
        for k, name in enumerate(names):
            if f"edges/{k}" in files:
                rows = detections.table["sequence"].to_numpy() == name
                tracks[name] = Tracks(detections.take(rows), archive[f"edges/{k}"])
            if masks and f"masks/{k}" in files:
                stacks[name] = archive[f"masks/{k}"]
        crops = archive["crops"] if "crops" in files else None
        return cls(detections, tracks, crops, stacks, facts.get("meta", {}))

    def equals(self, other: Store) -> bool:
        """The same detections, ground truth, crops, masks and meta (exact)."""
        if not self.detections.equals(other.detections) or self.meta != other.meta:
            return False
        if set(self.tracks) != set(other.tracks) or set(self.masks) != set(other.masks):
            return False
        if any(not np.array_equal(v.edges, other.tracks[k].edges) for k, v in self.tracks.items()):
            return False
        if any(not np.array_equal(v, other.masks[k]) for k, v in self.masks.items()):
            return False
        if (self.crops is None) != (other.crops is None):
            return False
        return self.crops is None or np.array_equal(self.crops, other.crops)


def resolve_sequences(available: Sequence[str], wanted: Sequence[str]) -> list[str]:
    """Full sequence names for ``wanted`` names or suffixes (``"02"`` -> ``"DS/02"``)."""
    out = []
    for want in wanted:
        hits = [n for n in available if n == want or n.endswith("/" + want)]
        if len(hits) != 1:
            problem = "matches no sequence" if not hits else f"matches several: {hits}"
            raise InputError("sequences", f"{want!r} {problem} (the store has {list(available)})")
        if hits[0] not in out:
            out.append(hits[0])
    return out
