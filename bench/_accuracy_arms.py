"""How ``accuracy.py`` links and scores its arms.

The linker every arm uses (:func:`link_config`), the compact scores files the ``gpu`` phase
exports and the ``evaluate`` phase reads (:func:`save_scores`, :func:`load_scores`; also read by
``interactive.py`` and ``ssvm_convergence.py`` through ``accuracy``), the evaluation of every
arm of one dataset (:class:`Evaluation`) and its table (:func:`print_dataset`); for the scripts
that read an accuracy run's models (``link_weights.py``, ``ranking.py``), their command line
(:func:`run_arguments`) and that run's datasets (:func:`open_run`), each from the GPU run that
trained it (:func:`dataset_sources`, also used by ``accuracy.py evaluate``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import _jobs
import numpy as np
from _common import RESULTS, mean_sd

K = 10  # the method's candidate graph


def save_scores(path: Path, detections, associations) -> None:
    """The scores of ``associations`` on the linker's candidate links of ``detections``, in
    the candidates' order (float16, 0 where absent): compact, and all the linker reads."""
    from attrackt.link.candidates import candidate_links

    pairs = candidate_links(detections, link_config())
    scores = associations.lookup(pairs[:, 0], pairs[:, 1]).astype(np.float16)
    np.savez_compressed(path, scores=scores, checksum=pairs.sum(0))


def load_scores(path: Path, detections):
    """The associations :func:`save_scores` wrote (pairs recomputed from ``detections``)."""
    from attrackt.data import Associations
    from attrackt.link.candidates import candidate_links

    saved = np.load(path)
    pairs = candidate_links(detections, link_config())
    if len(pairs) != len(saved["scores"]) or not np.array_equal(pairs.sum(0), saved["checksum"]):
        raise RuntimeError(f"{path}: the candidate links differ from those it was saved with")
    keep = saved["scores"] != 0
    dt = (
        detections.times[detections.rows_of(pairs[keep, 1])]
        - detections.times[detections.rows_of(pairs[keep, 0])]
    )
    score = saved["scores"][keep].astype(np.float32)
    return Associations.from_arrays(pairs[keep, 0], pairs[keep, 1], score, dt)


def link_config(guard: bool = False):
    """The linker of every arm: the method's candidate graph and costs (the guard only where an
    arm says so)."""
    from attrackt.link.config import LinkConfig

    return LinkConfig(k=K, on_time_limit="warn", time_limit=600.0, guard=guard)


class Evaluation:
    """Links and scores every arm of one dataset."""

    def __init__(
        self,
        name: str,
        store,
        folder: Path,
        seeds: list[int],
        guard_config,
        motion=(),
        ensemble_size: int | None = None,
    ) -> None:
        """``motion``: the arm names of the unsupervised models trained with a motion loss;
        ``ensemble_size``: the ``ensemble`` arm averages this many consecutive seeds' models,
        one value per group, none where a seed's model is missing (None: all seeds, one
        value)."""
        self.name, self.store, self.folder, self.seeds = name, store, folder, seeds
        self.guard_config, self.motion = guard_config, tuple(motion)
        self.ensemble_size = ensemble_size or len(seeds)
        self.config = link_config()

    def detections(self, seq: str):
        return self.store.select([seq]).detections

    def associations(self, arm: str, seed: int, seq: str):
        path = self.folder / f"assoc_{arm}_s{seed}_{seq}.npz"
        return load_scores(path, self.detections(seq)) if path.is_file() else None

    def score(
        self,
        seq: str,
        associations=None,
        weight: float | None = None,
        guard: bool = False,
        **link_config,
    ) -> dict:
        """Link ``seq`` (with ``associations`` at ``weight``, None: the linker's default;
        ``link_config``: other settings of the linker) and score it against its ground truth."""
        from attrackt.evaluate import evaluate
        from attrackt.link import link

        if weight is not None:
            link_config = dict(
                link_config, association_weight=weight, hyper_association_weight=weight
            )
        config = dataclasses.replace(self.config, guard=guard, **link_config)
        gt = self.store.tracks[self.store.select([seq]).sequences[0]]
        result = link(self.detections(seq), associations, config=config)
        scores = evaluate(result.tracks, gt, chota=False)
        return {"aogm": scores["AOGM"], "division_f1": scores["division_f1"],
                "fp_edges": scores["fp_edges"], "fn_edges": scores["fn_edges"],
                "link_status": result.status}  # fmt: skip

    def guard(self, seq: str, associations):
        """The guard's verdict on ``associations`` of ``seq``, as :func:`attrackt.link.link`
        reaches it (the easy cells, then the links they change)."""
        from attrackt.link import guarded

        config = dataclasses.replace(self.config, guard=True)
        return guarded(self.detections(seq), associations, config, self.guard_config)[1]

    def run(self) -> dict:
        arms: dict[str, dict[str, list]] = {}

        def add(arm: str, scores: dict | None) -> None:
            entry = arms.setdefault(arm, {"aogm": [], "division_f1": []})
            for key in ("aogm", "division_f1"):
                entry[key].append(None if scores is None else scores[key])

        position = self.score("02")
        position_train = None
        tuning = []
        guards = []
        ensemble: dict = {}  # seed -> its unsupervised model's associations of 02
        for seed in self.seeds:
            add("position", position)
            emb = self.associations("embedding-distance", seed, "02")
            add("embedding", None if emb is None else self.score("02", emb, weight=+1.0))
            aff = self.associations("embedding-affinity", seed, "02")
            add("embedding_affinity", None if aff is None else self.score("02", aff))
            for arm in ("unsupervised", "supervised", "embedding_input", *self.motion):
                for checkpoint in ("best", "last"):
                    assoc = self.associations(f"{arm}-{checkpoint}", seed, "02")
                    label = arm if checkpoint == "best" else f"{arm}_last"
                    label = f"unsupervised_{label}" if arm in self.motion else label
                    add(label, None if assoc is None else self.score("02", assoc))
            unsup = self.associations("unsupervised-best", seed, "02")
            if unsup is None:
                add("guarded", None)
                continue
            ensemble[seed] = unsup
            verdict = self.guard("02", unsup)
            add("guarded", self.score("02", unsup, guard=True))
            guards.append(verdict.to_dict()["sequences"])
            train = self.associations("unsupervised-best", seed, "01")
            if train is not None:  # the training movie: what the guard's settings are tuned on
                check = self.guard("01", train)
                position_train = position_train or self.score("01")
                entry = {
                    "seed": seed,
                    "guard": check.to_dict()["sequences"],
                    "aogm_position": position_train["aogm"],
                    "aogm_unsupervised": self.score("01", train)["aogm"],
                }
                for arm in self.motion:
                    assoc = self.associations(f"{arm}-best", seed, "01")
                    if assoc is not None:
                        entry[f"aogm_unsupervised_{arm}"] = self.score("01", assoc)["aogm"]
                tuning.append(entry)
        from attrackt.data import Associations

        size = self.ensemble_size
        for start in range(0, len(self.seeds) - size + 1, size):
            group = [ensemble.get(seed) for seed in self.seeds[start : start + size]]
            complete = None not in group
            add("ensemble", self.score("02", Associations.mean(group)) if complete else None)
        return {"arms": arms, "guard": guards, "tuning": tuning}


