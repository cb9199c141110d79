"""What learning from answers adds beyond pinning them: HeLa 02 and DIC 02.

A simulated proof-reader (the ground truth) answers the top ``B`` cells of a ranking of the base
model's linking; each answer pins that cell's children. Arms, per ranking and budget:

- ``pin``: link again with the answers pinned (the base model's associations);
- ``pin+lora``: fine-tune on the answers (LoRA adapters, or every weight: ``gpu --full``),
  predict, and link with the answers pinned, with what attrackt's fine-tuning gives
  (:func:`attrackt.link.held_out.check_associations`; runs whose ``held_out_rule`` records
  ``tuned_share``: the mean of the base and the fine-tuned model's associations, unless it
  links the held-out cells worse; runs before: the fine-tuned model where it linked them
  better);
- ``pin+ssvm``: learn the linker's cost weights from the answers (structured SVM,
  :mod:`attrackt.link.learn`, bounded by ``LearnConfig.max_seconds``; ``checks.weights.timed_out``
  says where the bound stopped it), then link with the answers pinned;
- ``pin+both``: both;
- ``pin+ssvm+pseudo`` (confidence ranking only): the weights learned from the answers and the
  pseudo-labels of fine-tuning. An ablation found on the test movie: on HeLa 02 the weights
  learned from 100 answers alone favoured divisions everywhere; on the training movies (01) the
  pseudo-labels did not help, so the default learns from the answers alone.
- ``pin+lora-unchecked``: the fine-tuned model's associations alone, unchecked;
- ``pin+lora-mix``: the mean of the base and the fine-tuned model's associations, unchecked.
- ``pin+lora-free``: the fine-tuned model where it links the held-out cells better with no other
  answer pinned (a check with more errors to count: with the other answers pinned, the
  held-out cells are rarely linked wrong).

Rankings: ``confidence`` (the method's), ``random`` and ``oracle`` (every cell the base
linking gets wrong, a swapped child included, first). Figures: AOGM of the whole movie, and
``errors_outside``: wrong links (false and missed, by identity) that leave cells nobody
answered; the learning's steps and seconds. Seeds vary the ranking's tie-breaks (random: the
order) and the fine-tuning's randomness; the base model is the accuracy benchmark's seed-0
unsupervised model of that dataset (``bench/accuracy.py``).

Fine-tuning has the unsupervised term (the Attrackt loss, weight :data:`UNSUPERVISED_WEIGHT`)
where the accuracy run kept the base model's embedding of 02 (in the dataset's tar; in runs
before, ``DATASET_embedding.npz`` beside ``DATASET.pt``); without one, the supervised,
pseudo-label and transitive terms only (as in an earlier run). A fixed step plan for every case.

    python bench/interactive.py prepare --carry .gpu/interactive --base DIR   # CPU
    PYTHONPATH=src python3 bench/interactive.py gpu --carry .gpu/interactive --out $OUT
    python bench/interactive.py evaluate --carry .gpu/interactive --gpu-results DIR   # CPU

``evaluate`` keeps each task's figures under ``CARRY/evaluated`` (delete it after changing the
code): a stopped run goes on where it was, ``--arms pin,pin+lora`` scores the linking-only arms
of every case first, and ``--cached-only`` writes the JSON from the kept figures alone (a run
cut short; the tasks not scored are listed in ``unscored``). ``gpu --select
confidence:100,random:250`` fine-tunes only those rankings and budgets (a call that would not
fit the device's time); ``evaluate --gpu-results A B`` takes each case from the last run that
fine-tuned it; ``gpu --lr --max-steps`` set the fine-tuning's learning rate and step cap (in
the JSON's ``finetune``; ``--supervised-weight`` and ``--full`` the answers' weight and LoRA or
every weight); ``prepare --rankings --budgets`` prepare a subset of the cases; ``prepare
--sequence 01`` the cases of the training movie, to choose a recipe on; ``evaluate --no-guard``
links every arm with the model's associations (the guard links the training movie 01 of HeLa on
position alone, which hides what learning does to the model).

Every learner holds a quarter of each case's answered cells out (``FinetuneConfig`` and
``LearnConfig``'s ``check_fraction``) and what it learned is used only where it links those
cells better (by ``MIN_GAIN`` cells since 7df11f7, by one before), with the other answers
pinned (:mod:`attrackt.link.held_out`); each arm's
``kept`` says what was used, per seed (``base``/``tuned`` for the model, ``start``/``learned``
for the weights), and ``checks`` the checks' counts (cells held out, how many of them were
linked wrong before and after the learning; the weights' ``after``: learned from the other
answers, before they are learned again from every answer).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shutil
import sys
import tarfile
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _jobs  # noqa: E402
from _common import RESULTS, mean_sd, provenance, write_results  # noqa: E402
from accuracy import base_embedding, link_config, load_scores, save_scores  # noqa: E402

log = logging.getLogger("interactive")

DATASETS = ("Fluo-N2DL-HeLa", "DIC-C2DH-HeLa")
RANKINGS = ("confidence", "random", "oracle")
BUDGETS = (10, 100, 250, 1000)
ARMS = ("pin", "pin+lora", "pin+ssvm", "pin+both")
PSEUDO_ARM = "pin+ssvm+pseudo"
#: the fine-tuned model used whatever the held-out check says (what the check holds back)
UNCHECKED_ARM = "pin+lora-unchecked"
#: the mean of the base and the fine-tuned model's associations, unchecked (a milder update)
MIX_ARM = "pin+lora-mix"
#: the fine-tuned model where it links the held-out cells better with no other answer pinned
FREE_ARM = "pin+lora-free"
#: the arms beyond the issue's four
EXTRA_ARMS = (PSEUDO_ARM, UNCHECKED_ARM, MIX_ARM, FREE_ARM)
#: the associations each fine-tuned arm links with (the others: the base model's)
SOURCES = {
    "pin+lora": "lora", "pin+both": "lora", UNCHECKED_ARM: "unchecked", MIX_ARM: "mix",
    FREE_ARM: "free",
}  # fmt: skip
#: the fine-tuning plan of every case: the method's 100 steps per answered cell, capped
STEPS_PER_CELL, MIN_STEPS, MAX_STEPS = 100, 100, 200
#: the fine-tuning's learning rate (``gpu --lr``)
LR = 1e-4
#: the unsupervised term's weight where the base model's embedding was kept (the method's)
UNSUPERVISED_WEIGHT = 1.0


def case_name(dataset: str, ranking: str, budget: int, seed: int) -> str:
    return f"{dataset}_{ranking}_{budget}_s{seed}"


def guarded_link_config(guard: bool = True):
    """How every arm links: the benchmark's linker with the label-free guard (attrackt's
    default; ``guard=False``: the model's associations are always used)."""
    return dataclasses.replace(link_config(), guard=guard)


