"""Linking speed: the fast exact solver against motile + SCIP on the same graphs and costs.

Graphs: synthetic movies of ~300 cells per frame (Gaussian steps, divisions) with 1k, 10k, 100k
and 1M detections, and Fluo-N2DL-HeLa 02 with its GT detections (TRA marker centroids,
25,420 nodes). Candidate graph: 3 nearest neighbours backwards, division hyper-edges, every node
pinned. Two cost settings: the method's default (normalised distance, appear = disappear = 1)
and the raw position costs of METHOD.md's warning (edge = distance - 20, division = distance to
the children's midpoint - 10, appear = disappear = 30).

Each solver runs in a fresh process on the same pickled problem (graph + costs), so its time and
peak memory (``ru_maxrss``) are its own. motile + SCIP gets ``--motile-limit`` seconds and runs
up to 25,420 detections; where it stops at the limit, the ratio is a lower bound.

    ATTRACKT_DATA=/path/to/shared/data python bench/link_speed.py
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import pickle
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from _common import provenance, write_results  # noqa: E402
from synthetic_cells import simulate_cells  # noqa: E402

from attrackt.link import LinkConfig, build_problem  # noqa: E402

COSTS = {
    "normalised": {},
    "position": {
        "normalise": False,
        "edge_bias": -20.0,
        "hyper_bias": -10.0,
        "appear": 30.0,
        "disappear": 30.0,
    },
}
MOTILE_MAX_NODES = 25_420


def _solve_in_child(path: str, solver: str, options: dict, conn) -> None:
    """Child process: load the problem, solve, send back the figures."""
    from attrackt.errors import SolverError
    from attrackt.link import solve

    with open(path, "rb") as fh:
        problem = pickle.load(fh)
    config = LinkConfig(solver=solver, on_time_limit="warn", **options)
    start = time.perf_counter()
    try:
        sol = solve(problem, config)
        row = {
            "seconds": time.perf_counter() - start,
            "objective": sol.objective,
            "bound": sol.bound,
            "gap": sol.gap,
            "status": sol.status,
            **{k: v for k, v in sol.details.items() if k != "reported_objective"},
        }
    except SolverError as err:
        row = {"seconds": time.perf_counter() - start, "status": "no solution", "error": str(err)}
    row["peak_rss_mb"] = peak_rss_mb()
    conn.send(row)
    conn.close()


def peak_rss_mb() -> float:
    """This process's peak resident memory. Linux: ``VmHWM``, which restarts at ``exec`` (unlike
    ``ru_maxrss``, which a spawned child inherits from its parent's size at fork time)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_solver(path: str, solver: str, repeat: int = 1, **options) -> dict:
    """Solve in a fresh process (``repeat`` times: the fastest run is kept, all are listed)."""
    runs = [_run_once(path, solver, options) for _ in range(repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "seconds_each_run": [r["seconds"] for r in runs]}


def _run_once(path: str, solver: str, options: dict) -> dict:
    ctx = mp.get_context("spawn")
    here, there = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_solve_in_child, args=(path, solver, options, there))
    proc.start()
    there.close()
    row = here.recv()
    proc.join()
    return row


def hela_detections(data: Path):
    from attrackt.io.ctc import load_ctc

    return load_ctc(data / "Fluo-N2DL-HeLa" / "02_GT" / "TRA", images=False).tracks.detections


def datasets(sizes: list[int], data: Path | None):
    for n in sizes:
        yield f"synthetic {n:,}", lambda n=n: simulate_cells(n, seed=0)
    if data is not None:
        yield "Fluo-N2DL-HeLa 02 (GT)", lambda: hela_detections(data)


