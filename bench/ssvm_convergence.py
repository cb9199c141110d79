"""How the linker's weights converge when learned from answers (the structured SVM of
:mod:`attrackt.link.learn`), on the cases of ``bench/interactive.py``.

For each dataset and budget (confidence ranking, seed 0) the weights are learned from the
answers and the pseudo-labels, and every bundle iteration's objective, bound and gap is kept, with
the completion rounds' objectives and the weights before and after. The learning itself is
measured: without the held-out check (``LearnConfig(check_fraction=0)``), which would keep the
starting weights without learning from every answer where the held-out answers disagree.

    python bench/ssvm_convergence.py --carry .gpu/interactive   # after interactive.py prepare
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, provenance, write_results  # noqa: E402
from interactive import BUDGETS, DATASETS, case_inputs, case_name, guarded_link_config  # noqa: E402


def learn_case(carry: str, store: str, dataset: str, budget: int) -> dict:
    """Learn the weights of one case (confidence ranking, seed 0) and keep how it went."""
    from accuracy import load_scores

    from attrackt.data import Detections
    from attrackt.link import learn_weights
    from attrackt.link.learn import LearnConfig

    config = guarded_link_config()
    folder = Path(carry)
    detections = Detections.load(folder / f"{dataset}.parquet")
    associations = load_scores(folder / f"{dataset}_base.npz", detections)
    name = case_name(dataset, "confidence", budget, 0)
    _, answers, pseudo = case_inputs(folder, Path(store), name)  # as interactive.py scores it
    unchecked = LearnConfig(check_fraction=0)
    result = learn_weights(detections, answers, associations, config, unchecked, pseudo=pseudo)
    last = result.record[-1] if result.record else {}
    print(
        f"{name}: {result.iterations} iterations, converged {result.converged}, "
        f"gap {last.get('gap', float('nan')):.2g}, {result.seconds:.1f} s",
        flush=True,
    )
    return {
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--carry", default=".gpu/interactive")
    parser.add_argument("--stores", default=".gpu/accuracy", help="the ground truth's stores")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--json", default=str(RESULTS / "ssvm_convergence.json"))
    args = parser.parse_args()
    cases = [(d, b) for d in DATASETS for b in BUDGETS]
    with ProcessPoolExecutor(args.processes) as pool:
        futures = [
            pool.submit(learn_case, args.carry, str(Path(args.stores) / f"{d}.npz"), d, b)
            for d, b in cases
        ]
        found = [f.result() for f in futures]
    runs = {case_name(d, "confidence", b, 0): r for (d, b), r in zip(cases, found, strict=True)}
    write_results(
        Path(args.json),
        {
            "benchmark": "ssvm_convergence",
            "provenance": provenance(),
            "link_config": guarded_link_config().to_dict(),
            "protocol": "confidence ranking, seed 0, the answers (within the linker's reach) and "
            "pseudo-labels of bench/interactive.py's cases; the base model's associations",
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