# --------------------------------------------------------------------------------------------
# phase 1: prepare (CPU)
# --------------------------------------------------------------------------------------------


def _base_member(base: Path, dataset: str, member: str, read):
    """``read(path)`` of ``member`` of the dataset's tars in the accuracy run's output ``base``
    (None where none holds it)."""
    for part in sorted(base.glob(f"{dataset}*.tar")):
        with tarfile.open(part) as tar, tempfile.TemporaryDirectory() as tmp:
            if member in tar.getnames():
                tar.extract(member, tmp, filter="data")
                return read(Path(tmp) / member)
    return None


def _base_associations(base: Path, dataset: str, detections, sequence: str):
    """The accuracy run's seed-0 unsupervised associations of ``sequence``."""
    member = f"assoc_unsupervised-best_s0_{sequence}.npz"
    found = _base_member(base, dataset, member, lambda path: load_scores(path, detections))
    if found is None:
        raise SystemExit(f"{base}: no {member} for {dataset}")
    return found


def _base_embedding(base: Path, dataset: str, detections, sequence: str) -> np.ndarray | None:
    """The embedding of ``sequence`` that the base model was trained with, in the rows of
    ``detections`` (None where the accuracy run did not keep it): in the dataset's tar, or
    (02, the runs before that) beside it as ``DATASET_embedding.npz``."""
    beside = base / f"{dataset}_embedding.npz"
    if beside.is_file() and sequence == "02":
        saved = dict(np.load(beside))
    else:
        member = base_embedding(sequence)
        saved = _base_member(base, dataset, member, lambda path: dict(np.load(path)))
    if saved is None:
        return None
    if not np.array_equal(saved["ids"], detections.ids):  # written from the same store
        raise SystemExit(f"{base}: the embedding's cells are not those of {dataset} {sequence}")
    return saved["embedding"].astype(np.float32)


