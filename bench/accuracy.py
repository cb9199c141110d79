"""Linking accuracy with learned associations against position only, on every benchmark movie.

Datasets: Fluo-N2DL-HeLa and DIC-C2DH-HeLa (CTC, "GT detections": TRA markers painted over the
silver truth), and two synthetic sets from ``attrackt.synthetic.PRESETS`` (``look-alike``:
cells that look alike; ``crowded``: many cells moving far per frame), each with a training
movie 01 and a test movie 02. Arms, all linked by the same exact ILP (k = 10 nearest candidates
backwards, every node pinned, the method's costs):

- ``position``: positions only;
- ``embedding``: the method's "+ AE embedding" baseline: the raw auto-encoder embedding distance
  as a cost (weight +1); ``embedding_affinity``: ``exp(-d / median d)`` as an affinity (-1);
- ``unsupervised``: the Attrackt loss on 01 + 02 (no labels), appearance out of the input;
- ``guarded``: ``unsupervised`` after the label-free guard (:mod:`attrackt.link.guard`);
- ``supervised``: trained on 01's ground truth, the same time budget;
- ablations: the last checkpoint instead of the best (lowest validation loss) for
  ``unsupervised`` and ``supervised``; ``embedding_input``: the unsupervised model with the
  appearance vector in its token input (best and last); ``ensemble``: the mean association of
  the seeds' unsupervised models (all seeds, or groups of ``--ensemble-size`` consecutive seeds:
  one value per group).

Each seed runs the whole chain (auto-encoder, models) with that seed. The guard's settings are
chosen on the training movies (01): the ``tuning`` block of the JSON holds, per dataset and
seed, the guard's verdict on 01 beside 01's AOGM with and without the model.

Three phases, so that the GPU work is one call and everything else runs on a CPU:

    python bench/accuracy.py prepare --carry .gpu/accuracy
    PYTHONPATH=src python3 bench/accuracy.py gpu --carry .gpu/accuracy --out $OUT
    python bench/accuracy.py evaluate --carry .gpu/accuracy --gpu-results DIR [DIR ...]

``gpu`` runs every (dataset, seed) chain as separate processes sharing the GPUs (HeLa on the
first, the others on the second when there are two), each training job with the same wall-clock
budget (``--minutes``), and exports the associations on the linker's candidate links and the
training records.

The job runner is ``_jobs.py``; how every arm is linked and scored, ``_accuracy_arms.py``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _jobs  # noqa: E402
from _accuracy_arms import (  # noqa: E402
    Evaluation,
    dataset_sources,
    link_config,
    load_runs,
    print_dataset,
    save_scores,
)
from _accuracy_arms import load_scores as load_scores  # noqa: E402 (re-exported)
from _common import RESULTS, choose_by_geometric_mean, provenance, write_results  # noqa: E402

log = logging.getLogger("accuracy")

#: name -> how to make it: a CTC dataset under the data folder, or a synthetic preset
DATASETS: dict[str, dict] = {
    "Fluo-N2DL-HeLa": {"ctc": "Fluo-N2DL-HeLa", "gpu": 0},
    "DIC-C2DH-HeLa": {"ctc": "DIC-C2DH-HeLa", "gpu": 1},
    "synthetic-look-alike": {"preset": "look-alike", "gpu": 1},
    "synthetic-crowded": {"preset": "crowded", "gpu": 1},
}


def base_embedding(sequence: str) -> str:
    """The export member holding the seed-0 auto-encoder's embedding of ``sequence`` (the
    fine-tuning base model's appearance), in its dataset's tar."""
    return f"embedding_s0_{sequence}.npz"


SYNTHETIC_SEEDS = {"01": 101, "02": 102}  # the synthetic movies' own seeds
CROP_PIXELS = 32
#: datasets whose unsupervised model is also trained with z in its input (the ablation)
Z_INPUT = ("Fluo-N2DL-HeLa", "DIC-C2DH-HeLa")
#: datasets whose seed-0 unsupervised model is exported for the fine-tuning benchmark
FINETUNING_BASE = ("Fluo-N2DL-HeLa", "DIC-C2DH-HeLa")
ARMS = ("position", "embedding", "unsupervised", "guarded", "supervised")
#: model sizes: the method's (the benchmark) and a small one for checking the phases on a CPU
MODELS = {
    "method": {},
    "small": dict(d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2),
}


# --------------------------------------------------------------------------------------------
# phase 1: prepare (CPU)
# --------------------------------------------------------------------------------------------


def prepare_phase(args: argparse.Namespace) -> None:
    from attrackt.prepare import PrepareConfig, prepare
    from attrackt.synthetic import preset

    carry = Path(args.carry)
    carry.mkdir(parents=True, exist_ok=True)
    plan = {"datasets": {}, "synthetic_seeds": SYNTHETIC_SEEDS}
    chosen = args.datasets.split(",") if args.datasets else list(DATASETS)
    field = {} if args.crop_cells is None else {"crop_cells": args.crop_cells}
    for name, spec in DATASETS.items():
        if name not in chosen:
            continue
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            if "ctc" in spec:
                sources = [Path(args.data) / spec["ctc"] / s for s in ("01", "02")]
                gt_detections = True
            else:
                for seq, seed in SYNTHETIC_SEEDS.items():
                    from attrackt.synthetic import generate

                    generate(preset(spec["preset"], seed=seed)).write(Path(tmp) / name, seq)
                sources = [Path(tmp) / name / s for s in ("01", "02")]
                gt_detections = False  # the synthetic TRA masks are the full masks
            # the crops' field in typical cell diameters: attrackt's default or --crop-cells
            config = PrepareConfig(gt_detections=gt_detections, crop_pixels=CROP_PIXELS, **field)
            store = prepare(sources, config)
        path = carry / f"{name}.npz"
        store.save(path)
        plan["datasets"][name] = {
            "store": path.name,
            "sequences": store.sequences,
            "detections": len(store.detections),
            "mib": round(path.stat().st_size / 2**20, 2),
            "crop_size": store.meta["crop_size"],
        }
        print(
            f"{name}: {len(store.detections)} detections, crops of {store.meta['crop_size']} px, "
            f"in {time.perf_counter() - start:.0f} s"
        )
    _jobs.save_plan(carry, plan)


# --------------------------------------------------------------------------------------------
# phase 2: GPU
# --------------------------------------------------------------------------------------------


def job_list(
    datasets: list[str],
    seeds: list[int],
    z_input: tuple[str, ...],
    motion_weights: tuple[float, ...] = (),
    supervised: bool = True,
    unsupervised: bool = True,
) -> list[dict]:
    """Every job: its name, what it needs first, and its GPU; ``motion_weights``: the
    unsupervised models also trained with a motion loss of that weight (the ablation);
    ``supervised``, ``unsupervised``: whether to train the supervised reference, the
    auto-encoder and the unsupervised models; ``z_input``: the datasets of the
    appearance-in-the-input ablation."""
    jobs = []
    for name in datasets:
        for seed in seeds:
            tag = f"{name}/s{seed}"
            # one dataset alone: its seeds spread over the GPUs
            gpu = DATASETS[name]["gpu"] if len(datasets) > 1 else seed
            chain = []
            if supervised:
                chain.append({"id": f"{tag}/supervised", "kind": "supervised", "needs": None})
            if unsupervised:
                chain.append({"id": f"{tag}/ae", "kind": "ae", "needs": None})
                chain.append({"id": f"{tag}/unsupervised", "kind": "unsupervised", "needs": "ae"})
            if unsupervised and name in z_input:
                chain.append({"id": f"{tag}/embedding_input", "kind": "z_input", "needs": "ae"})
            for weight in motion_weights if unsupervised else ():
                chain.append({"id": f"{tag}/{motion_arm(weight)}", "kind": "unsupervised",
                              "motion_weight": weight, "needs": "ae"})  # fmt: skip
            for job in chain:
                job.update(dataset=name, seed=seed, gpu=gpu)
            jobs += chain
    return jobs


def motion_arm(weight: float) -> str:
    """The arm (and file) name of the unsupervised model with a motion loss of ``weight``."""
    return f"motion{weight:g}"


def gpu_phase(args: argparse.Namespace) -> None:
    import torch

    carry, out = Path(args.carry).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or tempfile.mkdtemp(prefix="accuracy_")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    gpus = torch.cuda.device_count()
    seeds = [int(s) for s in args.seeds.split(",")]
    prepared = _jobs.load_plan(carry)["datasets"]  # the stores the carry folder holds
    datasets = args.datasets.split(",") if args.datasets else [n for n in DATASETS if n in prepared]
    missing = sorted(set(datasets) - set(prepared))
    if missing:
        raise SystemExit(f"{carry}: no store for {missing}; run prepare for them first")
    z_input = tuple(n for n in args.z_input.split(",") if n)
    motion = tuple(float(w) for w in args.motion_weights.split(",") if w)
    jobs = job_list(datasets, seeds, z_input, motion, args.supervised, args.unsupervised)
    start = time.time()
    deadline = start + 60 * args.wall_minutes
    budgets = {"ae": args.ae_minutes, "unsupervised": args.minutes, "supervised": args.minutes,
               "z_input": args.minutes}  # fmt: skip
    alloc = {"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}  # many jobs, one GPU
    processes = []
    for job in jobs:
        options = {"--carry": carry, "--work": work, "--job": json.dumps(job),
                   "--minutes": budgets[job["kind"]], "--device": args.device,
                   "--batch-size": args.batch_size, "--model": args.model}  # fmt: skip
        need = f"{job['id'].rsplit('/', 1)[0]}/{job['needs']}" if job["needs"] else None
        processes.append(
            _jobs.Process(
                id=job["id"],
                command=_jobs.command(__file__, "job", options),
                env=_jobs.worker_env(job["gpu"] % gpus if gpus else None, **alloc),
                log=work / "logs" / (job["id"].replace("/", "_") + ".log"),
                needs=need,
            )
        )
    done = _jobs.run(processes, deadline, start)
    records = {}
    for job in jobs:
        path = work / "records" / (job["id"].replace("/", "_") + ".json")
        records[job["id"]] = json.loads(path.read_text()) if path.is_file() else {}
        records[job["id"]]["status"] = done.get(job["id"], "not run")
    summary = {
        "provenance": provenance(),
        "commit": args.commit,
        "seeds": seeds,
        "budgets_minutes": budgets,
        "batch_size": args.batch_size,
        "model": args.model,
        "motion_weights": list(motion),
        "gpus": gpus,
        "wall_seconds": round(time.time() - start, 1),
        "jobs": records,
    }
    bundle(work, out, datasets, summary)
    for job_id, record in records.items():
        facts = {k: record.get(k) for k in ("status", "steps", "train_seconds", "best_step")}
        print(job_id, facts)


def bundle(work: Path, out: Path, datasets: list[str], summary: dict) -> None:
    """One tar per dataset (the largest split in two), the summary, the logs' tails."""
    export = work / "export"
    for name in datasets:
        files = sorted((export / name).glob("*")) if (export / name).is_dir() else []
        size = sum(f.stat().st_size for f in files)
        parts = 2 if size > 14 * 2**20 else 1
        for k in range(parts):
            suffix = f".{k}" if parts > 1 else ""
            _jobs.tar_files(out / f"{name}{suffix}.tar", files[k::parts])
    _jobs.tar_files(out / "logs.tar", sorted((work / "logs").glob("*.log")), tail=200_000)
    for kept in sorted((work / "checkpoints").glob("*.*")):  # the fine-tuning's base models
        (out / kept.name).write_bytes(kept.read_bytes())
    _jobs.save_summary(out, summary)


