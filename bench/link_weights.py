"""Do linker weights chosen on the training movies carry over to the test movies?

The exact linker's costs are z-scored per movie: an edge costs ``distance - w * association``
(in standard deviations), a track start or end ``appear`` (= ``disappear``); attrackt's
defaults (``LinkConfig``) are the choices this script made on 01. Here both are chosen on the
training movies (01) of the accuracy benchmark, separately for position-only linking (``w = 0``)
and for linking with the unsupervised model's associations, by the lowest geometric mean (over
datasets) of the mean AOGM over seeds; so is, apart, the division cost (``hyper_bias``, a
constant on every division hyper-edge) with the model at the default ``w`` and ``appear``; and
so is the border where track starts and ends are free (``LinkConfig.border_cells``, in typical
cell diameters, 0: nowhere), at every other default and with the guard on, as attrackt links
(where the guard turns the model off, on position alone); and so, linked the same way, is the
price of a division into unequal daughters (``LinkConfig.daughter_size_weight``, per unit of
``|ln(d1 / d2)|`` of their diameters; 0: sizes do not matter), and apart that price on
position alone (``LinkConfig.position_daughter_size_weight``), both on the real movies alone:
the synthetic generator halves a dividing cell exactly. Each choice is made at the
others' defaults. Then the choices, the defaults and position linking at ``appear = 1`` (the default
before) link the test movies (02).

It reads what ``bench/accuracy.py`` left (the stores of its ``prepare`` phase and the
associations of its ``gpu`` phase, every seed's unsupervised model on 01 and 02) and needs no
GPU:

    python bench/link_weights.py --carry .gpu/accuracy --gpu-results DIR [DIR ...]
"""

from __future__ import annotations

import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _accuracy_arms import Evaluation, link_config, open_run, run_arguments  # noqa: E402
from _common import (  # noqa: E402
    choose_by_geometric_mean,
    mean_sd,
    provenance,
    write_results,
)

from attrackt.link import LinkConfig  # noqa: E402

APPEAR = (0.1, 0.25, 0.5, 0.75, 1.0)
ASSOCIATION = (0.5, 1.0, 1.5)
DIVISION = (0.0, 0.25, 0.5, 0.75, 1.0)
BORDER = (0.0, 0.5, 1.0, 1.5, 2.0)
DAUGHTERS = (0.0, 0.5, 1.0, 2.0, 4.0)
DEFAULT = {"appear": LinkConfig.appear, "association": -LinkConfig.association_weight}
POSITION_DEFAULT = {"appear": LinkConfig.position_appear, "association": 0.0}


def score(
    arms: Evaluation,
    seq: str,
    associations,
    appear: float,
    association: float,
    division: float = LinkConfig.hyper_bias,
    border: float | None = None,
    daughters: float | None = None,
    position_daughters: float | None = None,
) -> float:
    """AOGM of sequence ``seq`` linked with these weights (``associations`` None: position; the
    start and end costs are ``appear`` either way; ``division``: the division hyper-edges'
    bias; ``daughters``, ``position_daughters``: the price of unequal daughters with the model and
    on position alone, None: the default). ``border`` (free starts and ends within
    that many cell diameters of the border): linked as attrackt does, guarded and at the default
    position costs; None: unguarded, at the default border."""
    sizes = {name: value for name, value in (("daughter_size_weight", daughters),
                                             ("position_daughter_size_weight", position_daughters))
             if value is not None}  # fmt: skip
    if border is not None:
        found = arms.score(seq, associations, -association, guard=True, border_cells=border,
                           hyper_bias=division, appear=appear, disappear=appear,
                           **sizes)  # fmt: skip
        return float(found["aogm"])
    starts = dict.fromkeys(("appear", "disappear", "position_appear", "position_disappear"), appear)
    found = arms.score(seq, associations, -association, hyper_bias=division, **starts, **sizes)
    return float(found["aogm"])


def model(arms: Evaluation, seed: int, seq: str):
    """The accuracy run's unsupervised associations (best checkpoint) of ``seq``."""
    found = arms.associations("unsupervised-best", seed, seq)
    if found is None:
        raise SystemExit(f"{arms.folder}: no unsupervised associations of {seq}, seed {seed}")
    return found


def grid(arm: str) -> list[dict[str, float]]:
    """The settings tried: ``appear`` alone for position, ``appear`` x ``association`` for the
    model, the division cost alone (at the model's defaults) for ``division``, the border alone
    for ``border``, the price of unequal daughters alone (linked as attrackt links) for
    ``daughters``."""
    if arm == "position":
        return [{"appear": a, "association": 0.0} for a in APPEAR]
    if arm == "division":
        return [dict(DEFAULT, division=d) for d in DIVISION]
    if arm == "border":
        return [dict(DEFAULT, border=b) for b in BORDER]
    if arm == "daughters":
        return [dict(DEFAULT, border=LinkConfig.border_cells, daughters=d) for d in DAUGHTERS]
    if arm == "position_daughters":
        return [
            dict(POSITION_DEFAULT, border=LinkConfig.border_cells, position_daughters=d)
            for d in DAUGHTERS
        ]
    return [{"appear": a, "association": w} for a, w in itertools.product(APPEAR, ASSOCIATION)]