def prepare_phase(args: argparse.Namespace) -> None:
    from attrackt.active import RankConfig, proofread, pseudo_labels, rank_cells, select
    from attrackt.data import Detections
    from attrackt.link import link
    from attrackt.store import Store

    carry, base = Path(args.carry), Path(args.base)
    (carry / "cases").mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    config = guarded_link_config()
    rankings, budgets = args.rankings.split(","), [int(b) for b in args.budgets.split(",")]
    sequence = args.sequence
    plan = {"seeds": seeds, "budgets": budgets, "rankings": rankings, "cases": [],
            "embedded": [], "datasets": args.datasets.split(","), "sequence": sequence}  # fmt: skip
    for dataset in plan["datasets"]:
        store = Store.load(Path(args.stores) / f"{dataset}.npz", masks=False).select([sequence])
        detections = Detections(store.detections.table, {}, store.detections.meta)
        embedding = _base_embedding(base, dataset, detections, sequence)
        if embedding is not None:  # fine-tuning gets the unsupervised term
            detections = detections.with_vectors(embedding=embedding)
            plan["embedded"].append(dataset)
        gt = store.tracks[store.sequences[0]]
        assoc = _base_associations(base, dataset, detections, sequence)
        shutil.copy(base / f"{dataset}.pt", carry / f"{dataset}.pt")
        detections.save(carry / f"{dataset}.parquet")
        save_scores(carry / f"{dataset}_base.npz", detections, assoc)
        tracks = link(detections, assoc, None, config).tracks
        tracks.save(carry / f"{dataset}_base_tracks")
        for ranking in rankings:
            for seed in seeds:
                order = rank_cells(
                    detections, tracks, assoc, RankConfig(ranking, seed), gt=gt,
                    candidates=config,
                )  # fmt: skip
                for budget in budgets:
                    name = case_name(dataset, ranking, budget, seed)
                    answers = proofread(select(order, budget), gt, max_gap=config.max_gap)
                    answers.save(carry / "cases" / f"{name}.jsonl")
                    parents, links = pseudo_labels(
                        detections, tracks, assoc, answers, 0.1, candidates=config
                    )
                    np.savez(carry / "cases" / f"{name}_pseudo.npz", parents=parents, links=links)
                    plan["cases"].append(
                        {"name": name, "dataset": dataset, "ranking": ranking,
                         "budget": budget, "seed": seed, "answered": len(answers.latest()),
                         "unsupervised": embedding is not None, "sequence": sequence}
                    )  # fmt: skip
        print(f"{dataset}: {len(detections)} cells, cases written", flush=True)
    _jobs.save_plan(carry, plan)


# --------------------------------------------------------------------------------------------
# phase 2: GPU
# --------------------------------------------------------------------------------------------


def finetune_config(
    seed: int,
    device: str,
    unsupervised: bool = False,
    lr: float = LR,
    max_steps: int = MAX_STEPS,
    supervised_weight: float = 1.0,
    full: bool = False,
):
    """Every case's fine-tuning; ``unsupervised``: with the unsupervised term; ``full``: every
    parameter trains (no LoRA adapters)."""
    from attrackt.finetune import FinetuneConfig
    from attrackt.train import TrainConfig

    return FinetuneConfig(
        steps_per_cell=STEPS_PER_CELL, min_steps=MIN_STEPS, max_steps=max_steps,
        unsupervised_weight=UNSUPERVISED_WEIGHT if unsupervised else 0.0,
        supervised_weight=supervised_weight,
        **({"lora": None} if full else {}),
        train=TrainConfig(
            lr=lr, batch_size=8, warmup_steps=0.05, checkpoint_every=0, checkpoint_seconds=0,
            log_every=25, seed=seed, device=device, progress=False,
        ),
    )  # fmt: skip


