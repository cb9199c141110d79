"""What made each output of a project folder: one record per stage, kept in ``stages.json``.

A stage's *digest* hashes everything that shapes its output: its settings (less the fields in
:data:`RUNTIME_FIELDS`, which say where and how verbosely to run, not what to compute), the
inputs from outside the project (files by path, size and modification time; answers by content),
and the outputs of the stages it reads, by the signature recorded when they were written. A
stage is *current* when its record has the digest it would have now, it finished, and its
outputs are still the ones it wrote (same files, sizes and modification times). A stage that is
not current runs again; its new outputs change the digest of every stage that reads them, so
those run again too. A stage that started with the same digest and did not finish (training
stopped by a signal) may go on where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attrackt.errors import InputError
from attrackt.io.jsonfile import plain, write_json

FORMAT = 1

#: settings that change how a stage runs but not what it computes: left out of the digests
RUNTIME_FIELDS = frozenset(
    {"device", "progress", "log_every", "checkpoint_every", "checkpoint_seconds"}
)


def digest(value: Any) -> str:
    """A SHA-256 hex digest of ``value`` as canonical JSON (keys sorted)."""
    text = json.dumps(plain(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def result_settings(value: Any) -> Any:
    """``value`` (plain JSON data) without the keys of :data:`RUNTIME_FIELDS`, at any depth."""
    if isinstance(value, dict):
        return {k: result_settings(v) for k, v in value.items() if k not in RUNTIME_FIELDS}
    if isinstance(value, list):
        return [result_settings(v) for v in value]
    return value


def signature(path: Path, skip: Path | None = None) -> list[list[Any]] | None:
    """``[[relative path, size, mtime_ns], ...]`` of the file ``path`` or of every file under the
    folder ``path`` (sorted), leaving out the folder ``skip``; ``None`` when it does not exist."""
    if path.is_file():
        stat = path.stat()
        return [["", stat.st_size, stat.st_mtime_ns]]
    if not path.is_dir():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file())
    if skip is not None:
        files = [p for p in files if skip not in p.parents]
    stats = [(p.relative_to(path).as_posix(), p.stat()) for p in files]
    return [[name, stat.st_size, stat.st_mtime_ns] for name, stat in stats]


@dataclass
class StageRecord:
    """One stage's record: its digest, whether it finished, what it wrote, and with what.

    ``config``: the configuration sections it ran with, whole (for ``config.json``);
    ``inputs``: the digests of what it read (outside inputs and earlier stages' outputs);
    ``outputs``: the digest of its outputs' signatures once finished.
    """

    digest: str
    done: bool = False
    config: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, str | None] = field(default_factory=dict)
    outputs: str | None = None


class StageRecords:
    """The records of one project folder (``stages.json``), saved after every change."""

    def __init__(self, path: Path, records: dict[str, StageRecord] | None = None) -> None:
        self.path = path
        self.records = records or {}

    @classmethod
    def load(cls, path: str | Path) -> StageRecords:
        """The records at ``path`` (none when the file does not exist)."""
        path = Path(path)
        if not path.is_file():
            return cls(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, expected {FORMAT}")
            records = {name: StageRecord(**entry) for name, entry in raw["stages"].items()}
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
            raise InputError(
                path,
                f"not a readable stage record ({err}); delete it to run every stage again",
            ) from err
        return cls(path, records)

    def save(self) -> None:
        stages = {name: vars(record) for name, record in self.records.items()}
        write_json(self.path, {"format": FORMAT, "stages": stages})

    def outputs_of(self, name: str) -> str | None:
        """The recorded digest of a finished stage's outputs (``None`` if it has none)."""
        record = self.records.get(name)
        return record.outputs if record is not None and record.done else None

    def is_current(self, name: str, stage_digest: str, outputs: str) -> bool:
        """Whether ``name`` finished with ``stage_digest`` and its outputs are still ``outputs``."""
        record = self.records.get(name)
        return (
            record is not None
            and record.done
            and record.digest == stage_digest
            and record.outputs == outputs
        )

    def can_go_on(self, name: str, stage_digest: str) -> bool:
        """Whether ``name`` started with ``stage_digest`` and did not finish (it may resume)."""
        record = self.records.get(name)
        return record is not None and not record.done and record.digest == stage_digest

    def forget(self, name: str) -> None:
        """Drop a stage's record (its outputs are gone)."""
        self.records.pop(name, None)

    def start(self, name: str, record: StageRecord) -> None:
        """Record that a stage starts (unfinished) and save."""
        self.records[name] = record
        self.save()

    def finish(self, name: str, outputs: str) -> None:
        """Record that a started stage finished, having written ``outputs``, and save."""
        record = self.records[name]
        record.done, record.outputs = True, outputs
        self.save()

    def configuration(self, order: list[str]) -> dict[str, Any]:
        """The configuration sections of the finished stages, each from the first stage in
        ``order`` that used it: what made the outputs on disk."""
        sections: dict[str, Any] = {}
        for name in order:
            record = self.records.get(name)
            if record is not None and record.done:
                for key, value in record.config.items():
                    sections.setdefault(key, value)
        return sections
