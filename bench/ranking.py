"""Which confidence score finds the wrongly linked cells first, on the training movies (01)?

The method's score ``|sum_out A - sum_out S|`` against attrackt's, which scores the solver's
divisions against the model's own typical mass at a division (:mod:`attrackt.active`), on the
training movies of the accuracy benchmark (where that choice was made) with every seed's
unsupervised model: the base linking is the benchmark's (guarded); for each top-B of a ranking,
the wrongly linked cells in it (a swapped child included) and the AOGM left once those B cells'
answers are pinned. ``random`` is the expected count of a uniform ranking (no AOGM).

It reads what ``bench/accuracy.py`` left and needs no GPU:

    python bench/ranking.py --carry .gpu/accuracy --gpu-results DIR
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _accuracy_arms import link_config, open_run, run_arguments  # noqa: E402
from _common import mean_sd, provenance, write_results  # noqa: E402

BUDGETS = (10, 25, 100, 250, 1000)


def main() -> None:
    from attrackt import active
    from attrackt.evaluate import evaluate
    from attrackt.link import link
    from attrackt.link.candidates import candidate_links

    args = run_arguments(__doc__.splitlines()[0], "ranking.json")
    measured, start = provenance(), time.perf_counter()
    config = link_config(guard=True)
    scores = {  # score name -> the sequences whose divisions are calibrated (None: all)
        "method": [],
        "attrackt": None,
    }
    found: dict = {}  # dataset -> score -> {"wrong": {B: [per seed]}, "aogm": {B: [...]}}
    with tempfile.TemporaryDirectory() as tmp:
        gpu, evaluations = open_run(Path(args.carry), args.gpu_results, Path(tmp))
        seeds = gpu["seeds"]
        for name, arms in evaluations.items():
            store = arms.store
            detections = arms.detections("01")
            gt = store.tracks[store.select(["01"]).sequences[0]]
            askable = active.askable(detections)
            mine = found[name] = {s: {"wrong": {}, "aogm": {}} for s in [*scores, "random"]}
            for seed in seeds:
                assoc = arms.associations("unsupervised-best", seed, "01")
                base = link(detections, assoc, None, config)
                wrong = active.wrong_links(detections, base.tracks, gt) > 0
                trusted = [n for n, v in base.guard.sequences.items() if v.use]
                within = assoc.between(candidate_links(detections, config))
                for label, calibrated in scores.items():
                    score = active.confidence_scores(
                        detections, base.tracks, within, trusted if calibrated is None else []
                    )
                    rows = np.flatnonzero(askable)
                    tie = np.random.default_rng(seed).permutation(len(rows))
                    order = rows[np.lexsort((tie, -score[rows]))]
                    for budget in BUDGETS:
                        top = order[:budget]
                        mine[label]["wrong"].setdefault(budget, []).append(int(wrong[top].sum()))
                        answers = active.proofread(detections.ids[top], gt, max_gap=config.max_gap)
                        pinned = link(detections, assoc, answers, config).tracks
                        aogm = evaluate(pinned, gt, chota=False)["AOGM"]
                        mine[label]["aogm"].setdefault(budget, []).append(aogm)
                rate = float(wrong[askable].mean())
                for budget in BUDGETS:
                    expected = round(min(budget, int(askable.sum())) * rate, 2)
                    mine["random"]["wrong"].setdefault(budget, []).append(expected)
            print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"\n01, mean over seeds {seeds}: wrongly linked cells in the top B (AOGM once pinned)")
    print(f"{'dataset':<22}{'score':<10}" + "".join(f"{b:>18}" for b in BUDGETS))
    for name, by_score in found.items():
        for label, figures in by_score.items():
            cells = []
            for budget in BUDGETS:
                wrong = mean_sd(figures["wrong"][budget])[0]
                aogm = mean_sd(figures["aogm"].get(budget, []))[0]
                cells.append(f"{wrong:.1f}" + ("" if aogm is None else f" ({aogm:.1f})"))
            print(f"{name:<22}{label:<10}" + "".join(f"{c:>18}" for c in cells))
    write_results(
        Path(args.json),
        {
            "benchmark": "ranking",
            "provenance": measured,
            "gpu_provenance": gpu["provenance"],
            "gpu_commit": gpu.get("commit"),
            "seeds": seeds,
            "sequence": "01",
            "budgets": BUDGETS,
            "link_config": config.to_dict(),
            "datasets": found,
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
