"""Annotations: the journal of a person's answers (a cell's true children), append-only."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from attrackt.data.detections import Detections
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path
from attrackt.io.jsonfile import strict_json


@dataclass(frozen=True)
class Answer:
    """A person's answer for one detection: its true children (none, one or two).

    A ``retracted`` answer withdraws the detection's earlier answers: it is unanswered again.
    An ``undo`` answer takes back the latest answer not yet undone (a proof-reader's undo; it
    restores what the detection had before), so undo goes on across sessions.
    """

    id: int
    children: tuple[int, ...]
    time: float = field(default_factory=time.time)
    author: str = ""
    retracted: bool = False
    undo: bool = False

    def to_json(self) -> str:
        raw = {
            "id": self.id,
            "children": list(self.children),
            "time": self.time,
            "author": self.author,
        }
        if self.retracted:
            raw["retracted"] = True
        if self.undo:
            raw["undo"] = True
        return json.dumps(raw, allow_nan=False)

    @classmethod
    def from_json(cls, line: str) -> Answer:
        """The answer on one journal line; a ``ValueError`` says what is wrong with it."""
        raw = json.loads(line)
        if not isinstance(raw, dict):
            raise ValueError(f"expected a JSON object, got {type(raw).__name__}")
        missing = [key for key in ("id", "children", "time") if key not in raw]
        if missing:
            raise ValueError(f"no {' or '.join(repr(k) for k in missing)}")
        children = raw["children"]
        if not _is_int(raw["id"]):
            raise ValueError(f"'id' must be an integer, got {raw['id']!r}")
        if not isinstance(children, list) or not all(_is_int(c) for c in children):
            raise ValueError(f"'children' must be a list of integers, got {children!r}")
        stamp = raw["time"]
        if not isinstance(stamp, (int, float)) or isinstance(stamp, bool) or stamp != stamp:
            raise ValueError(f"'time' must be a number, got {stamp!r}")
        if abs(stamp) == float("inf"):
            raise ValueError(f"'time' must be finite, got {stamp!r}")
        if not isinstance(raw.get("author", ""), str):
            raise ValueError(f"'author' must be a string, got {raw['author']!r}")
        for flag in ("retracted", "undo"):
            if not isinstance(raw.get(flag, False), bool):
                raise ValueError(f"'{flag}' must be true or false, got {raw[flag]!r}")
        answer = cls(
            raw["id"],
            tuple(children),
            float(stamp),
            raw.get("author", ""),
            raw.get("retracted", False),
            raw.get("undo", False),
        )
        problem = answer.problem()
        if problem is not None:
            raise ValueError(problem)
        return answer

    def problem(self) -> str | None:
        """What is wrong with the answer on its own (``None``: nothing): more than two
        children, a child named twice, or the cell as its own child."""
        if len(self.children) > 2:
            return f"detection {self.id} given {len(self.children)} children; at most 2"
        if len(set(self.children)) != len(self.children) or self.id in self.children:
            return f"detection {self.id} given the children {list(self.children)}"
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _drop_cut_line(fh, path: Path) -> None:
    """End a journal opened ``a+b`` with a complete line before appending to it.

    A crash mid-write leaves a last line without its end that does not parse; its answer was
    never acknowledged, so it is dropped (with a warning). A last line that parses (written by
    hand without the final newline) is kept and ended.
    """
    size = fh.seek(0, os.SEEK_END)
    if not size:
        return
    fh.seek(size - 1)
    if fh.read(1) == b"\n":
        return
    fh.seek(0)
    text = fh.read()
    start = text.rfind(b"\n") + 1
    try:
        json.loads(text[start:])
    except ValueError:
        logging.getLogger(__name__).warning(
            "%s: dropping a cut-off last line (a write that never finished)", path
        )
        fh.truncate(start)
    else:
        fh.write(b"\n")


_FIX = "correct or delete that line (to change an answer, answer the cell again)"


class Annotations:
    """An append-only journal of answers (JSON lines, each flushed and fsync'ed).

    The latest answer for a detection wins; the whole history stays on disk. A crash can at
    worst cut the last line short (no newline at its end, not parseable), which :meth:`load`
    skips with a warning and the next :meth:`add` removes; any other line that is not a valid
    answer is an error naming the line. :meth:`edit` replaces an answer, :meth:`export` writes a
    table, :meth:`validate` checks the answers against the detections.
    """

    def __init__(self, path: str | Path | None = None, answers: Iterable[Answer] = ()) -> None:
        self.path = None if path is None else Path(path)
        self.history: list[Answer] = list(answers)

    @classmethod
    def load(cls, path: str | Path) -> Annotations:
        """Replay the journal at ``path`` (an absent file is an empty journal).

        Every line must be a valid answer (blank lines are skipped), except a cut-off last line
        (see the class doc); a bad line is an :class:`InputError` naming it.
        """
        path = Path(path)
        answers: list[Answer] = []
        if not path.exists():
            return cls(path, answers)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(path, f"not a readable answers journal ({err})") from err
        lines = text.split("\n")  # the last item is "" unless the last line has no end
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                answers.append(Answer.from_json(line))
            except json.JSONDecodeError as err:
                if number == len(lines):  # no newline after it: a write that never finished
                    logging.getLogger(__name__).warning(
                        "%s: ignoring a cut-off last line %d (%s)", path, number, err
                    )
                    continue
                raise InputError(path, f"line {number} is not JSON ({err}); {_FIX}") from err
            except ValueError as err:
                raise InputError(
                    path, f"line {number} is not a valid answer: {err}; {_FIX}"
                ) from err
        return cls(path, answers)

    def add(self, answer: Answer) -> None:
        """Record an answer; with a journal path it is on disk when this returns."""
        problem = answer.problem()
        if problem is not None:
            raise InputError(self.path, problem)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as fh:
                _drop_cut_line(fh, self.path)
                fh.write((answer.to_json() + "\n").encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        self.history.append(answer)

    def latest(self) -> dict[int, tuple[int, ...]]:
        """detection id -> its children, by the latest answer (retracted answers left out)."""
        final = {a.id: a for a in sorted(self.history, key=lambda a: a.time)}
        return {i: a.children for i, a in final.items() if not a.retracted}

    def links(self) -> np.ndarray:
        """``(E, 2)`` parent -> child links of the latest answers."""
        pairs = [(p, c) for p, kids in self.latest().items() for c in kids]
        return np.asarray(pairs, np.int64).reshape(-1, 2)

    def __len__(self) -> int:
        return len(self.latest())

    def split(self, cells: Collection[int]) -> tuple[Annotations, Annotations]:
        """``(others, chosen)``: the latest answers of the ``cells`` not among ``cells`` and of
        those among them, in memory."""
        chosen = set(int(c) for c in cells)
        latest = self.latest()

        def part(inside: bool) -> Annotations:
            return Annotations(
                answers=[Answer(c, latest[c]) for c in sorted(latest) if (c in chosen) == inside]
            )

        return part(False), part(True)

    def hold_out(self, fraction: float, seed: int = 0) -> tuple[Annotations, Annotations]:
        """``(kept, held)``: the latest answers split in memory, ``held`` a ``fraction`` of the
        answered cells drawn with ``seed`` (to check what is learned from ``kept``)."""
        cells = np.array(sorted(self.latest()), np.int64)
        count = int(round(fraction * len(cells)))
        return self.split(np.random.default_rng(seed).choice(cells, count, replace=False).tolist())

    def save(self, path: str | Path) -> None:
        """Write the whole history to a new journal file (atomically)."""
        with atomic_path(path) as tmp:
            tmp.write_text("".join(a.to_json() + "\n" for a in self.history), encoding="utf-8")

    def edit(self, id: int, children: Sequence[int], author: str = "") -> Answer:
        """Replace the answer for ``id`` by a new one (the old one stays in the history)."""
        if id not in self.latest():
            raise InputError(self.path, f"detection {id} has no answer to edit; add one instead")
        answer = Answer(int(id), tuple(int(c) for c in children), author=author)
        self.add(answer)
        return answer

    def retract(self, id: int, author: str = "") -> Answer:
        """Withdraw the answer for ``id`` (it is unanswered again; the history keeps all)."""
        if id not in self.latest():
            raise InputError(self.path, f"detection {id} has no answer to retract")
        answer = Answer(int(id), (), author=author, retracted=True)
        self.add(answer)
        return answer

    def answers_of(self, id: int) -> list[Answer]:
        """Every answer given for ``id``, oldest first."""
        return sorted((a for a in self.history if a.id == id), key=lambda a: a.time)

    def to_frame(self, history: bool = False) -> pd.DataFrame:
        """The latest answers (or, with ``history``, every answer with ``latest`` and
        ``retracted`` flags) as a table ``id, children, time, author[, latest, retracted]``;
        children as a list per row."""
        ordered = sorted(self.history, key=lambda a: a.time)
        final = {a.id: k for k, a in enumerate(ordered)}  # the index of each id's latest answer
        live = sorted(k for k in final.values() if not ordered[k].retracted)
        keep = range(len(ordered)) if history else live
        frame = pd.DataFrame(
            {
                "id": pd.Series([ordered[k].id for k in keep], dtype=np.int64),
                "children": [list(ordered[k].children) for k in keep],
                "time": pd.Series([ordered[k].time for k in keep], dtype=np.float64),
                "author": pd.Series([ordered[k].author for k in keep], dtype=str),
            }
        )
        if history:
            frame["latest"] = [final[ordered[k].id] == k for k in keep]
            frame["retracted"] = [ordered[k].retracted for k in keep]
        return frame

    def export(self, path: str | Path, history: bool = False) -> None:
        """Write :meth:`to_frame` as ``.csv`` (children joined by ``;``) or ``.json`` (records),
        atomically."""
        path = Path(path)
        frame = self.to_frame(history)
        if path.suffix == ".json":
            text = strict_json(frame.to_dict("records"), indent=1)
        elif path.suffix == ".csv":
            frame["children"] = [";".join(map(str, c)) for c in frame["children"]]
            text = frame.to_csv(index=False)
        else:
            raise InputError(path, "export to .csv or .json")
        with atomic_path(path) as tmp:
            tmp.write_text(text, encoding="utf-8")

    def validate(self, detections: Detections, max_gap: int | None = None) -> list[Conflict]:
        """Check the latest answers against ``detections``.

        An answer naming a detection that does not exist is an :class:`InputError` (naming the
        journal and the ids). What a person must resolve by answering again is returned as
        :class:`Conflict` s: a child claimed by two answered parents, a child that is not later
        in the same sequence (or more than ``max_gap`` frames later), two children in different
        frames.
        """
        source = self.path if self.path is not None else "annotations"
        latest = self.latest()
        parents = np.fromiter(latest, np.int64, len(latest))
        links = self.links()
        named = np.concatenate([parents, links[:, 1]])
        unknown = np.unique(named[~detections.has_ids(named)])
        if len(unknown):
            raise InputError(
                source,
                f"answers name {len(unknown)} detection(s) that do not exist: "
                f"{unknown[:10].tolist()}",
            )
        conflicts: list[Conflict] = []
        rows = detections.rows_of(links.ravel()).reshape(-1, 2)
        t, seq = detections.times, detections.table["sequence"].to_numpy()
        dt = t[rows[:, 1]] - t[rows[:, 0]]
        bad = (seq[rows[:, 1]] != seq[rows[:, 0]]) | (dt < 1)
        if max_gap is not None:
            bad |= dt > max_gap
        later = f"later (by at most {max_gap} frames)" if max_gap else "later"
        for (p, c), d in zip(links[bad].tolist(), dt[bad].tolist(), strict=True):
            conflicts.append(
                Conflict(
                    "not-later",
                    (p,),
                    c,
                    f"detection {c} cannot be a child of {p}: it is {d:+d} frame(s) away, "
                    f"not {later} in the same sequence",
                )
            )
        claimed = pd.Series(links[:, 0]).groupby(links[:, 1]).agg(list)
        for c, owners in claimed[claimed.map(len) > 1].items():
            conflicts.append(
                Conflict(
                    "shared-child",
                    tuple(owners),
                    int(c),
                    f"detection {c} is answered as a child of each of {owners}",
                )
            )
        pairs = pd.DataFrame({"p": links[:, 0], "t": t[rows[:, 1]]}).groupby("p")["t"].nunique()
        for p in pairs[pairs > 1].index:
            conflicts.append(
                Conflict(
                    "split-frames",
                    (int(p),),
                    int(latest[p][1]),
                    f"the two children {list(latest[p])} of detection {p} are in different frames",
                )
            )
        return conflicts

    def check(self, detections: Detections, max_gap: int | None = None) -> None:
        """:meth:`validate`, raising an :class:`InputError` that lists every conflict."""
        conflicts = self.validate(detections, max_gap)
        if conflicts:
            source = self.path if self.path is not None else "annotations"
            listed = "; ".join(c.message for c in conflicts[:10])
            more = f" (and {len(conflicts) - 10} more)" if len(conflicts) > 10 else ""
            raise InputError(
                source,
                f"{len(conflicts)} contradictory answer(s): {listed}{more}; answer the cells "
                "again (a new answer replaces the old one)",
            )


@dataclass(frozen=True)
class Conflict:
    """A contradiction among the latest answers, resolved by answering one of ``parents`` again.

    ``kind``: ``"shared-child"`` (``child`` claimed by several parents), ``"not-later"`` (the
    child is not later in the same sequence) or ``"split-frames"`` (two children in different
    frames).
    """

    kind: str
    parents: tuple[int, ...]
    child: int
    message: str
