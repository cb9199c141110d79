"""How the linker's weights converge when learned from answers (the structured SVM of
:mod:`attrackt.link.learn`), on the cases of ``bench/interactive.py``.

For each dataset and budget (confidence ranking, seed 0) the weights are learned from the
answers and the pseudo-labels, and every bundle iteration's objective, bound and gap is kept, with
the completion rounds' objectives and the weights before and after.

    python bench/ssvm_convergence.py --carry .gpu/interactive   # after interactive.py prepare
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, provenance, write_results  # noqa: E402
from interactive import BUDGETS, DATASETS, case_name, guarded_link_config  # noqa: E402


def main() -> None:
    from accuracy import load_scores

    from attrackt.data import Annotations, Detections
    from attrackt.link import learn_weights

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry", default=".gpu/interactive")
    parser.add_argument("--json", default=str(RESULTS / "ssvm_convergence.json"))
    args = parser.parse_args()
    carry = Path(args.carry)
    config = guarded_link_config()
    runs = {}
    for dataset in DATASETS:
        detections = Detections.load(carry / f"{dataset}.parquet")
        associations = load_scores(carry / f"{dataset}_base.npz", detections)
        for budget in BUDGETS:
            name = case_name(dataset, "confidence", budget, 0)
            answers = Annotations.load(carry / "cases" / f"{name}.jsonl")
            saved = np.load(carry / "cases" / f"{name}_pseudo.npz")
            result = learn_weights(
                detections, answers, associations, config,
                pseudo=(saved["parents"], saved["links"]),
            )  # fmt: skip
            runs[name] = {
                "dataset": dataset,
                "budget": budget,
                "converged": result.converged,
                "iterations": result.iterations,
                "seconds": round(result.seconds, 2),
                "initial": result.initial,
                "weights": result.weights,
                "rounds": result.rounds,
                "record": result.record,
                "sizes": result.sizes,
            }
            last = result.record[-1] if result.record else {}
            print(
                f"{name}: {result.iterations} iterations, converged {result.converged}, "
                f"gap {last.get('gap', float('nan')):.2g}, {result.seconds:.1f} s",
                flush=True,
            )
    write_results(
        Path(args.json),
        {
            "benchmark": "ssvm_convergence",
            "provenance": provenance(),
            "link_config": config.to_dict(),
            "protocol": "confidence ranking, seed 0, the answers and pseudo-labels of "
            "bench/interactive.py's cases; the base model's associations",
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
