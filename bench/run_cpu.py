"""``attrackt run`` and ``attrackt demo`` as a user runs them on a CPU: the plan they state, the
time they take, and their result against linking by position only.

    ATTRACKT_DATA=../shared/data python bench/run_cpu.py [--seeds 0,1,2]

Each run is a fresh project in a temporary folder, a subprocess of its own, timed as a whole
(wall clock, the machine's load average beside it); the scores are the project's
``metrics.json`` (attrackt and position-only linking of the same detections) and the guard's
verdict its ``guard.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, mean_sd, provenance, write_results  # noqa: E402

MOVIE = ("DIC-C2DH-HeLa", "02")


def run(command: list[str], project: Path) -> dict:
    """Run ``attrackt ...`` and read what its project holds."""
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "attrackt", *command], capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    plan = next((line for line in done.stdout.splitlines() if line.startswith("plan:")), None)
    metrics = json.loads((project / "metrics.json").read_text(encoding="utf-8"))
    scores = next(iter(metrics.values()))
    guard = json.loads((project / "guard.json").read_text(encoding="utf-8"))
    return {
        "seconds": round(seconds, 1),
        "load_before": round(load, 2),
        "plan": plan,
        "aogm": scores["attrackt"]["AOGM"],
        "aogm_position": scores["position only"]["AOGM"],
        "division_f1": scores["attrackt"]["division_f1"],
        "guard": guard["verdict"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("ATTRACKT_DATA", "../shared/data"))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", default=str(RESULTS / "run_cpu.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    movie = Path(args.data, *MOVIE)
    runs: dict[str, list[dict]] = {"run": [], "quick": [], "demo": []}
    for seed in seeds:
        with tempfile.TemporaryDirectory() as tmp:
            for name, extra in (("run", []), ("quick", ["--quick"])):
                project = Path(tmp) / name
                command = ["run", str(movie), "--gt-detections", "--project", str(project),
                           "--device", "cpu", "--seed", str(seed), *extra]  # fmt: skip
                runs[name].append(run(command, project))
            out = Path(tmp) / "demo"
            runs["demo"].append(
                run(
                    ["demo", "--out", str(out), "--device", "cpu", "--seed", str(seed)],
                    out / "project",
                )  # fmt: skip
            )
        for name, found in runs.items():
            print(name, seed, found[-1], flush=True)
    summary = {}
    for name, found in runs.items():
        summary[name] = {
            key: dict(zip(("mean", "sd"), mean_sd([r[key] for r in found]), strict=True))
            for key in ("seconds", "aogm", "aogm_position")
        }
    write_results(
        Path(args.json),
        {
            "benchmark": "run_cpu",
            "provenance": provenance(),
            "movie": "/".join(MOVIE),
            "seeds": seeds,
            "protocol": "attrackt run MOVIE --gt-detections --device cpu (the default plan), the "
            "same with --quick, and attrackt demo --device cpu; a fresh project each; wall clock "
            "of the whole command",
            "runs": runs,
            "summary": summary,
        },
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