def key(setting: dict[str, float]) -> str:
    return ",".join(f"{name}={value:g}" for name, value in setting.items())


def main() -> None:
    args = run_arguments(__doc__.splitlines()[0], "link_weights.json")
    measured = provenance()  # the tree as it was when the run began
    start = time.perf_counter()
    tuning = {
        "position": {},
        "model": {},
        "division": {},
        "border": {},
        "daughters": {},
        "position_daughters": {},
    }  # arm -> dataset -> setting -> AOGMs
    test = {}  # dataset -> arm -> AOGM per seed
    with tempfile.TemporaryDirectory() as tmp:
        gpu, evaluations = open_run(Path(args.carry), args.gpu_results, Path(tmp))
        seeds = gpu["seeds"]
        for name, arms in evaluations.items():
            for arm in tuning:
                with_model = arm not in ("position", "position_daughters")
                per = tuning[arm].setdefault(name, {})
                for seed in seeds if with_model else seeds[:1]:
                    assoc = model(arms, seed, "01") if with_model else None
                    for setting in grid(arm):
                        aogm = score(arms, "01", assoc, **setting)
                        per.setdefault(key(setting), []).append(aogm)
            print(f"{name}: tuned on 01 ({time.perf_counter() - start:.0f} s)", flush=True)
        chosen = {arm: choose_by_geometric_mean(_tuned_on(arm, tuning[arm])) for arm in tuning}
        settings = {
            "position appear 1": {"appear": 1.0, "association": 0.0},
            "position default": dict(POSITION_DEFAULT),
            "position chosen": _parse(chosen["position"][0]),
            "model default": dict(DEFAULT),
            "model chosen": _parse(chosen["model"][0]),
            "model division chosen": _parse(chosen["division"][0]),
            "attrackt no border": dict(DEFAULT, border=0.0),
            "attrackt border chosen": _parse(chosen["border"][0]),
            "attrackt daughters 0": dict(DEFAULT, border=LinkConfig.border_cells, daughters=0.0),
            "attrackt daughters chosen": _parse(chosen["daughters"][0]),
            "position daughters 0": dict(
                POSITION_DEFAULT, border=LinkConfig.border_cells, position_daughters=0.0
            ),
            "position daughters chosen": _parse(chosen["position_daughters"][0]),
        }
        for name, arms in evaluations.items():
            test[name] = {arm: [] for arm in settings}
            for seed in seeds:
                assoc = model(arms, seed, "02")
                for arm, setting in settings.items():
                    uses_model = arm.startswith(("model", "attrackt"))
                    test[name][arm].append(score(arms, "02", assoc if uses_model else None,
                                                 **setting))  # fmt: skip
    print(f"\nAOGM on 02, mean ± sd over seeds {seeds}")
    print(f"{'dataset':<24}" + "".join(f"{arm:>22}" for arm in settings))
    for name, arms in test.items():
        cells = []
        for values in arms.values():
            mean, sd = mean_sd(values)
            cells.append(f"{mean:.1f} ± {sd:.1f}")
        print(f"{name:<24}" + "".join(f"{c:>22}" for c in cells))
    for arm, (best, _) in chosen.items():
        print(f"chosen on 01 for {arm}: {best}")
    write_results(
        Path(args.json),
        {
            "benchmark": "link_weights",
            "provenance": measured,
            "gpu_provenance": gpu["provenance"],
            "gpu_commit": gpu.get("commit"),
            "datasets_from": gpu.get("datasets_from"),  # each dataset's GPU run (several)
            "seeds": seeds,
            "link_config": link_config().to_dict(),
            "grid": {
                "appear": APPEAR,
                "association": ASSOCIATION,
                "division": DIVISION,
                "border": BORDER,
                "daughters": DAUGHTERS,
                "default": DEFAULT,
                "position_default": POSITION_DEFAULT,
            },  # fmt: skip
            "tuning": tuning,
            "geometric_mean_aogm_01": {arm: scores for arm, (_, scores) in chosen.items()},
            "settings": settings,
            "test": test,
            "seconds": round(time.perf_counter() - start, 1),
        },
    )
    print(f"wrote {args.json}")


def _tuned_on(arm: str, per_dataset: dict) -> dict:
    """The datasets whose 01 movies choose ``arm``'s setting: for the price of unequal
    daughters the real ones only (the synthetic generator halves a dividing cell exactly, so
    its movies would reward any size prior); every dataset for the others."""
    if arm not in ("daughters", "position_daughters"):
        return per_dataset
    return {name: v for name, v in per_dataset.items() if not name.startswith("synthetic")}


def _parse(setting: str) -> dict[str, float]:
    return {k: float(v) for k, v in (part.split("=") for part in setting.split(","))}


if __name__ == "__main__":
    main()
