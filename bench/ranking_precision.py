"""How many of a confidence ranking's top cells did the solver link wrongly? The method's score
counting all of a cell's outgoing association mass, against the same score counting only the
mass on the solver's candidate links (attrackt's default), on the same model and solution.

Reads a work folder that ``bench/active_learning.py prepare`` filled (the base model's
associations, the detections and the ground truth of each dataset); CPU only.

    python bench/ranking_precision.py --work .gpu/ft2 [--budgets 10,100,250,1000]

Prints a table and writes ``bench/results/ranking_precision.json``: per dataset and budget the
wrongly linked cells among the top k for ``all_mass`` and ``candidate_links`` and their ratio,
with the number of wrongly linked cells in the whole movie.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import _finetune_jobs as fj
import numpy as np

from attrackt.active import RankConfig, rank_cells
from attrackt.data import Associations, Tracks
from attrackt.link import LinkConfig, link

MODES = ("all_mass", "candidate_links")


def wrong_cells(solver: Tracks, gt: Tracks) -> set[int]:
    """Cells whose children in ``solver`` differ from their children in ``gt``."""

    def children(tracks: Tracks) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for parent, child in tracks.edges.tolist():
            out.setdefault(parent, set()).add(child)
        return out

    ours, truth = children(solver), children(gt)
    ids = solver.detections.ids.tolist()
    return {i for i in ids if ours.get(i, set()) != truth.get(i, set())}


def measure(folder: Path, budgets: list[int]) -> dict:
    detections = fj.load_detections_npz(folder / "detections.npz")
    gt = Tracks.load(folder / "gt")
    associations = Associations.load(folder / "associations.parquet")
    config = LinkConfig(k=fj.METHOD_K)
    solver = link(detections, associations, None, config).tracks
    wrong = wrong_cells(solver, gt)
    result: dict = {"cells": len(detections), "wrongly_linked_cells": len(wrong)}
    for mode in MODES:
        candidates = config if mode == "candidate_links" else None
        ranking = rank_cells(detections, solver, associations, RankConfig(), candidates=candidates)
        ids = ranking["id"].to_numpy()
        result[mode] = {str(b): int(np.isin(ids[:b], list(wrong)).sum()) for b in budgets}
    result["ratio"] = {
        str(b): result["candidate_links"][str(b)] / max(result["all_mass"][str(b)], 1)
        for b in budgets
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--budgets", default="10,100,250,1000")
    parser.add_argument("--out", type=Path, default=fj.RESULTS / "ranking_precision.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    budgets = [int(b) for b in args.budgets.split(",")]
    plan = fj.load_plan(args.work)
    results = {name: measure(args.work / name, budgets) for name in plan["datasets"]}
    print(f"{'dataset':<20} {'top k':>6} {'all mass':>9} {'candidates':>11}  (wrongly linked)")
    for name, r in results.items():
        for b in budgets:
            print(
                f"{name:<20} {b:>6} {r['all_mass'][str(b)]:>9} {r['candidate_links'][str(b)]:>11}"
            )
        print(f"{name:<20} {'movie':>6} {r['wrongly_linked_cells']:>9}")
    fj.write_json(args.out, {"datasets": results, "machine": fj.machine()})


if __name__ == "__main__":
    main()