def run_arguments(description: str, json_name: str) -> argparse.Namespace:
    """``--carry``, ``--gpu-results`` (an accuracy run's folders) and ``--json`` (default
    ``bench/results/JSON_NAME``); logging at warnings."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--carry", required=True, help="bench/accuracy.py's carry folder")
    parser.add_argument(
        "--gpu-results",
        required=True,
        nargs="+",
        help="its gpu phase's output folder(s); each dataset from the last that trained it",
    )
    parser.add_argument("--json", default=str(RESULTS / json_name))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return args


def load_runs(results: list) -> list[tuple[Path, dict]]:
    """Each ``--gpu-results`` folder with its gpu phase's summary; they must have run the same
    seeds."""
    runs = [(Path(r), _jobs.load_summary(Path(r))) for r in results]
    if any(summary["seeds"] != runs[0][1]["seeds"] for _, summary in runs):
        raise SystemExit("the --gpu-results folders ran different seeds; read them apart")
    return runs


def dataset_sources(runs: list[tuple[Path, dict]], names: list[str]) -> dict[str, int]:
    """Which of the gpu phase's ``runs`` (folder, summary) each dataset is taken from: the last
    whose every job of that dataset ended well, else the last that trained it at all."""
    source = {}
    for name in names:
        trained = [
            k
            for k, (_, summary) in enumerate(runs)
            if any(job.split("/")[0] == name for job in summary["jobs"])
        ]
        if not trained:
            raise SystemExit(f"no --gpu-results folder trained {name}")
        complete = [
            k
            for k in trained
            if all(r["status"] == "ok" for job, r in runs[k][1]["jobs"].items()
                   if job.split("/")[0] == name)
        ]  # fmt: skip
        source[name] = (complete or trained)[-1]
    return source


def open_run(carry: Path, results: list[Path], folder: Path) -> tuple[dict, dict[str, Evaluation]]:
    """The summary of an accuracy run's ``gpu`` phase (the first of ``results``; with several,
    ``"datasets_from"`` names each dataset's commit) and, per dataset of its plan that one of
    them trained, an :class:`Evaluation` of its associations (unpacked under ``folder``; no
    guard settings), taken from the last folder that trained it (:func:`dataset_sources`)."""
    from attrackt.store import Store

    plan = _jobs.load_plan(carry)
    runs = load_runs(results)
    trained = {job.split("/")[0] for _, summary in runs for job in summary["jobs"]}
    names = [name for name in plan["datasets"] if name in trained]
    source = dataset_sources(runs, names)
    gpu = dict(runs[0][1])
    if len(runs) > 1:
        gpu["datasets_from"] = {name: runs[source[name]][1].get("commit") for name in names}
    evaluations = {}
    for name in names:
        store = Store.load(carry / plan["datasets"][name]["store"], masks=False)
        path = runs[source[name]][0]
        _jobs.untar(sorted(path.glob(f"{name}*.tar")), folder / name)
        evaluations[name] = Evaluation(name, store, folder / name, gpu["seeds"], None)
    return gpu, evaluations


def print_dataset(name: str, found: dict) -> None:
    print(f"\n{name} (test 02, mean ± sd over seeds)")
    print(f"{'arm':<24}{'AOGM':>18}{'division F1':>18}")
    for arm, values in found["arms"].items():
        cells = []
        for key, digits in (("aogm", 1), ("division_f1", 3)):
            mean, sd = mean_sd(values[key])
            cells.append("-" if mean is None else f"{mean:.{digits}f} ± {sd:.{digits}f}")
        print(f"{arm:<24}{cells[0]:>18}{cells[1]:>18}")
    for entry in found["tuning"]:
        for seq, v in entry["guard"].items():
            print(
                f"tuning {seq} seed {entry['seed']}: guard use={v['use']}, disagreement "
                f"{v['disagreement']:.4f} (at most {v['upper']:.4f}), changes "
                f"{v.get('changes')}; AOGM position "
                f"{entry['aogm_position']}, "
                f"unsupervised {entry['aogm_unsupervised']}"
            )