def same(a: float | None, b: float | None) -> bool | None:
    if a is None or b is None:
        return None
    return bool(abs(a - b) <= 1e-6 * max(1.0, abs(a)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--motile-limit", type=float, default=600.0)
    parser.add_argument("--no-hela", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "link_speed.json")
    args = parser.parse_args()
    env = os.environ.get("ATTRACKT_DATA")
    data = Path(env) if env else REPO.parent / "shared" / "data"
    if args.no_hela or not (data / "Fluo-N2DL-HeLa" / "02_GT" / "TRA").is_dir():
        print(f"HeLa 02 skipped (no data under {data})" if not args.no_hela else "HeLa skipped")
        data = None

    rows = []
    tmp = tempfile.mkdtemp(prefix="link_speed_")
    for name, make in datasets(args.sizes, data):
        det = make()
        for costs, options in COSTS.items():
            start = time.perf_counter()
            problem = build_problem(det, config=LinkConfig(**options))
            build = time.perf_counter() - start
            path = os.path.join(tmp, "problem.pkl")
            with open(path, "wb") as fh:
                pickle.dump(problem, fh, protocol=pickle.HIGHEST_PROTOCOL)
            size = problem.graph.sizes()
            base = {
                "dataset": name,
                "detections": size["nodes"],
                "edges": size["edges"],
                "hyper_edges": size["hyper_edges"],
                "costs": costs,
                "graph_and_costs_seconds": round(build, 3),
            }
            runs = {"fast": run_solver(path, "fast", repeat=2, **options)}
            if size["nodes"] >= 100_000:
                runs["fast, 2 processes"] = run_solver(path, "fast", 2, threads=2, **options)
            runs["greedy"] = run_solver(path, "greedy", repeat=2, **options)
            if size["nodes"] <= MOTILE_MAX_NODES:
                runs["motile+SCIP"] = run_solver(
                    path, "motile", time_limit=args.motile_limit, **options
                )
            fast = runs["fast"]
            ref = runs.get("motile+SCIP")
            for solver, run in runs.items():
                row = {**base, "solver": solver, **run}
                if solver != "motile+SCIP" and ref is not None:
                    row["ratio"] = ref["seconds"] / run["seconds"]
                    row["ratio_is_lower_bound"] = ref["status"] != "optimal"
                    # against SCIP's solve alone, without motile building its model
                    row["ratio_solve_only"] = ref["solve_seconds"] / run["seconds"]
                if solver == "motile+SCIP" or (solver.startswith("fast") and ref is not None):
                    row["same_objective"] = (
                        same(fast.get("objective"), ref.get("objective"))
                        if ref["status"] == "optimal"
                        else None
                    )
                if solver == "fast":  # the whole link(): graph, costs and solving
                    row["link_total_seconds"] = base["graph_and_costs_seconds"] + run["seconds"]
                if solver == "greedy":
                    row["excess_over_optimum"] = (run["objective"] - fast["objective"]) / abs(
                        fast["objective"]
                    )
                rows.append(row)
                print(_line(row), flush=True)
            if ref is None:
                rows.append(
                    {
                        **base,
                        "solver": "motile+SCIP",
                        "status": "skipped",
                        "note": f"motile + SCIP is run up to {MOTILE_MAX_NODES:,} detections",
                    }
                )
                print(_line(rows[-1]), flush=True)
    result = {
        "provenance": provenance(),
        "motile_limit_seconds": args.motile_limit,
        "graphs": "synthetic: simulated points (~300 cells a frame, Gaussian steps, divisions), "
        "no images; HeLa 02: the GT detections' centroids",
        "rows": rows,
    }
    write_results(args.out, result)
    print()
    print(table(rows))
    print(f"\nwrote {args.out}")


def _fmt(value, spec: str = ".3g") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return format(value, spec) if isinstance(value, (int, float)) else str(value)


def _line(row: dict) -> str:
    return (
        f"{row['dataset']:>24} {row['costs']:>10} {row['solver']:>18} "
        f"{_fmt(row.get('seconds'), '.2f'):>8}s obj {_fmt(row.get('objective'), '.8g'):>14} "
        f"{row.get('status', ''):>11} gap {_fmt(row.get('gap')):>6} "
        f"ratio {_fmt(row.get('ratio'), '.1f')}{'+' if row.get('ratio_is_lower_bound') else ''} "
        f"same {_fmt(row.get('same_objective'))} rss {_fmt(row.get('peak_rss_mb'), '.0f')} MB"
    )


def table(rows: list[dict]) -> str:
    head = (
        f"| dataset | detections | costs | solver | seconds | objective | status | gap | "
        f"ratio (motile/x) | ratio (SCIP solve only/x) | same objective | peak RSS MB |\n"
        f"|{'---|' * 12}"
    )
    lines = [head]
    for r in rows:
        ratio = _fmt(r.get("ratio"), ".1f")
        if r.get("ratio_is_lower_bound"):
            ratio = f"> {ratio} (motile stopped)"
        lines.append(
            f"| {r['dataset']} | {r['detections']:,} | {r['costs']} | {r['solver']} | "
            f"{_fmt(r.get('seconds'), '.2f')} | {_fmt(r.get('objective'), '.10g')} | "
            f"{r.get('status', '')} | {_fmt(r.get('gap'))} | {ratio} | "
            f"{_fmt(r.get('ratio_solve_only'), '.1f')} | "
            f"{_fmt(r.get('same_objective'))} | {_fmt(r.get('peak_rss_mb'), '.0f')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
