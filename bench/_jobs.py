"""The one job runner of the benchmarks' GPU phases, and the files that pass between phases.

A ``gpu`` phase (``accuracy.py gpu``, ``interactive.py gpu``) is a list of :class:`Process`:
each a hidden subcommand of its own script (:func:`command`), run with its environment
(:func:`worker_env`) and its log file, started once the process it needs has ended well, and
killed at a wall-clock deadline (:func:`run`). A process writes what it found itself (a record
file); the runner only says how each one ended. The outputs go back as tars
(:func:`tar_files`, :func:`untar`), beside the ``gpu`` phase's summary (``gpu.json``); the
``prepare`` phase leaves a ``plan.json`` in the carry folder.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PLAN = "plan.json"  # prepare -> gpu, evaluate (in the carry folder)
SUMMARY = "gpu.json"  # gpu -> evaluate (in the gpu phase's output folder)


@dataclass(frozen=True)
class Process:
    """One worker process: its name, command line, environment and log file, and the name of
    the process that must end well before it starts (``None``: it starts at once)."""

    id: str
    command: list[str]
    env: dict[str, str]
    log: Path
    needs: str | None = None


def command(script: str | Path, phase: str, options: Mapping[str, object]) -> list[str]:
    """``python SCRIPT PHASE --option value ...``: a (hidden) phase of a bench script."""
    line = [sys.executable, str(Path(script).resolve()), phase]
    for name, value in options.items():
        line += [name, str(value)]
    return line


def worker_env(gpu: int | None = None, **extra: str) -> dict[str, str]:
    """This environment for a worker: no progress bars, unbuffered output, one OpenMP thread,
    ``extra``, and only GPU ``gpu`` visible (``None``: whatever this process sees)."""
    env = dict(os.environ, TQDM_DISABLE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **extra)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)
    return env


def run(processes: Sequence[Process], deadline: float, start: float) -> dict[str, str]:
    """Run ``processes``, each as soon as the one it needs has ended well, and kill what still
    runs at ``deadline`` (a :func:`time.time`). Prints each start and end, in seconds since
    ``start``. Returns how each ended: ``ok``, ``exit N`` (``exit -9``: killed), or
    ``skipped: NEED HOW`` where the one it needs did not end well."""
    pending = list(processes)
    running: dict[str, tuple[subprocess.Popen, IO[str]]] = {}
    ended: dict[str, str] = {}
    while pending or running:
        for process in list(pending):
            need = process.needs
            if need is not None and need not in ended:
                continue
            pending.remove(process)
            if need is not None and ended[need] != "ok":
                ended[process.id] = f"skipped: {need} {ended[need]}"
                continue
            process.log.parent.mkdir(parents=True, exist_ok=True)
            handle = open(process.log, "w")  # noqa: SIM115 (closed when the process ends)
            running[process.id] = (
                subprocess.Popen(
                    process.command, env=process.env, stdout=handle, stderr=subprocess.STDOUT
                ),
                handle,
            )
            print(f"[{time.time() - start:6.1f} s] start {process.id}", flush=True)
        for name, (popen, handle) in list(running.items()):
            if time.time() > deadline:
                popen.kill()
            code = popen.poll()
            if code is None:
                continue
            handle.close()
            del running[name]
            ended[name] = "ok" if code == 0 else f"exit {code}"
            print(f"[{time.time() - start:6.1f} s] {ended[name]:>7} {name}", flush=True)
        time.sleep(1.0)
    return ended


def tar_files(target: Path, files: Iterable[Path], tail: int | None = None) -> None:
    """One tar of ``files`` under their own names; with ``tail``, only the last ``tail`` bytes
    of each (logs)."""
    with tarfile.open(target, "w") as tar:
        for path in files:
            if tail is None:
                tar.add(path, arcname=path.name)
                continue
            data = path.read_bytes()[-tail:]
            info = tarfile.TarInfo(path.name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def untar(parts: Iterable[Path], folder: str | Path) -> None:
    """Unpack every tar of ``parts`` into ``folder``."""
    for part in parts:
        with tarfile.open(part) as tar:
            tar.extractall(folder, filter="data")


def save_plan(carry: Path, plan: Mapping[str, Any]) -> None:
    """The ``prepare`` phase's plan, into the carry folder."""
    (carry / PLAN).write_text(json.dumps(plan, indent=1))


def load_plan(carry: Path) -> dict[str, Any]:
    return json.loads((carry / PLAN).read_text())


def save_summary(out: Path, summary: Mapping[str, Any]) -> None:
    """The ``gpu`` phase's summary (how every job or case ended), into its output folder."""
    (out / SUMMARY).write_text(json.dumps(summary, indent=1))


def load_summary(results: Path) -> dict[str, Any]:
    return json.loads((results / SUMMARY).read_text())
