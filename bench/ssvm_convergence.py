"""ILP weights learned from simulated answers (structured SVM): convergence and what it buys.

"GT detections" protocol on Fluo-N2DL-HeLa 02 and DIC-C2DH-HeLa 02 (CPU only). Associations from
a label-free source: ``distance`` (default: ``exp(-d / median d)`` over the candidate links, no
model), ``none`` (position only), or a parquet file per dataset (``--associations
Fluo-N2DL-HeLa/02=path.parquet``). For each ranking strategy, budget k and seed, the simulated
proof-reader (the ground truth) answers the top k cells; the movie is linked with the answers
pinned at the default weights ("pin") and with the answers pinned at the weights
:func:`attrackt.link.learn.learn_weights` learns from them ("learned"). Scored with
:func:`attrackt.evaluate.evaluate` (AOGM, identity matching) and by the wrong links among the cells
nobody answered (``outside``: predicted links from unanswered cells not in the ground truth plus
ground-truth links from unanswered cells not predicted). A confidence ranking does not depend on
the seed (its scores are continuous), so it runs with the first seed only.

    ATTRACKT_DATA=/path/to/shared/data python bench/ssvm_convergence.py

Prints a table and writes ``bench/results/ssvm_convergence.json`` whole (command line, commit,
machine, seeds, every run with its convergence record).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from attrackt.active import RankConfig, proofread, rank_cells, select
from attrackt.data import Annotations, Associations, Detections, Tracks
from attrackt.evaluate import evaluate
from attrackt.io.ctc import gt_detections
from attrackt.link import LinkConfig, link
from attrackt.link.candidates import candidate_links
from attrackt.link.learn import LearnConfig, learn_weights

REPO = Path(__file__).resolve().parents[1]
DATASETS = ("Fluo-N2DL-HeLa/02", "DIC-C2DH-HeLa/02")
SCORES = ("AOGM", "fp_edges", "fn_edges", "ws_edges", "division_f1")


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=REPO, capture_output=True)
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def distance_associations(detections: Detections, config: LinkConfig) -> Associations:
    """``exp(-d / median d)`` on every candidate link: an association with no model."""
    pairs = candidate_links(detections, config)
    pos = detections.positions()
    rows = detections.rows_of(pairs.ravel()).reshape(-1, 2)
    d = np.linalg.norm(pos[rows[:, 0]] - pos[rows[:, 1]], axis=1)
    dt = detections.times[rows[:, 1]] - detections.times[rows[:, 0]]
    return Associations.from_arrays(pairs[:, 0], pairs[:, 1], np.exp(-d / np.median(d)), dt)


def associations_for(name: str, detections: Detections, source: dict[str, str], config):
    kind = source.get(name, source.get("*", "distance"))
    if kind == "none":
        return None
    if kind == "distance":
        return distance_associations(detections, config)
    return Associations.load(kind)


def outside_errors(tracks: Tracks, gt: Tracks, answered: np.ndarray) -> dict[str, int]:
    """Wrong links from the cells nobody answered: predicted but not true, true but missed."""

    def links(t: Tracks) -> set[tuple[int, int]]:
        e = t.edges[~np.isin(t.edges[:, 0], answered)]
        return set(map(tuple, e.tolist()))

    pred, true = links(tracks), links(gt)
    return {"outside_fp": len(pred - true), "outside_fn": len(true - pred)}


def score(tracks: Tracks, gt: Tracks, answered: np.ndarray) -> dict:
    scores = evaluate(tracks, gt, chota=False)
    out = {key: scores[key] for key in SCORES} | outside_errors(tracks, gt, answered)
    out["outside"] = out["outside_fp"] + out["outside_fn"]
    return out


def learn_config(args: argparse.Namespace) -> LearnConfig:
    return LearnConfig(regularizer=args.regularizer, subgraph=not args.whole)


def run_dataset(name: str, args, data: Path, source: dict[str, str]) -> list[dict]:
    dataset, seq = name.split("/")
    gt = gt_detections(data / dataset, seq, images=False).tracks
    detections = gt.detections
    config = LinkConfig(k=args.k)
    learn = learn_config(args)
    assoc = associations_for(name, detections, source, config)
    base = link(detections, assoc, None, config).tracks
    rows = [{"dataset": name, "strategy": "-", "budget": 0, "seed": None}]
    rows[0]["pin"] = score(base, gt, np.zeros(0, np.int64))
    print(f"{name}: {len(detections)} detections, no answers: AOGM {rows[0]['pin']['AOGM']}")
    for strategy in args.strategies:
        seeds = args.seeds if strategy == "random" else args.seeds[:1]
        for seed in seeds:
            rank = RankConfig(strategy, seed)
            ranking = rank_cells(detections, base, assoc, rank, gt=gt, candidates=config)
            for budget in args.budgets:
                asked = select(ranking, budget)
                answers = proofread(asked, gt, Annotations())
                start = time.perf_counter()
                pinned = link(detections, assoc, answers, config).tracks
                pin_seconds = time.perf_counter() - start
                result = learn_weights(detections, answers, assoc, config, learn)
                start = time.perf_counter()
                learned = link(detections, assoc, answers, result.config).tracks
                learned_seconds = time.perf_counter() - start
                row = {
                    "dataset": name,
                    "strategy": strategy,
                    "budget": budget,
                    "seed": seed,
                    "pin": score(pinned, gt, asked) | {"link_seconds": pin_seconds},
                    "learned": score(learned, gt, asked) | {"link_seconds": learned_seconds},
                    "learn": {k: v for k, v in result.to_dict().items() if k != "config"},
                }
                rows.append(row)
                print(_line(row), flush=True)
    return rows


def summary(rows: list[dict]) -> list[dict]:
    """Means over seeds per dataset, strategy and budget."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        if r["budget"]:
            groups.setdefault((r["dataset"], r["strategy"], r["budget"]), []).append(r)
    out = []
    for (dataset, strategy, budget), runs in groups.items():

        def mean(*path: str, runs: list[dict] = runs) -> float:
            values = []
            for r in runs:
                v = r
                for p in path:
                    v = v[p]
                values.append(v)
            return float(np.mean(values))

        out.append(
            {
                "dataset": dataset,
                "strategy": strategy,
                "budget": budget,
                "runs": len(runs),
                "AOGM_pin": mean("pin", "AOGM"),
                "AOGM_learned": mean("learned", "AOGM"),
                "outside_pin": mean("pin", "outside"),
                "outside_learned": mean("learned", "outside"),
                "division_f1_pin": mean("pin", "division_f1"),
                "division_f1_learned": mean("learned", "division_f1"),
                "iterations": mean("learn", "iterations"),
                "rounds": float(np.mean([len(r["learn"]["rounds"]) for r in runs])),
                "converged": all(r["learn"]["converged"] for r in runs),
                "learn_seconds": mean("learn", "seconds"),
            }
        )
    return out


