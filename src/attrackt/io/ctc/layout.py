"""Where the parts of a CTC sequence live: :class:`CTCSequence`, finding the sequences of a
dataset folder (:func:`find_sequences`) or the one a folder belongs to (:func:`locate_sequence`),
and telling a tracking folder (GT ``TRA`` or a ``RES``) and its file names."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from attrackt.errors import InputError

_SEQUENCE_DIR = re.compile(r"^(\d+)(_GT|_ST|_RES)?$")


@dataclass(frozen=True)
class CTCSequence:
    """One sequence ``name`` (``"01"``) of the dataset folder ``root``, and where its parts live."""

    root: Path
    name: str

    @property
    def images(self) -> Path:
        return self.root / self.name

    @property
    def tra(self) -> Path:
        return self.root / f"{self.name}_GT" / "TRA"

    @property
    def gt_seg(self) -> Path:
        return self.root / f"{self.name}_GT" / "SEG"

    @property
    def st_seg(self) -> Path:
        return self.root / f"{self.name}_ST" / "SEG"

    @property
    def result(self) -> Path:
        return self.root / f"{self.name}_RES"

    @property
    def label(self) -> str:
        """The name detections carry in their ``sequence`` column: ``"Fluo-N2DL-HeLa/01"``."""
        return f"{self.root.name}/{self.name}"


def locate_sequence(path: str | Path, sequence: str | None = None) -> CTCSequence:
    """The sequence given as (dataset folder, sequence name) or by one of its own folders.

    ``locate_sequence("Fluo-N2DL-HeLa", "01")``, ``locate_sequence("Fluo-N2DL-HeLa/01")``,
    ``".../01_GT/TRA"`` and ``".../01_RES"`` all name the same sequence.
    """
    path = Path(path).absolute()
    if sequence is not None:
        seq = CTCSequence(path, str(sequence))
        if not any(p.is_dir() for p in (seq.images, seq.tra.parent, seq.st_seg.parent, seq.result)):
            raise InputError(
                path,
                f"has no sequence {sequence!r} (no folder {sequence}, {sequence}_GT, "
                f"{sequence}_ST or {sequence}_RES)",
            )
        return seq
    if path.name in ("TRA", "SEG"):
        match = re.match(r"^(\d+)_(GT|ST)$", path.parent.name)
        if match:
            return CTCSequence(path.parent.parent, match.group(1))
    match = _SEQUENCE_DIR.match(path.name)
    if match and path.is_dir():
        return CTCSequence(path.parent, match.group(1))
    raise InputError(
        path,
        "not a CTC sequence folder (expected DATASET/01, DATASET/01_GT/TRA or "
        "DATASET/01_RES); or give the dataset folder and the sequence name",
    )


def find_sequences(path: str | Path) -> list[CTCSequence]:
    """Every sequence of a dataset folder, or the one sequence that ``path`` belongs to."""
    path = Path(path).absolute()
    if not path.is_dir():
        raise InputError(path, "no such folder")
    names = sorted(
        {m.group(1) for p in path.iterdir() if p.is_dir() and (m := _SEQUENCE_DIR.match(p.name))}
    )
    if names:
        return [CTCSequence(path, name) for name in names]
    return [locate_sequence(path)]


def is_tracking_folder(path: Path) -> bool:
    """Whether ``path`` holds a track table (``man_track.txt`` or ``res_track.txt``)."""
    return (path / "man_track.txt").is_file() or (path / "res_track.txt").is_file()


def tracking_names(folder: Path) -> tuple[str, str]:
    """(mask prefix, table name) of a TRA or RES folder."""
    if (folder / "res_track.txt").exists() or folder.name.endswith("_RES"):
        return "mask", "res_track.txt"
    return "man_track", "man_track.txt"


def sequence_images(folder: Path) -> Path | None:
    """The image folder of the sequence a TRA/RES folder belongs to, when it is there."""
    try:
        seq = locate_sequence(folder)
    except InputError:
        return None
    return seq.images if seq.images.is_dir() else None