def autoencoder_config(seed: int, device: str, minutes: float, base_channels: int = 32):
    """The auto-encoder every benchmark run trains: batch 256, lr 1e-3, for ``minutes``."""
    from attrackt.embed import AutoEncoderConfig, EmbedConfig
    from attrackt.train import TrainConfig

    return EmbedConfig(
        model=AutoEncoderConfig(base_channels=base_channels),
        train=TrainConfig(
            steps=1000, batch_size=256, lr=1e-3, min_lr=3e-5, warmup_steps=0.02,
            val_every=0, checkpoint_every=0, log_every=50, seed=seed, device=device,
            progress=False,
        ),
        minutes=minutes,
    )  # fmt: skip


class Job:
    """One GPU job of one (dataset, seed): auto-encoder, or one association model."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.job = json.loads(args.job)
        self.carry, self.work = Path(args.carry), Path(args.work)
        self.name, self.seed = self.job["dataset"], int(self.job["seed"])
        self.folder = self.work / self.name / f"s{self.seed}"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.export = self.work / "export" / self.name
        self.export.mkdir(parents=True, exist_ok=True)
        self.minutes = float(args.minutes)

    def store(self):
        from attrackt.store import Store

        if self.job["kind"] in ("ae", "supervised"):
            return Store.load(self.carry / f"{self.name}.npz", masks=False)
        return Store.load(self.folder / "embedded.npz", masks=False)

    def ae(self) -> dict:
        from attrackt.embed import embed_store
        from attrackt.link.affinities import embedding_associations

        channels = 8 if self.args.model == "small" else 32
        config = autoencoder_config(self.seed, self.args.device, self.minutes, channels)
        run = self.folder / "ae"
        embedded = embed_store(self.store(), config, run, resume=False)
        embedded.save(self.folder / "embedded.npz")
        test = embedded.select(["02"]).detections
        if self.name in FINETUNING_BASE and self.seed == 0:  # the base model's appearance
            for seq in ("01", "02"):  # in the dataset's tar: $OUT holds 8 files
                cells = embedded.select([seq]).detections
                embedding = cells.vectors["embedding"].astype(np.float16)
                path = self.export / base_embedding(seq)
                np.savez_compressed(path, ids=cells.ids, embedding=embedding)
        for kind in ("distance", "affinity"):
            assoc = embedding_associations(test, link_config(), kind=kind)
            save_scores(self.export / f"assoc_embedding-{kind}_s{self.seed}_02.npz", test, assoc)
        return training_facts(run / "log.jsonl")

    def model(self, objective: str, z_input: bool) -> dict:
        from attrackt.model import TransformerConfig
        from attrackt.predict import PredictConfig, predict_from_checkpoint
        from attrackt.training import AssociationTrainConfig, train_association_model

        store = self.store()
        part = store.select(["01"]) if objective == "supervised" else store
        defaults = AssociationTrainConfig()
        config = AssociationTrainConfig(
            objective=objective,
            model=TransformerConfig(use_embedding=z_input, **MODELS[self.args.model]),
            motion_weight=float(self.job.get("motion_weight", 0.0)),
            train=dataclasses.replace(
                defaults.train, batch_size=self.args.batch_size, val_every=100,
                seed=self.seed, device=self.args.device, progress=False,
            ),
            minutes=self.minutes,
        )  # fmt: skip
        arm = self.job["id"].rsplit("/", 1)[1]
        run = self.folder / arm
        start = time.perf_counter()
        train_association_model(part.detections, part.edges(), config, run, resume=False)
        facts = {"train_seconds": round(time.perf_counter() - start, 1)}
        sequences = ["02"] if objective == "supervised" or z_input else ["01", "02"]
        for checkpoint in ("best", "last"):
            path = run / f"{checkpoint}.pt"
            if not path.is_file():
                continue
            for seq in sequences:
                test = store.select([seq]).detections
                predict = PredictConfig(device=self.args.device, progress=False)
                assoc = predict_from_checkpoint(path, test, predict)
                facts[f"predict_seconds_{seq}"] = round(assoc.meta["seconds"], 2)
                name = f"assoc_{arm}-{checkpoint}_s{self.seed}_{seq}.npz"
                save_scores(self.export / name, test, assoc)
        facts.update(training_facts(run / "log.jsonl"))
        if (run / "best.pt").is_file():  # whatever the rule that picked it
            from attrackt.checkpoints import load_checkpoint

            best = load_checkpoint(run / "best.pt")
            facts.update(best_step=best.step, best_val_loss=best.best_val_loss)
        base = self.name in FINETUNING_BASE and self.seed == 0 and arm == "unsupervised"
        if objective == "unsupervised" and base and (run / "best.pt").is_file():
            slim_checkpoint(run / "best.pt", self.work / "checkpoints" / f"{self.name}.pt")
        return facts

    def run(self) -> None:
        kind = self.job["kind"]
        record: dict = {"job": self.job, "minutes": self.minutes}
        start = time.perf_counter()
        try:
            if kind == "ae":
                record.update(self.ae())
            else:
                objective = "supervised" if kind == "supervised" else "unsupervised"
                record.update(self.model(objective, z_input=kind == "z_input"))
        except Exception:
            record["error"] = traceback.format_exc()
            print(record["error"], flush=True)
        record["seconds"] = round(time.perf_counter() - start, 1)
        path = self.work / "records" / (self.job["id"].replace("/", "_") + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=1))
        if "error" in record:
            raise SystemExit(1)


def slim_checkpoint(source: Path, target: Path) -> None:
    """The weights (bf16) and what loading needs, without the optimiser's state: the base
    model a later fine-tuning benchmark carries to the device (a few MiB)."""
    import torch

    state = torch.load(source, map_location="cpu", weights_only=True)
    state["model"] = {
        k: v.bfloat16() if v.is_floating_point() else v for k, v in state["model"].items()
    }
    for key in ("optimizer", "scheduler", "rng", "rng_ranks"):
        state.pop(key, None)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)


def training_facts(path: Path) -> dict:
    """Steps, the last loss and the validation curve, from a training log."""
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    train = [r for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    facts = {"steps": train[-1]["step"] if train else 0,
             "loss": train[-1]["loss"] if train else None}  # fmt: skip
    if val:
        facts["val_curve"] = val
    return facts


# --------------------------------------------------------------------------------------------
# phase 3: evaluate (CPU)
# --------------------------------------------------------------------------------------------


def evaluate_phase(args: argparse.Namespace) -> None:
    from attrackt.link.guard import GuardConfig
    from attrackt.store import Store

    carry = Path(args.carry)
    plan = _jobs.load_plan(carry)
    runs = load_runs(args.gpu_results)
    trained = {job.split("/")[0] for _, summary in runs for job in summary["jobs"]}
    names = (
        args.datasets.split(",") if args.datasets else [n for n in plan["datasets"] if n in trained]
    )
    source = dataset_sources(runs, names)
    gpu = runs[0][1]
    seeds = gpu["seeds"]
    guard_config = GuardConfig()
    report = {
        "benchmark": "accuracy",
        "provenance": provenance(),
        "gpu_provenance": gpu["provenance"],
        "gpu_commit": gpu.get("commit"),
        "seeds": seeds,
        "ensemble_size": args.ensemble_size or len(seeds),
        "budgets_minutes": gpu["budgets_minutes"],
        "batch_size": gpu["batch_size"],
        "model": gpu["model"],
        "gpu_wall_seconds": gpu["wall_seconds"],
        "link_config": link_config().to_dict(),
        "guard_config": dataclasses.asdict(guard_config),
        "protocol": "GT detections (CTC: TRA markers over silver truth); train 01 (+02 without "
        "labels for unsupervised models), test 02; checkpoint: lowest validation loss",
        "datasets": {},
        "training": {job: {k: r.get(k) for k in ("status", "steps", "train_seconds",
                                                  "best_step", "seconds")}
                     for name in names for job, r in runs[source[name]][1]["jobs"].items()
                     if job.split("/")[0] == name},
    }  # fmt: skip
    if len(runs) > 1:  # each dataset from the last run that trained it
        report["gpu_runs"] = [
            {key: summary.get(key) for key in ("provenance", "commit", "budgets_minutes",
                                               "batch_size", "wall_seconds", "motion_weights")}
            | {"datasets": [n for n in names if source[n] == k], "jobs": len(summary["jobs"])}
            for k, (_, summary) in enumerate(runs)
        ]  # fmt: skip
    motion_weights = {w for _, summary in runs for w in summary.get("motion_weights", [])}
    motion = [motion_arm(w) for w in sorted(motion_weights)]
    for name in names:
        store = Store.load(carry / plan["datasets"][name]["store"], masks=False)
        results = runs[source[name]][0]
        with tempfile.TemporaryDirectory() as tmp:
            _jobs.untar(sorted(results.glob(f"{name}*.tar")), tmp)
            start = time.perf_counter()
            found = Evaluation(
                name, store, Path(tmp), seeds, guard_config, motion, args.ensemble_size
            ).run()
        found["kind"] = "synthetic" if name.startswith("synthetic") else "real (CTC)"
        found["test"] = "02"
        found["crop_size"] = store.meta.get("crop_size")  # the crops' field of view (px)
        found["seconds"] = round(time.perf_counter() - start, 1)
        report["datasets"][name] = found
        print_dataset(name, found)
    if motion:
        report["motion_choice"] = motion_choice(report["datasets"], ["unsupervised", *motion])
        print(f"motion loss, chosen on the training movies (01): {report['motion_choice']}")
    out = Path(args.json) if args.json else RESULTS / "accuracy.json"
    write_results(out, report)
    print(f"wrote {out}")


def motion_choice(datasets: dict, arms: list[str]) -> dict:
    """The motion-loss weight chosen on the training movies (01): the arm with the lowest
    geometric mean, over datasets, of its mean AOGM over seeds (``unsupervised``: weight 0)."""
    table = {
        name: {
            arm: [t[key] for t in found["tuning"] if t.get(key) is not None]
            for arm, key in ((a, _tuning_key(a)) for a in arms)
        }
        for name, found in datasets.items()
    }
    chosen, scores = choose_by_geometric_mean(table)
    return {"geometric_mean_aogm_01": scores, "chosen": chosen}


def _tuning_key(arm: str) -> str:
    return "aogm_unsupervised" if arm == "unsupervised" else f"aogm_unsupervised_{arm}"


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="CPU: one store per dataset into the carry folder")
    p.add_argument("--carry", required=True, help="folder to fill (git-ignored, e.g. .gpu/...)")
    p.add_argument("--data", default=os.environ.get("ATTRACKT_DATA", "../shared/data"))
    p.add_argument("--crop-cells", type=float, help="the crops' field [attrackt's default]")
    p.add_argument("--datasets", help=f"comma-separated subset of {list(DATASETS)}")
    g = sub.add_parser("gpu", help="GPU: every chain; small files into --out")
    g.add_argument("--carry", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--work", help="scratch folder for checkpoints [a temporary folder]")
    g.add_argument("--seeds", default="0,1,2")
    g.add_argument("--datasets", help=f"comma-separated subset of {list(DATASETS)}")
    g.add_argument("--minutes", type=float, default=5.5, help="training budget of each model")
    g.add_argument("--ae-minutes", type=float, default=1.5, help="auto-encoder budget")
    g.add_argument("--wall-minutes", type=float, default=9.3, help="hard end of every job")
    g.add_argument("--batch-size", type=int, default=32, help="windows per training step")
    g.add_argument("--device", default="auto")
    g.add_argument("--model", choices=sorted(MODELS), default="method")
    g.add_argument(
        "--z-input", default=",".join(Z_INPUT), help="datasets of the z-in-the-input ablation"
    )
    g.add_argument(
        "--motion-weights", default="", help="unsupervised models also trained with a motion "
        "loss of these weights (the ablation; comma-separated)"
    )  # fmt: skip
    g.add_argument(
        "--supervised", action=argparse.BooleanOptionalAction, default=True,
        help="train the supervised reference",
    )  # fmt: skip
    g.add_argument(
        "--unsupervised", action=argparse.BooleanOptionalAction, default=True,
        help="train the auto-encoder and the unsupervised models",
    )  # fmt: skip
    g.add_argument("--commit", help="the commit the device runs (it has no git)")
    j = sub.add_parser("job", help=argparse.SUPPRESS)
    for name in ("--carry", "--work", "--job", "--minutes", "--device", "--batch-size", "--model"):
        j.add_argument(name, required=True)
    e = sub.add_parser("evaluate", help="CPU: link and score every arm; write the JSON")
    e.add_argument("--carry", required=True)
    e.add_argument(
        "--gpu-results", required=True, nargs="+", help="the folder(s) the gpu phase filled; "
        "each dataset is taken from the last folder whose jobs for it all ended well",
    )  # fmt: skip
    e.add_argument("--datasets", help="comma-separated subset")
    e.add_argument("--json", help="where to write [bench/results/accuracy.json]")
    e.add_argument(
        "--ensemble-size", type=int, help="the ensemble arm averages this many consecutive "
        "seeds' unsupervised models, one value per group [all seeds: one value]",
    )  # fmt: skip
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.phase == "prepare":
        prepare_phase(args)
    elif args.phase == "gpu":
        gpu_phase(args)
    elif args.phase == "job":
        args.batch_size = int(args.batch_size)
        Job(args).run()
    else:
        evaluate_phase(args)


if __name__ == "__main__":
    main()