def _line(row: dict) -> str:
    p, q, lr = row["pin"], row["learned"], row["learn"]
    return (
        f"{row['dataset']:>18} {row['strategy']:>10} k={row['budget']:<4} seed={row['seed']} "
        f"AOGM pin {p['AOGM']:.1f} learned {q['AOGM']:.1f}; outside errors {p['outside']} -> "
        f"{q['outside']}; {lr['iterations']} iterations, {len(lr['rounds'])} rounds, "
        f"{lr['seconds']:.1f} s{'' if lr['converged'] else ' (not converged)'}"
    )


def trace(row: dict) -> str:
    """One run's convergence: per bundle iteration, the upper bound at its weights, the best so
    far, the lower bound and the gap; a new completion round starts where ``round`` changes."""
    lines = [
        f"convergence of {row['dataset']} {row['strategy']} k={row['budget']} seed={row['seed']}:",
        "round iteration   objective        best       lower        gap  seconds",
    ]
    for r in row["learn"]["record"]:
        lines.append(
            f"{r['round']:>5} {r['iteration']:>9} {r['objective']:>11.4f} {r['best']:>11.4f} "
            f"{r['lower']:>11.4f} {r['gap']:>10.2e} {r['seconds']:>8.2f}"
        )
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    lines = [
        "| dataset | ranking | k | runs | AOGM pin | AOGM pin + learned | outside errors pin | "
        "outside errors learned | div F1 pin | div F1 learned | iterations | rounds | "
        "learn s |",
        "|" + "---|" * 13,
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['strategy']} | {r['budget']} | {r['runs']} | "
            f"{r['AOGM_pin']:.1f} | {r['AOGM_learned']:.1f} | {r['outside_pin']:.1f} | "
            f"{r['outside_learned']:.1f} | {r['division_f1_pin']:.3f} | "
            f"{r['division_f1_learned']:.3f} | {r['iterations']:.1f} | {r['rounds']:.1f} | "
            f"{r['learn_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--budgets", default="10,100,250")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strategies", default="random,confidence")
    parser.add_argument(
        "--associations",
        action="append",
        default=[],
        help="distance (default), none, or DATASET/SEQ=path.parquet (repeatable)",
    )
    parser.add_argument("--k", type=int, default=LinkConfig().k, help="candidate neighbours")
    parser.add_argument("--regularizer", type=float, default=LearnConfig().regularizer)
    parser.add_argument(
        "--whole", action="store_true", help="learn on the whole problem, not the sub-graph"
    )
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "ssvm_convergence.json"
    )
    args = parser.parse_args()
    args.budgets = [int(v) for v in args.budgets.split(",")]
    args.seeds = [int(v) for v in args.seeds.split(",")]
    args.strategies = args.strategies.split(",")
    source = dict(a.split("=", 1) if "=" in a else ("*", a) for a in args.associations)
    logging.basicConfig(level=logging.WARNING)
    env = os.environ.get("ATTRACKT_DATA")
    data = Path(env) if env else REPO.parent / "shared" / "data"
    start = time.perf_counter()
    rows = [r for name in args.datasets.split(",") for r in run_dataset(name, args, data, source)]
    means = summary(rows)
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "commit": commit(),
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
        },
        "seeds": args.seeds,
        "protocol": (
            "GT detections (TRA markers painted over ST masks); answers from the ground truth for "
            "the top k of a ranking (confidence: first seed only); linked with the answers pinned "
            "at the default weights (pin) and at the learned ones (learned); AOGM by identity "
            "matching; outside = wrong links among unanswered cells (FP + FN)"
        ),
        "associations": source or {"*": "distance"},
        "link_config": LinkConfig(k=args.k).to_dict(),
        "learn_config": {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in learn_config(args).__dict__.items()
        },
        "seconds": time.perf_counter() - start,
        "summary": means,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    for name in args.datasets.split(","):
        runs = [r for r in rows if r["dataset"] == name and r["budget"]]
        print()
        print(trace(max(runs, key=lambda r: (r["learn"]["iterations"], r["budget"]))))
    print()
    print(table(means))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
