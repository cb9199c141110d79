"""Position-only linking accuracy: the floor every learned cost has to beat.

"GT detections" protocol: TRA markers painted over the silver-truth masks
(:func:`attrackt.io.ctc.gt_detections`), node positions = centroids of those full masks; link
with the method's default costs (normalised distance, appear = disappear = 1, every node pinned)
over k = 3 and k = 10 nearest neighbours, with the exact ILP (fast solver) and the greedy linker;
score with :func:`attrackt.evaluate.evaluate` (identity matching: same detections). The paper's
position-only ILP on HeLa 02 (AOGM 352.5, division F1 0.781, k = 10) is listed for reference.

    ATTRACKT_DATA=/path/to/shared/data python bench/baseline.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SEQUENCES = [("Fluo-N2DL-HeLa", "02"), ("DIC-C2DH-HeLa", "01"), ("DIC-C2DH-HeLa", "02")]
PAPER = {("Fluo-N2DL-HeLa", "02"): {"AOGM": 352.5, "division_f1": 0.781}}
KEYS = (
    "AOGM",
    "fp_edges",
    "fn_edges",
    "ws_edges",
    "division_f1",
    "division_precision",
    "division_recall",
    "gt_divisions",
    "pred_divisions",
    "TRA",
    "LNK",
    "CHOTA",
)


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def main() -> None:
    from attrackt.evaluate import evaluate
    from attrackt.io.ctc import gt_detections
    from attrackt.link import LinkConfig, link

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "baseline.json")
    args = parser.parse_args()
    env = os.environ.get("ATTRACKT_DATA")
    data = Path(env) if env else REPO.parent / "shared" / "data"
    rows = []
    for dataset, seq in SEQUENCES:
        gt = gt_detections(data / dataset, seq, images=False).tracks
        for k in (3, 10):
            for solver in ("fast", "greedy"):
                start = time.perf_counter()
                result = link(gt.detections, config=LinkConfig(k=k, solver=solver))
                seconds = time.perf_counter() - start
                scores = evaluate(result.tracks, gt)
                row = {
                    "dataset": f"{dataset} {seq}",
                    "detections": len(gt.detections),
                    "k": k,
                    "solver": "ILP (fast, exact)" if solver == "fast" else "greedy",
                    "seconds": round(seconds, 3),
                    "objective": result.objective,
                    "status": result.status,
                    **result.graph_size,
                    **{key: scores[key] for key in KEYS},
                }
                rows.append(row)
                print(_line(row), flush=True)
        for (ds, sq), paper in PAPER.items():
            if (ds, sq) == (dataset, seq):
                rows.append({"dataset": f"{ds} {sq}", "k": 10, "solver": "paper: ILP", **paper})
    # the peer within this run: greedy against the exact ILP, same graph and costs
    for row in rows:
        if row["solver"] == "greedy":
            ilp = next(
                r
                for r in rows
                if r["dataset"] == row["dataset"]
                and r["k"] == row["k"]
                and r["solver"].startswith("ILP")
            )
            row["AOGM_ratio_greedy_to_ilp"] = row["AOGM"] / max(ilp["AOGM"], 1e-9)
    result = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "commit": commit(),
        "protocol": "GT detections (TRA markers painted over ST masks); default normalised "
        "costs, appear = disappear = 1, all nodes pinned; identity matching",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print()
    print(table(rows))
    print(f"\nwrote {args.out}")


def _fmt(value, spec: str = ".4g") -> str:
    return "-" if value is None else format(value, spec)


def _count(value) -> str:
    return "-" if value is None else str(int(value))


def _line(row: dict) -> str:
    return (
        f"{row['dataset']:>22} k={row['k']:<3} {row['solver']:>18} AOGM {_fmt(row['AOGM'])} "
        f"FP {_count(row['fp_edges'])} FN {_count(row['fn_edges'])} WS {_count(row['ws_edges'])} "
        f"div F1 {_fmt(row['division_f1'], '.3f')} ({row['seconds']:.2f} s)"
    )


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | k | linker | AOGM | FP edges | FN edges | WS edges | division F1 | "
        "pred / gt divisions | seconds |",
        "|" + "---|" * 10,
    ]
    for r in rows:
        divs = f"{_count(r.get('pred_divisions'))} / {_count(r.get('gt_divisions'))}"
        lines.append(
            f"| {r['dataset']} | {r['k']} | {r['solver']} | {_fmt(r.get('AOGM'))} | "
            f"{_count(r.get('fp_edges'))} | {_count(r.get('fn_edges'))} | "
            f"{_count(r.get('ws_edges'))} | "
            f"{_fmt(r.get('division_f1'), '.3f')} | {divs} | {_fmt(r.get('seconds'), '.2f')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