def run_case(carry: Path, out: Path, case: dict, device: str, recipe: dict) -> dict:
    """Fine-tune the base model on one case's answers, predict its movie, export the scores."""
    from attrackt.data import Annotations, Detections
    from attrackt.finetune import finetune_checkpoint
    from attrackt.predict import PredictConfig, predict_from_checkpoint

    name, dataset = case["name"], case["dataset"]
    detections = Detections.load(carry / f"{dataset}.parquet")
    answers = Annotations.load(carry / "cases" / f"{name}.jsonl")
    saved = np.load(carry / "cases" / f"{name}_pseudo.npz")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        result = finetune_checkpoint(
            carry / f"{dataset}.pt", detections, answers,
            finetune_config(case["seed"], device, case.get("unsupervised", False), **recipe),
            tmp, pseudo=(saved["parents"], saved["links"]), resume=False,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        predicted = predict_from_checkpoint(
            Path(tmp) / "model.pt", detections,
            PredictConfig(tta=False, device=device, progress=False),
        )  # fmt: skip
    save_scores(out / f"{name}.npz", detections, predicted)
    return {"steps": result.steps, "seconds": round(seconds, 2),
            "predict_seconds": round(predicted.meta["seconds"], 2),
            "held_out": result.held_out}  # fmt: skip


def worker(args: argparse.Namespace) -> None:
    carry, out = Path(args.carry), Path(args.export)
    out.mkdir(parents=True, exist_ok=True)
    deadline = float(args.deadline)
    records, recipe = {}, json.loads(args.recipe)
    for case in json.loads(args.cases):
        if time.time() > deadline:
            records[case["name"]] = {"status": "not run: out of time"}
            continue
        try:
            records[case["name"]] = {
                "status": "ok",
                **run_case(carry, out, case, args.device, recipe),
            }
        except Exception:
            records[case["name"]] = {"status": "error", "error": traceback.format_exc()[-2000:]}
        print(case["name"], records[case["name"]], flush=True)
        (out / f"records_{args.index}.json").write_text(json.dumps(records, indent=1))


def gpu_phase(args: argparse.Namespace) -> None:
    import torch

    carry, out = Path(args.carry).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = _jobs.load_plan(carry)
    gpus = torch.cuda.device_count()
    export = Path(tempfile.mkdtemp(prefix="interactive_"))
    start = time.time()
    deadline = start + 60 * args.wall_minutes
    queues: list[list[dict]] = [[] for _ in range(args.workers)]
    recipe = {"lr": args.lr, "max_steps": args.max_steps,
              "supervised_weight": args.supervised_weight, "full": args.full}  # fmt: skip
    chosen = set(args.select.split(",")) if args.select else None
    cases = [
        c for c in plan["cases"] if chosen is None or f"{c['ranking']}:{c['budget']}" in chosen
    ]
    # the budgets the criterion reads first: a run cut short has those
    cases.sort(key=lambda c: (c["budget"] not in (100, 250), c["ranking"] != "confidence"))
    heavy = [c for c in cases if c["dataset"] == DATASETS[0]]
    light = [c for c in cases if c["dataset"] != DATASETS[0]]
    half = max(1, min(args.workers - 1, round(args.workers * args.hela_share)))
    for k, case in enumerate(heavy):
        queues[k % half].append(case)
    for k, case in enumerate(light):
        queues[half + k % (args.workers - half)].append(case)
    workers = []
    for index, queue in enumerate(queues):
        options = {"--carry": carry, "--export": export, "--cases": json.dumps(queue),
                   "--deadline": deadline, "--device": args.device, "--index": index,
                   "--recipe": json.dumps(recipe)}  # fmt: skip
        # HeLa's queues on the first GPU, DIC's on the second
        gpu = (0 if index < half else 1) if gpus > 1 else None
        workers.append(
            _jobs.Process(
                id=f"worker{index}",
                command=_jobs.command(__file__, "worker", options),
                env=_jobs.worker_env(gpu),
                log=export / f"worker{index}.log",
            )
        )
    _jobs.run(workers, deadline + 90, start)  # a worker stops itself at the deadline
    records = {}
    for path in sorted(export.glob("records_*.json")):
        records.update(json.loads(path.read_text()))
    summary = {
        "provenance": provenance(), "commit": args.commit,
        "wall_seconds": round(time.time() - start, 1),
        "selected": sorted(chosen) if chosen else "all",
        "finetune": {"steps_per_cell": STEPS_PER_CELL, "min_steps": MIN_STEPS,
                     **recipe, "unsupervised_weight": UNSUPERVISED_WEIGHT,
                     "embedded": plan.get("embedded", []), "batch_size": 8,
                     "check_fraction": finetune_config(0, "cpu").check_fraction},
        "records": records,
    }  # fmt: skip
    _jobs.tar_files(out / "scores.tar", sorted(export.glob("*.npz")))
    _jobs.tar_files(out / "logs.tar", sorted(export.glob("worker*.log")))
    _jobs.save_summary(out, summary)
    done = sum(r.get("status") == "ok" for r in records.values())
    print(f"{done} of {len(plan['cases'])} cases fine-tuned in {summary['wall_seconds']} s")


# --------------------------------------------------------------------------------------------
# phase 3: evaluate (CPU)
# --------------------------------------------------------------------------------------------


def errors_outside(tracks, gt, answered: set[int]) -> int:
    """Wrong links (false and missed, by identity) whose parent nobody answered."""
    ours = {tuple(e) for e in tracks.edges.tolist() if e[0] not in answered}
    true = {tuple(e) for e in gt.edges.tolist() if e[0] not in answered}
    return len(ours ^ true)


def case_inputs(carry: Path, store: Path, name: str, sequence: str = "02") -> tuple:
    """The ground truth of the movie, the case's answers and its pseudo-labels ``(parents,
    links)`` (the fine-tuning's, also the weights'). The answers are given again within the
    linker's reach: cases prepared before the simulated proof-reader knew it hold a
    ground-truth gap link (DIC 02: 1412 -> 1452, 4 frames)."""
    from attrackt.active import proofread
    from attrackt.data import Annotations
    from attrackt.store import Store

    loaded = Store.load(store, masks=False).select([sequence])
    gt = loaded.tracks[loaded.sequences[0]]
    asked = Annotations.load(carry / "cases" / f"{name}.jsonl").latest()
    answers = proofread(sorted(asked), gt, max_gap=guarded_link_config().max_gap)
    saved = np.load(carry / "cases" / f"{name}_pseudo.npz")
    return gt, answers, (saved["parents"], saved["links"])


def score_case(
    carry: str,
    scores: str,
    case: dict,
    record: dict,
    arms: tuple[str, ...] = ARMS,
    guard: bool = True,
) -> dict:
    """The ``arms`` of one case: AOGM, errors outside the answered cells, steps, seconds
    (``guard``: linked with the guard on)."""
    from attrackt.data import Detections
    from attrackt.evaluate import evaluate
    from attrackt.link import learn_weights, link
    from attrackt.link.held_out import (
        MIN_CHECK,
        blend,
        check_associations,
        held_out_errors,
        learned_is_better,
    )

    carry_path = Path(carry)
    dataset, name = case["dataset"], case["name"]
    detections = Detections.load(carry_path / f"{dataset}.parquet")
    config = guarded_link_config(guard)
    gt, answers, pseudo = case_inputs(
        carry_path, Path(case["store"]), name, case.get("sequence", "02")
    )
    answered = set(answers.latest())
    sources = {"base": load_scores(carry_path / f"{dataset}_base.npz", detections)}
    tuned = Path(scores) / f"{name}.npz"
    kept, check_seconds = {"base": "", "lora": ""}, 0.0
    verdicts: dict[str, dict] = {}
    if record.get("status") == "ok" and tuned.is_file():
        start = time.perf_counter()
        sources["unchecked"] = load_scores(tuned, detections)
        sources["mix"] = blend(sources["base"], sources["unchecked"])
        sources["lora"], verdict = check_associations(
            detections, sources["base"], sources["unchecked"], answers,
            record.get("held_out", []), config,
        )  # fmt: skip
        kept["lora"], kept["unchecked"], kept["mix"] = verdict["kept"], "tuned", "mix"
        verdicts["lora"] = verdicts["mix"] = _counts(verdict, "wrong_base", "wrong_tuned")
        held = set(record.get("held_out", [])) & answered
        _, alone = answers.split(held)  # the held-out answers alone: nothing else pinned
        free = {
            key: held_out_errors(detections, sources[key], alone, held, config)
            for key in ("base", "unchecked")
        }
        better = len(held) >= MIN_CHECK and learned_is_better(free["base"], free["unchecked"])
        sources["free"] = sources["unchecked" if better else "base"]
        kept["free"] = "tuned" if better else "base"
        verdicts["free"] = {
            "held_out": len(held), "wrong_before": free["base"], "wrong_after": free["unchecked"]
        }  # fmt: skip
        check_seconds = time.perf_counter() - start
    out = {}
    for arm in arms:
        source = SOURCES.get(arm, "base")
        if source not in sources:
            continue
        start = time.perf_counter()
        weights, used = config, [kept[source]]
        checks = {"model": verdicts[source]} if source in verdicts else {}
        if arm not in ("pin", "pin+lora", UNCHECKED_ARM, MIX_ARM, FREE_ARM):
            extra = pseudo if arm == PSEUDO_ARM else None
            learned = learn_weights(detections, answers, sources[source], config, pseudo=extra)
            weights = learned.config
            used.append(learned.check["kept"])
            checks["weights"] = _counts(learned.check, "wrong_start", "wrong_learned")
            checks["weights"]["timed_out"] = learned.timed_out
        learn_seconds = time.perf_counter() - start + (check_seconds if source == "lora" else 0)
        tracks = link(detections, sources[source], answers, weights).tracks
        tuned_model = source != "base"
        steps = record.get("steps", 0) if tuned_model else 0
        seconds = (record.get("seconds", 0.0) if tuned_model else 0.0) + learn_seconds
        out[arm] = {
            "aogm": evaluate(tracks, gt, chota=False)["AOGM"],
            "errors_outside": errors_outside(tracks, gt, answered),
            "steps": steps,
            "seconds": round(seconds, 2),
            "kept": "+".join(filter(None, used)),
            "checks": checks,
        }
    return out


def _counts(verdict: dict, before: str, after: str) -> dict:
    """A held-out check's verdict as counts: cells held out, and how many of them the linking
    got wrong before and after the learning (absent where too few were held out)."""
    return {
        "held_out": verdict["held_out"],
        "wrong_before": verdict.get(before),
        "wrong_after": verdict.get(after),
    }


def _answers_key(carry: Path, case: dict) -> tuple:
    """What the arms without fine-tuning of ``case`` depend on: its dataset, answers and
    pseudo-labels."""
    from attrackt.data import Annotations

    answers = Annotations.load(carry / "cases" / f"{case['name']}.jsonl").latest()
    pseudo = np.load(carry / "cases" / f"{case['name']}_pseudo.npz")
    return (case["dataset"], tuple(sorted(answers.items())), pseudo["parents"].tobytes())


def evaluate_phase(args: argparse.Namespace) -> None:
    from attrackt.data import Tracks
    from attrackt.evaluate import evaluate
    from attrackt.io.jsonfile import write_json
    from attrackt.link.held_out import MIN_CHECK, MIN_GAIN, TUNED_SHARE
    from attrackt.store import Store

    carry, runs = Path(args.carry), [Path(r) for r in args.gpu_results]
    plan, summaries = _jobs.load_plan(carry), [_jobs.load_summary(r) for r in runs]
    # each case from the last run that fine-tuned it
    gpu = dict(summaries[-1], records={})
    for summary in summaries:
        gpu["records"].update(
            {n: r for n, r in summary["records"].items() if r.get("status") == "ok"}
        )
    scores = Path(tempfile.mkdtemp(prefix="interactive_scores_"))
    _jobs.untar([r / "scores.tar" for r in runs], scores)
    cases = [dict(c, store=str(Path(args.stores) / f"{c['dataset']}.npz")) for c in plan["cases"]]
    found: dict[str, dict] = {c["name"]: {} for c in cases}
    # the arms without fine-tuning depend on the answers alone: cases with the same answers
    # (a deterministic ranking's seeds) share one computation
    same: dict[tuple, list[str]] = {}
    for case in cases:
        same.setdefault(_answers_key(carry, case), []).append(case["name"])
    by_name = {c["name"]: c for c in cases}
    wanted = set(args.arms.split(",")) if args.arms else set(ARMS + EXTRA_ARMS)
    # linking-only arms first, the arms that learn weights after: a cut-short run has the
    # fast figures of every case
    tasks: list[tuple[list[str], dict, dict, tuple[str, ...]]] = []
    for learning in (False, True):
        for names in same.values():
            first = by_name[names[0]]
            arms = ("pin+ssvm",) + ((PSEUDO_ARM,) if first["ranking"] == "confidence" else ())
            tasks.append((names, first, {}, arms if learning else ("pin",)))
        for case in cases:
            record = gpu["records"].get(case["name"], {})
            arms = ("pin+both",) if learning else ("pin+lora", UNCHECKED_ARM, MIX_ARM, FREE_ARM)
            tasks.append(([case["name"]], case, record, arms))

    # the budgets and ranking the criterion reads first (100 and 250 cells, confidence)
    def priority(task: tuple) -> tuple[bool, bool, bool]:
        _, case, _, arms = task
        learns = arms[0] in ("pin+ssvm", "pin+both")
        return learns, case["budget"] not in (100, 250), case["ranking"] != "confidence"

    tasks.sort(key=priority)
    cache = Path(args.cache or carry / "evaluated")
    cache.mkdir(parents=True, exist_ok=True)
    failed: dict[str, str] = {}
    unscored: list[str] = []
    with ProcessPoolExecutor(args.processes) as pool:
        futures = {}
        for names, case, record, arms in tasks:
            arms = tuple(a for a in arms if a in wanted)
            if not arms:
                continue
            guard = "" if args.guard else "_no-guard"  # the same arms linked otherwise
            saved = cache / f"{case['name']}_{'_'.join(arms).replace('+', '-')}{guard}.json"
            if saved.is_file():
                for name in names:
                    found[name].update(json.loads(saved.read_text()))
                continue
            if args.cached_only:  # a task without a fine-tuned model has nothing to score
                if arms[0] in ("pin", "pin+ssvm") or record.get("status") == "ok":
                    unscored.append(saved.stem)
                continue
            task = (str(carry), str(scores), case, record, arms, args.guard)
            futures[pool.submit(score_case, *task)] = (names, saved, arms)
        for future in as_completed(futures):
            names, saved, arms = futures[future]
            try:
                result = future.result()
            except Exception as error:  # one case's failure is reported, not the run's end
                failed[saved.stem] = f"{type(error).__name__}: {error}"
                log.error("%s failed: %s", saved.stem, failed[saved.stem])
                continue
            for name in names:
                found[name].update(result)
            if set(result) == set(arms):  # a case not fine-tuned yet is scored again later
                write_json(saved, result)
            print(names, result, flush=True)
    datasets: dict = {}
    for case in cases:
        arms = found[case["name"]]
        budget = datasets.setdefault(case["dataset"], {}).setdefault(case["ranking"], {})
        for arm, figures in arms.items():
            entry = budget.setdefault(str(case["budget"]), {}).setdefault(
                arm,
                {key: [] for key in ("aogm", "errors_outside", "steps", "seconds", "kept")}
                | {"checks": []},
            )
            for key in entry:  # figures kept by runs before "checks" lack it
                entry[key].append(figures.get(key, {}) if key == "checks" else figures[key])
    base, sequence = {}, plan.get("sequence", "02")
    for dataset in plan.get("datasets", DATASETS):
        store = Store.load(Path(args.stores) / f"{dataset}.npz", masks=False).select([sequence])
        tracks = Tracks.load(carry / f"{dataset}_base_tracks")
        base[dataset] = evaluate(tracks, store.tracks[store.sequences[0]], chota=False)["AOGM"]
    report = {
        "benchmark": "interactive",
        "provenance": provenance(),
        "gpu_provenance": gpu["provenance"],
        "gpu_commit": gpu.get("commit"),
        "gpu_runs": [
            {k: g.get(k) for k in ("provenance", "commit", "wall_seconds", "selected")}
            | {"cases": sorted(n for n, r in g["records"].items() if r.get("status") == "ok")}
            for g in summaries
        ],
        "seeds": plan["seeds"],
        "finetune": gpu["finetune"],
        "link_config": guarded_link_config(args.guard).to_dict(),
        "base_aogm": base,
        "sequence": sequence,
        "protocol": f"GT detections, movie {sequence} ({'test' if sequence == '02' else 'training'}"
        "); answers from the ground truth for the top "
        "B cells of each ranking of the base model's linking; every arm links with the answers "
        f"pinned and the guard {'on' if args.guard else 'off'}",
        "arms": sorted(wanted),
        "failed": failed,
        "unscored": unscored,
        "held_out_rule": {"min_check": MIN_CHECK, "min_gain": MIN_GAIN, "tuned_share": TUNED_SHARE},
        "not_run": sorted(c["name"] for c in cases if c["name"] not in gpu["records"]),
        "datasets": datasets,
    }
    out = Path(args.json) if args.json else RESULTS / "interactive.json"
    write_results(out, report)
    print_table(report)
    print(f"wrote {out}")


def print_table(report: dict) -> None:
    for dataset, rankings in report["datasets"].items():
        movie = f"{dataset} {report.get('sequence', '02')}"
        print(f"\n{movie} (base AOGM {report['base_aogm'][dataset]}); errors outside")
        for ranking, budgets in rankings.items():
            for budget, arms in budgets.items():
                cells = []
                for arm in ARMS:
                    if arm in arms:
                        m, s = mean_sd(arms[arm]["errors_outside"])
                        a, _ = mean_sd(arms[arm]["aogm"])
                        cells.append(f"{arm} {m:.1f}±{s:.1f} (AOGM {a:.1f})")
                print(f"  {ranking:>10} {budget:>5}: " + "; ".join(cells))


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="CPU: base linking, rankings, answers, pseudo-labels")
    p.add_argument("--carry", required=True)
    p.add_argument("--base", required=True, help="the accuracy benchmark's gpu output folder")
    p.add_argument("--stores", default=".gpu/accuracy", help="the accuracy benchmark's stores")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset")
    p.add_argument("--rankings", default=",".join(RANKINGS), help="comma-separated subset")
    p.add_argument("--budgets", default=",".join(map(str, BUDGETS)), help="comma-separated subset")
    p.add_argument(
        "--sequence", default="02", help="the movie: 02 (the test movie), or 01 to choose on"
    )
    g = sub.add_parser("gpu", help="GPU: fine-tune every case, predict, export the scores")
    g.add_argument("--carry", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--workers", type=int, default=8)
    g.add_argument("--wall-minutes", type=float, default=8.0)
    g.add_argument("--device", default="auto")
    g.add_argument("--commit", help="the commit the device runs (it has no git)")
    g.add_argument("--lr", type=float, default=LR, help="the fine-tuning's learning rate")
    g.add_argument(
        "--max-steps", type=int, default=MAX_STEPS, help="the most steps of a fine-tuning"
    )
    g.add_argument(
        "--supervised-weight", type=float, default=1.0, help="the answers' term's weight"
    )
    g.add_argument("--full", action="store_true", help="train every parameter (no LoRA)")
    g.add_argument(
        "--hela-share", type=float, default=0.5, help="the share of workers for HeLa's cases"
    )
    g.add_argument(
        "--select", help="fine-tune only these RANKING:BUDGET cases (comma-separated) [all]"
    )
    w = sub.add_parser("worker", help=argparse.SUPPRESS)
    for name in ("--carry", "--export", "--cases", "--deadline", "--device", "--index", "--recipe"):
        w.add_argument(name, required=True)
    e = sub.add_parser("evaluate", help="CPU: link and score every arm; write the JSON")
    e.add_argument("--carry", required=True)
    e.add_argument(
        "--gpu-results", required=True, nargs="+",
        help="the folder(s) the gpu phase filled; each case from the last that fine-tuned it",
    )  # fmt: skip
    e.add_argument("--stores", default=".gpu/accuracy")
    e.add_argument("--processes", type=int, default=2)
    e.add_argument("--json", help="where to write [bench/results/interactive.json]")
    e.add_argument("--arms", help=f"comma-separated arms [all: {ARMS + EXTRA_ARMS}]")
    e.add_argument("--cache", help="each task's figures, kept across runs [CARRY/evaluated]")
    e.add_argument(
        "--cached-only", action="store_true",
        help="write the JSON from the figures already kept in the cache; tasks not scored yet "
        "are listed in `unscored`",
    )  # fmt: skip
    e.add_argument(
        "--guard", action=argparse.BooleanOptionalAction, default=True,
        help="link every arm with the guard (--no-guard: always with the model's associations)",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    {"prepare": prepare_phase, "gpu": gpu_phase, "worker": worker,
     "evaluate": evaluate_phase}[args.phase](args)  # fmt: skip


if __name__ == "__main__":
    main()
