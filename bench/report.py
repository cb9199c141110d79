"""The README's "Measured" section, rendered from the benchmark results alone.

    python bench/report.py            # print the section
    python bench/report.py --write    # put it into README.md (between its markers)
    python bench/report.py --check    # exit 1 when README.md holds something else

Every figure in the section comes from a JSON file under ``bench/results/`` that a benchmark
wrote whole; a file that is not there leaves its part out. Means are over seeds, ± the sample
standard deviation.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, RESULTS, mean_sd  # noqa: E402

README = REPO / "README.md"
START = "<!-- measured:start (rendered by bench/report.py from bench/results; do not edit) -->"
END = "<!-- measured:end -->"

ACCURACY_ARMS = {
    "position": "position only",
    "embedding": "+ embedding distance (the method's baseline)",
    "unsupervised": "+ unsupervised associations",
    "guarded": "+ unsupervised, guarded",
    "supervised": "+ supervised associations (trained on 01)",
}
ACCURACY_ABLATIONS = {
    "embedding_affinity": "embedding as an affinity exp(-d / median d)",
    "unsupervised_last": "unsupervised, last checkpoint instead of the best",
    "supervised_last": "supervised, last checkpoint instead of the best",
}  # the seeds' mean association ("ensemble") is one value, no mean ± sd: kept in the JSON only


def _cell(values: list, digits: int) -> str:
    mean, sd = mean_sd(values)
    if mean is None:
        return "–"
    return f"{mean:.{digits}f}" if len(values) < 2 else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def _minutes(value: float) -> str:
    return f"{value:g} min"


def _start_costs(data: dict) -> str:
    """How the run priced a track's start and end, from its link settings."""
    config = data["link_config"]
    if "position_appear" not in config:
        return (
            f" Track starts and ends cost {config['appear']:g} in every movie (measured before "
            "a movie linked on position alone got its own, cheaper start costs)."
        )
    position = config["position_appear"]
    position = config["appear"] if position is None else position
    if "border_cells" not in config:
        where = " (measured before starts and ends near the image border were free)."
    elif config["border_cells"]:
        near = _diameters(config["border_cells"]).replace("cell", "typical cell")
        where = f", nothing within {near} of the image border."
    else:
        where = "."
    sizes = config.get("daughter_size_weight")
    if sizes is None:
        daughters = " Divisions were not priced by their daughters' sizes (measured before that)."
    else:
        on_position = config.get("position_daughter_size_weight")
        on_position = sizes if on_position is None else on_position
        daughters = (
            f" A division into unequal daughters costs {sizes:g} (on position alone "
            f"{on_position:g}) per unit of |ln(d1/d2)| of their diameters."
        )
    return (
        f" Track starts and ends cost {config['appear']:g} with the model's associations and "
        f"{position:g} on position alone (the `position` arm, and the guard's fallback)"
        + where
        + daughters
    )


def _devices(machine: dict) -> str:
    """ "one NVIDIA H200", "2 NVIDIA H200": the accelerators a run's machine had."""
    gpus = machine.get("gpus") or ["CPU"]
    if len(set(gpus)) == 1:
        return f"{'one' if len(gpus) == 1 else len(gpus)} {gpus[0]}"
    return ", ".join(gpus)


def _sharing(data: dict) -> str:
    """How many jobs shared which GPUs, per GPU run of an accuracy result."""
    runs = data.get("gpu_runs")
    if not runs:
        return f"{len(data['training'])} jobs shared {_devices(data['gpu_provenance']['machine'])}"
    return "; ".join(
        f"{r['jobs']} jobs shared {_devices(r['provenance']['machine'])} (run at {r['commit']}: "
        f"{', '.join(r['datasets'])})"
        for r in runs
    )


def _crops(data: dict) -> str:
    """The crops' field of view per dataset, where the run recorded it."""
    fields = {n: d["crop_size"] for n, d in data["datasets"].items() if d.get("crop_size")}
    if not fields:
        return ""
    listed = ", ".join(f"{n} {f[-1]} px" for n, f in fields.items())
    return f" The auto-encoder's crops cover {listed} (resampled to 32 px)."


def _diameters(value: float) -> str:
    return f"{value:g} cell diameter{'' if value == 1 else 's'}"


def render_accuracy(data: dict) -> list[str]:
    seeds = data["seeds"]
    budgets = data["budgets_minutes"]
    lines = [
        "### Linking accuracy (`bench/accuracy.py` → `results/accuracy.json`)",
        "",
        f"GT detections; linked by the exact ILP with k = {data['link_config']['k']} nearest "
        "candidates, every node pinned; test movie 02; unsupervised models trained on 01 + 02 "
        f"without labels, supervised on 01; {len(seeds)} seeds ({', '.join(map(str, seeds))}), "
        f"mean ± sd; each model trained {_minutes(budgets['unsupervised'])} (auto-encoder "
        f"{_minutes(budgets['ae'])}) while {_sharing(data)}, batch "
        f"{data['batch_size']}, checkpoint with the lowest validation loss. The guard's "
        "settings were chosen on the 01 movies." + _start_costs(data) + _crops(data),
        "",
    ]
    names = list(data["datasets"])
    header = "| arm | " + " | ".join(f"{n} ({data['datasets'][n]['kind']})" for n in names) + " |"
    lines += [header, "|---" * (len(names) + 1) + "|"]
    for arm, label in ACCURACY_ARMS.items():
        cells = []
        for name in names:
            values = data["datasets"][name]["arms"].get(arm)
            if values is None:
                cells.append("–")
                continue
            cells.append(f"{_cell(values['aogm'], 1)} (F1 {_cell(values['division_f1'], 2)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "AOGM (lower is better) and, in brackets, division F1.", ""]
    lines += ["Ablations (AOGM on 02):", ""]
    lines += ["| variant | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for arm, label in ACCURACY_ABLATIONS.items():
        cells = []
        for name in names:
            values = data["datasets"][name]["arms"].get(arm)
            cells.append("–" if values is None else _cell(values["aogm"], 1))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines + ["", *_guard_tuning(data)]


def _guard_tuning(data: dict) -> list[str]:
    """The guard's verdicts on the training movies (01) beside their AOGM."""
    lines = ["The guard on the training movies (01), where its settings are chosen:", ""]
    lines += ["| dataset | seed | guard | easy cells it disagrees on | links it changes | "
              "AOGM position → model |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, found in data["datasets"].items():
        for entry in found.get("tuning", []):
            for verdict in entry["guard"].values():
                changes = verdict.get("changes")
                lines.append(
                    f"| {name} | {entry['seed']} | {'use' if verdict['use'] else 'off'} | "
                    f"{verdict['disagreement']:.2%} (≤ {verdict['upper']:.2%}) | "
                    f"{'–' if changes is None else changes} | "
                    f"{entry['aogm_position']:g} → {entry['aogm_unsupervised']:g} |"
                )
    return lines


def render_replicate(
    data: dict, name: str = "accuracy_interactive_base.json", which: str = "a second"
) -> list[str]:
    """The unsupervised arms of another accuracy run (no supervised models), beside the
    first: how far the guard's verdicts and the models' figures hold from run to run."""
    budgets = data["budgets_minutes"]
    names = list(data["datasets"])
    lines = [
        f"### The unsupervised arms again, in {which} run (`results/{name}`)",
        "",
        f"The same protocol as `accuracy.json`, unsupervised models only, at commit "
        f"{data['gpu_commit']}: each model trained {_minutes(budgets['unsupervised'])} "
        f"(auto-encoder {_minutes(budgets['ae'])}) while {_sharing(data)}; "
        f"{len(data['seeds'])} seeds, mean ± sd of AOGM on 02." + _start_costs(data),
        "",
        "| arm | " + " | ".join(names) + " |",
        "|---" * (len(names) + 1) + "|",
    ]
    for arm in ("position", "unsupervised", "guarded"):
        cells = [_cell(data["datasets"][n]["arms"][arm]["aogm"], 1) for n in names]
        lines.append(f"| {ACCURACY_ARMS[arm]} | " + " | ".join(cells) + " |")
    return lines + ["", *_guard_tuning(data)]


def render_crop_field(data: dict) -> list[str]:
    fields = [f"{f:g}" for f in data["fields"]]
    choice = data["choice"]
    lines = [
        "### How wide a crop the auto-encoder sees (`bench/crop_field.py` → "
        "`results/crop_field.json`)",
        "",
        "The teacher's misses on the training movies (01): the share of cells whose nearest "
        "candidate parent in embedding (of the k = 10 nearest in position) is not the true "
        f"parent, for crops of {', '.join(fields)} typical cell diameters (the field in pixels in "
        f"brackets); auto-encoder trained {_minutes(data['budgets_minutes']['autoencoder'])} on "
        f"01 + 02 without labels on a CPU ({data['provenance']['machine']['cpu_count']} cores), "
        f"seed {data['seed']}. Position alone, for comparison, in the last column.",
        "",
        "| dataset | " + " | ".join(f"{f} diameters" for f in fields) + " | position |",
        "|---" * (len(fields) + 2) + "|",
    ]
    for name, per in data["datasets"].items():
        cells = [f"{per[f]['embedding']:.1%} ({per[f]['crop_size'][-1]} px)" for f in fields]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {per[fields[0]]['position']:.1%} |")
    scores = ", ".join(f"{f} {v:.2%}" for f, v in choice["geometric_mean_miss_rate"].items())
    lines += [
        "",
        f"The lowest geometric mean over the four: {choice['crop_cells']:g} diameters "
        f"({scores}), the widest measured. A wide crop shows the neighbours more than the cell "
        "(at 4.5 diameters DIC's crop is the whole image), so the embedding comes to say where a "
        "cell is, which position already says; the models are the judge:",
    ]
    return lines + [""] + _crop_accuracy(data)


#: accuracy runs at two crop fields: result file -> the field, in typical cell diameters
CROP_RUNS = {"accuracy.json": 2.5, "accuracy_crop45.json": 4.5}


def _guarded_01(found: dict) -> list[float]:
    """Per seed, the 01 AOGM as attrackt links it: the model's where the guard used it."""
    return [
        t["aogm_unsupervised"] if all(v["use"] for v in t["guard"].values()) else t["aogm_position"]
        for t in found.get("tuning", [])
    ]


def _crop_accuracy(field: dict) -> list[str]:
    """The accuracy runs at each crop field (``field``: crop_field.json, the fields' pixels)."""
    runs = {
        f: json.loads((RESULTS / f).read_text("utf-8"))
        for f in CROP_RUNS
        if (RESULTS / f).is_file()
    }
    if len(runs) < 2:
        return []
    names = list(next(iter(runs.values()))["datasets"])
    lines = [
        "The unsupervised model with crops of each field (`accuracy.json`, "
        '`accuracy_crop45.json`: the protocol of "Linking accuracy" above, 3 seeds). AOGM '
        "on the training movie 01 as attrackt links it (guarded; the model alone in brackets), "
        "and on the test movie 02 (guarded / the model alone); the crops' field in pixels:",
        "",
        "| dataset | field | crops | 01 guarded (model) | 02 guarded / model |",
        "|---|---|---|---|---|",
    ]
    logs: dict[str, list[float]] = {f: [] for f in runs}
    alone: dict[str, list[float]] = {f: [] for f in runs}
    for name in names:
        for file, data in runs.items():
            found = data["datasets"][name]
            guarded = _guarded_01(found)
            model = [t["aogm_unsupervised"] for t in found.get("tuning", [])]
            logs[file].append(float(np.log(np.mean(guarded))))
            alone[file].append(float(np.log(np.mean(model))))
            arms = found["arms"]
            lines.append(
                f"| {name} | {CROP_RUNS[file]:g} diameters | {found['crop_size'][-1]} px | "
                f"{_cell(guarded, 1)} ({_cell(model, 1)}) | {_cell(arms['guarded']['aogm'], 1)} / "
                f"{_cell(arms['unsupervised']['aogm'], 1)} |"
            )
    for name in names:  # a dataset trained at another field than the factor's
        for file, data in runs.items():
            found, factor = data["datasets"][name], f"{CROP_RUNS[file]:g}"
            wanted = field["datasets"].get(name, {}).get(factor, {}).get("crop_size")
            if wanted and found["crop_size"] != wanted:
                run = next(r for r in data.get("gpu_runs", []) if name in r["datasets"])
                lines += [
                    "",
                    f"{name} at {factor} diameters: models trained on crops of "
                    f"{found['crop_size'][-1]} px (the run at {run['commit']}, a fixed field), "
                    f"against the {wanted[-1]} px of {factor} diameters; no run at "
                    f"{wanted[-1]} px.",
                ]
    means = {f: float(np.exp(np.mean(v))) for f, v in logs.items()}
    best = min(means, key=means.get)
    listed = ", ".join(f"{CROP_RUNS[f]:g} diameters {v:.1f}" for f, v in means.items())
    models = ", ".join(
        f"{CROP_RUNS[f]:g} diameters {float(np.exp(np.mean(v))):.1f}" for f, v in alone.items()
    )
    lines += [
        "",
        "Chosen on 01 by the lowest geometric mean of the guarded AOGM (as the linker's settings "
        f"are): **{CROP_RUNS[best]:g} diameters** ({listed}; of the models alone: {models}); "
        "attrackt's default (`PrepareConfig.crop_cells`, `attrackt prepare --crop-cells`).",
    ]
    return lines


def render_input_ablation(data: dict) -> list[str]:
    lines = [
        "### The appearance vector in the model's input (`results/accuracy_run_a.json`)",
        "",
        "An earlier run of `bench/accuracy.py` (commit "
        f"{data['gpu_commit']}, {len(data['seeds'])} seeds, each model "
        f"{_minutes(data['budgets_minutes']['unsupervised'])} of a GPU shared by "
        f"{len(data['training'])} jobs) trained the unsupervised model twice per seed: with the "
        "appearance vector in the transformer's input and without it (the method's choice, "
        "attrackt's default). AOGM on 02, best checkpoint:",
        "",
        "| dataset | appearance in the input | appearance out (default) | position only |",
        "|---|---|---|---|",
    ]
    for name, found in data["datasets"].items():
        arms = found["arms"]
        if "embedding_input" not in arms:
            continue
        lines.append(
            f"| {name} | {_cell(arms['embedding_input']['aogm'], 1)} | "
            f"{_cell(arms['unsupervised']['aogm'], 1)} | {_cell(arms['position']['aogm'], 1)} |"
        )
    return lines


def render_motion(data: dict) -> list[str]:
    choice = data["motion_choice"]
    arms = list(choice["geometric_mean_aogm_01"])
    one = {"commit": data["gpu_commit"], "datasets": list(data["datasets"])}
    runs = data.get("gpu_runs") or [one]
    where = "; ".join(
        f"run {k} at commit {r['commit']}: {', '.join(r['datasets'])}"
        for k, r in enumerate(runs, 1)
    )
    budgets = data["budgets_minutes"]
    lines = [
        "### A motion loss in the unsupervised objective (`results/accuracy_motion.json`)",
        "",
        "The unsupervised model also trained with a motion loss of weight 0.1 or 1 (the "
        "association-weighted squared distance to the predicted parents over that of all "
        "candidates: a prior that cells move little, `attrackt.losses.motion_loss`), beside the "
        f"plain model in the same run; {len(data['seeds'])} seeds, each model "
        f"{_minutes(budgets['unsupervised'])}, auto-encoder {_minutes(budgets['ae'])} "
        f"(GPU runs: {where}). AOGM on 02, best checkpoint:",
        "",
        "| dataset | position only | " + " | ".join(_motion_label(a) for a in arms) + " |",
        "|---" * (len(arms) + 2) + "|",
    ]
    better = 0
    for name, found in data["datasets"].items():
        values = [found["arms"][_motion_key(a)]["aogm"] for a in arms]
        lines.append(
            f"| {name} | {_cell(found['arms']['position']['aogm'], 1)} | "
            + " | ".join(_cell(v, 1) for v in values)
            + " |"
        )
        chosen = found["arms"][_motion_key(choice["chosen"])]["aogm"]
        better += mean_sd(chosen)[0] < mean_sd(values[0])[0]
    scores = ", ".join(
        f"{_motion_label(a)} {v:.1f}" for a, v in choice["geometric_mean_aogm_01"].items()
    )
    lines += [
        "",
        "Chosen on the training movies (01), by the lowest geometric mean of the mean AOGM over "
        f"the four: **{_motion_label(choice['chosen'])}** ({scores}). On the test movies its "
        f"mean beats the plain model's on {better} of {len(data['datasets'])}; attrackt keeps the "
        "motion loss off by default (`AssociationTrainConfig.motion_weight = 0`).",
    ]
    return lines


def _motion_label(arm: str) -> str:
    return "plain (weight 0)" if arm == "unsupervised" else f"weight {arm.removeprefix('motion')}"


def _motion_key(arm: str) -> str:
    return arm if arm == "unsupervised" else f"unsupervised_{arm}"


#: the runs of the HeLa table: result file -> what differs in it
HELA_RUNS = {
    "accuracy_fixed_crops.json": "all four datasets' jobs, crops of a fixed field; its "
    "HeLa models are `accuracy.json`'s, its seed-0 models the fine-tuning benchmark's base",
    "accuracy_crop45.json": "HeLa's jobs, crops of 4.5 cell diameters",
    "accuracy_motion.json": "HeLa's jobs, with the motion ablation",
    "accuracy_hela_alone.json": "HeLa's jobs, auto-encoder 2 min",
    "accuracy_supervised.json": "the supervised models alone, best checkpoint by the fewest "
    "wrong parents on held-out frames instead of the lowest loss",
    "accuracy_interactive_base.json": "the unsupervised jobs of all four datasets, no "
    "supervised ones, the look-alike set's in a second call; its HeLa and DIC seed-0 models "
    "are the fine-tuning benchmark's base",
    "accuracy_ensemble.json": "HeLa's unsupervised jobs alone, 9 seeds",
    "accuracy_lr_base.json": "HeLa's and DIC's unsupervised jobs, no supervised ones; their "
    "seed-0 models are the base of `interactive_lr.json`",
    "accuracy_recipe_base.json": "HeLa's and DIC's unsupervised jobs, no supervised ones; their "
    "seed-0 models are the base of the recipes' first run (`interactive_01_*.json`) and of "
    "`interactive_recipe_base.json`",
    "accuracy_run2_base.json": "the same jobs again (the same command); their seed-0 models are "
    "the base of `interactive_01_run2.json` and `interactive_run2_base.json`",
    "accuracy_run3_base.json": "the same jobs a third time (the same command); their seed-0 "
    "models are the base of `interactive.json`",
}


def render_hela_runs(_: dict) -> list[str]:
    lines = [
        "### HeLa 02 in every run: the steps the models got, and which checkpoint",
        "",
        "The plain unsupervised arm (appearance out, best checkpoint, the same code path) in "
        "every run of `bench/accuracy.py` here; the runs differ in how many jobs shared the "
        "GPUs, and so in the steps the auto-encoder and the model made in their minutes. Per "
        "seed: auto-encoder steps / model steps → AOGM. The supervised model (trained on 01) "
        "at its best and its last checkpoint, with its steps. Each run as it was linked when "
        "it was scored: the linker changed between runs (*border*: track starts and ends free "
        "near the image border, `link_config.border_cells`).",
        "",
        "| run | jobs sharing | border | unsupervised, per seed | unsupervised | "
        "supervised steps | supervised, best / last checkpoint |",
        "|---|---|---|---|---|---|---|",
    ]
    name = "Fluo-N2DL-HeLa"
    for file, what in HELA_RUNS.items():
        path = RESULTS / file
        if not path.is_file():
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        arms, training = data["datasets"][name]["arms"], data["training"]
        seeds = [
            f"{training[f'{name}/s{s}/ae']['steps']} / "
            f"{training[f'{name}/s{s}/unsupervised']['steps']} → {aogm:g}"
            for s, aogm in zip(data["seeds"], arms["unsupervised"]["aogm"], strict=True)
            if aogm is not None
        ]
        steps = [training.get(f"{name}/s{s}/supervised", {}).get("steps") for s in data["seeds"]]
        runs = data.get("gpu_runs") or [
            {"provenance": data["gpu_provenance"], "datasets": list(data["datasets"])}
        ]
        run = next(r for r in runs if name in r["datasets"])
        gpus = len(run["provenance"]["machine"]["gpus"])
        jobs = run.get("jobs") or sum(job.split("/")[0] in run["datasets"] for job in training)
        supervised = (
            f"{_cell(arms['supervised']['aogm'], 1)} / {_cell(arms['supervised_last']['aogm'], 1)}"
            if any(v is not None for v in arms["supervised"]["aogm"])
            else "–"
        )
        border = data["link_config"].get("border_cells")
        lines.append(
            f"| `{file}` | {jobs} jobs ({what}) on {gpus} GPU{'s' if gpus > 1 else ''} | "
            f"{_diameters(border) if border else 'none'} | {'; '.join(seeds) or '–'} | "
            f"{_cell(arms['unsupervised']['aogm'], 1)} | "
            f"{', '.join(str(s) for s in steps if s is not None) or '–'} | {supervised} |"
        )
    return lines


def render_ensemble(data: dict) -> list[str]:
    name = "Fluo-N2DL-HeLa"
    arms = data["datasets"][name]["arms"]
    size, seeds = data["ensemble_size"], data["seeds"]
    groups = [seeds[k : k + size] for k in range(0, len(seeds) - size + 1, size)]
    budgets = data["budgets_minutes"]
    single, sd = mean_sd(arms["unsupervised"]["aogm"])
    gain = single - mean_sd(arms["ensemble"]["aogm"])[0]
    per_group = "; ".join(
        f"seeds {', '.join(map(str, g))}: {v:g}"
        for g, v in zip(groups, arms["ensemble"]["aogm"], strict=True)
    )
    return [
        "### Ensembles of seeds (`results/accuracy_ensemble.json`)",
        "",
        f"HeLa's unsupervised chain with {len(seeds)} seeds in one run (auto-encoder "
        f"{_minutes(budgets['ae'])}, model {_minutes(budgets['unsupervised'])}, "
        f"{len(data['training'])} jobs on {len(data['gpu_provenance']['machine']['gpus'])} GPUs), "
        f"and the mean association of {size} seeds' models (`attrackt predict` with "
        f"{size} `--checkpoint`s), {len(groups)} such ensembles. AOGM on HeLa 02:",
        "",
        "| position only | one model (per seed) | one model, guarded | "
        f"ensemble of {size} (per ensemble) |",
        "|---|---|---|---|",
        f"| {_cell(arms['position']['aogm'], 1)} | {_cell(arms['unsupervised']['aogm'], 1)} | "
        f"{_cell(arms['guarded']['aogm'], 1)} | {_cell(arms['ensemble']['aogm'], 1)} |",
        "",
        f"Per ensemble: {per_group}. The ensembles' mean AOGM is {abs(gain):.1f} "
        f"{'lower' if gain > 0 else 'higher'} than one model's, "
        f"{'within' if abs(gain) <= sd else 'beyond'} one model's standard deviation "
        f"({sd:.1f}), for {size} times the training.",
    ]


def render_link_weights(data: dict) -> list[str]:
    settings = data["settings"]
    grid = data["grid"]
    lines = [
        "### Linker weights chosen on the training movies (`bench/link_weights.py` → "
        "`results/link_weights.json`)",
        "",
        "The exact linker's costs are z-scored per movie; an edge costs distance − w × "
        "association, a track start or end the appear cost. Chosen on the 01 movies (lowest "
        "geometric mean over the four datasets of the mean AOGM over seeds; appear in "
        f"{', '.join(f'{a:g}' for a in grid['appear'])}, w in "
        f"{', '.join(f'{w:g}' for w in grid['association'])}), separately for position only "
        "and for the unsupervised model's associations (those of "
        + (
            "`accuracy.json`: "
            + ", ".join(f"{n} trained at {c}" for n, c in data["datasets_from"].items())
            if data.get("datasets_from")
            else f"`accuracy_fixed_crops.json`, commit {data['gpu_commit']}"
        )
        + ")"
        + (
            "; apart, with the model at its defaults, the division cost (a constant on every "
            f"division hyper-edge, in {', '.join(f'{d:g}' for d in grid['division'])})"
            if "division" in grid
            else ""
        )
        + (
            "; and, linked as attrackt links (guarded, the rest at the defaults), the border "
            "within which a track starts and ends for free, in typical cell diameters (in "
            f"{', '.join(f'{b:g}' for b in grid['border'])}; 0: nowhere)"
            + (
                ", and the price of a division into unequal daughters (per unit of |ln(d1/d2)| "
                f"of their diameters, in {', '.join(f'{d:g}' for d in grid['daughters'])}; 0: "
                "sizes do not matter)"
                if "daughters" in grid
                else ""
            )
            + ". Each choice is made at the others' defaults"
            if "border" in grid
            else ""
        )
        + "; then used on 02 beside attrackt's defaults. AOGM on 02:",
        "",
        "| dataset | " + " | ".join(f"{arm} ({_setting(settings[arm])})" for arm in settings)
        + " |",
        "|---" * (len(settings) + 1) + "|",
    ]  # fmt: skip
    for name, arms in data["test"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(arms[a], 1) for a in settings) + " |")

    def better(arm: str, than: str) -> int:
        return sum(mean_sd(a[arm])[0] < mean_sd(a[than])[0] for a in data["test"].values())

    n = len(data["test"])
    lines += [
        "",
        f"On position alone the weights chosen on 01 beat appear 1 on "
        f"{better('position chosen', 'position appear 1')} of {n} test movies; attrackt links a "
        f"movie on position alone (no model, or the guard's fallback) at appear "
        f"{settings['position default']['appear']:g} (`--position-appear`, "
        "`--position-disappear`). "
        + (
            "With the model the weights chosen on 01 are attrackt's defaults (`--appear`, "
            "`--disappear`, `--association-weight`)."
            if settings["model chosen"] == settings["model default"]
            else f"With the model they beat the defaults on "
            f"{better('model chosen', 'model default')} of {n}, and attrackt keeps those "
            "(`--appear`, `--disappear`)."
        )
        + (
            (
                " The division cost chosen on 01 is the default (0)."
                if not settings["model division chosen"]["division"]
                else " The division cost chosen on 01 beats the default (0) on "
                f"{better('model division chosen', 'model default')} of {n}, and attrackt keeps "
                "0 (`LinkConfig.hyper_bias`)."
            )
            if "model division chosen" in settings
            else ""
        )
        + (
            f" The border chosen on 01 ({_diameters(settings['attrackt border chosen']['border'])}"
            ") beats linking without one on "
            f"{better('attrackt border chosen', 'attrackt no border')} of {n}; attrackt frees "
            f"starts and ends within {_diameters(data['link_config']['border_cells'])} of it "
            "(`--border-cells`)."
            if "attrackt border chosen" in settings
            else ""
        )
        + (
            " The price of unequal daughters chosen on 01 ("
            f"{settings['attrackt daughters chosen']['daughters']:g}) beats none on "
            f"{better('attrackt daughters chosen', 'attrackt daughters 0')} of {n} (on position "
            f"alone: {better('position daughters chosen', 'position daughters 0')} of {n}); "
            "chosen on the real movies alone, as the synthetic generator halves a dividing cell "
            "exactly; attrackt prices them at "
            f"{data['link_config']['daughter_size_weight']:g} with the model "
            "(`--daughter-size-weight`) and "
            f"{data['link_config'].get('position_daughter_size_weight', 0):g} on position alone "
            "(`--position-daughter-size-weight`)."
            if "attrackt daughters chosen" in settings
            else ""
        ),
    ]
    return lines


def render_ranking(data: dict) -> list[str]:
    budgets = [str(b) for b in data["budgets"]]
    lines = [
        "### Which cells to ask about first (`bench/ranking.py` → `results/ranking.json`)",
        "",
        "On the training movies (01), with every seed's unsupervised model of the accuracy run "
        f"(commit {data['gpu_commit']}; seeds {', '.join(map(str, data['seeds']))}) and its "
        "guarded linking: the wrongly linked cells among a ranking's top B, mean over seeds, and "
        "in brackets the AOGM once those B cells' answers are pinned. *method*: "
        "|Σ A − Σ S|; *attrackt*: the solver's divisions scored against the model's typical "
        "division where the guard trusts it (`attrackt.active`); *random*: the expected count.",
        "",
        "| dataset | score | " + " | ".join(f"top {b}" for b in budgets) + " |",
        "|---" * (len(budgets) + 2) + "|",
    ]
    for name, by_score in data["datasets"].items():
        for label, figures in by_score.items():
            cells = []
            for b in budgets:
                wrong = mean_sd(figures["wrong"][b])[0]
                aogm = figures["aogm"].get(b)
                cells.append(f"{wrong:.1f}" + (f" ({mean_sd(aogm)[0]:.1f})" if aogm else ""))
            lines.append(f"| {name} | {label} | " + " | ".join(cells) + " |")
    return lines


def _setting(setting: dict) -> str:
    daughters = "".join(
        f", daughters {setting[key]:g}"
        for key in ("daughters", "position_daughters")
        if key in setting
    )
    if not setting["association"]:
        return f"appear {setting['appear']:g}{daughters}"
    division = f", division {setting['division']:g}" if "division" in setting else ""
    border = f", border {setting['border']:g}, guarded" if "border" in setting else ""
    weights = f"appear {setting['appear']:g}, w {setting['association']:g}"
    return f"{weights}{division}{border}{daughters}"


def _unsupervised_term(ft: dict) -> str:
    embedded = ft.get("embedded") or []
    if not embedded:
        return " (the run kept no embedding for the unsupervised term)"
    return f" + the unsupervised term (weight {ft['unsupervised_weight']:g}; {', '.join(embedded)})"


def render_interactive(
    data: dict, name: str = "interactive.json", base: str = "accuracy_interactive_base.json"
) -> list[str]:
    ft = data["finetune"]
    lines = [
        "### Learning from answers, apart from pinning them (`bench/interactive.py` → "
        f"`results/{name}`)",
        "",
        "The base model's linking of 02 (an accuracy run's seed-0 unsupervised model, guarded"
        + (f"; that of `{base}`" if ft.get("check_fraction") else "")
        + ") is proof-read from the ground truth at the top B cells of each ranking (children "
        "within the linker's reach of 1 frame, as a person must answer); every arm links with "
        "those answers pinned. *Errors outside*: wrong links (false and missed) leaving "
        "cells nobody answered, mean ± sd over seeds "
        f"({', '.join(map(str, data['seeds']))}); AOGM of the whole movie in brackets. "
        f"{'Fine-tuning of every weight' if ft.get('full') else 'LoRA'}: "
        f"{ft['max_steps']} steps at most ({ft['steps_per_cell']} per answered cell, batch "
        f"{ft['batch_size']}{_learning_rate(ft)}), supervised + pseudo-labels + transitive terms"
        + _unsupervised_term(ft)
        + "; SSVM: the linker's weights learned from the "
        "answers (pin+ssvm+pseudo: and the pseudo-labels, an ablation prompted by the test "
        "movie, see the script)." + _start_costs(data) + _held_out(ft, data.get("held_out_rule")),
        "",
    ]
    arms = ["pin", "pin+lora", "pin+ssvm", "pin+both"]
    for rankings in data["datasets"].values():
        for budgets in rankings.values():
            for found in budgets.values():
                arms += [arm for arm in found if arm not in arms]
    for name, rankings in data["datasets"].items():
        lines += [
            f"**{name} 02** (base AOGM {data['base_aogm'][name]:g})",
            "",
            "| ranking | answers | " + " | ".join(arms) + " |",
            "|---" * (len(arms) + 2) + "|",
        ]
        for ranking, budgets in rankings.items():
            for budget, found in budgets.items():
                cells = []
                for arm in arms:
                    if arm not in found:
                        cells.append("–")
                        continue
                    figures = found[arm]
                    aogm, _ = mean_sd(figures["aogm"])
                    cells.append(
                        f"{_cell(figures['errors_outside'], 1)} ({aogm:.1f}{_used(figures)})"
                    )
                lines.append(f"| {ranking} | {budget} | " + " | ".join(cells) + " |")
        seconds = [
            s
            for budgets in rankings.values()
            for found in budgets.values()
            for s in found.get("pin+lora", {}).get("seconds", [])
        ]
        if seconds:
            median = sorted(seconds)[len(seconds) // 2]
            lines += [
                "",
                f"A fine-tuning took {median:.0f} s (median; {min(seconds):.0f}-"
                f"{max(seconds):.0f} s; GPUs shared by the jobs, as the gpu_provenance says).",
            ]
        lines += ["", *_interactive_findings(rankings), *_check_counts(rankings)]
        lines += [*_weight_bound(rankings), ""]
    if data.get("unscored"):
        lines += [
            f"Not scored (the evaluation was cut short): {len(data['unscored'])} tasks, "
            + ", ".join(f"`{t}`" for t in data["unscored"])
            + ".",
            "",
        ]
    return lines


def _check_counts(rankings: dict) -> list[str]:
    """The held-out check of the fine-tuned model per seed, confidence ranking (runs that
    record it): held-out cells linked wrong before → after the fine-tuning."""
    parts = []
    for budget, found in rankings.get("confidence", {}).items():
        checks = [c.get("model") for c in found.get("pin+lora", {}).get("checks", [])]
        if not checks or None in checks or checks[0]["wrong_before"] is None:
            continue
        pairs = ", ".join(f"{c['wrong_before']} → {c['wrong_after']}" for c in checks)
        parts.append(f"{budget} answers ({checks[0]['held_out']} held out): {pairs}")
    if not parts:
        return []
    return [
        "",
        "The fine-tuning's check, per seed (held-out cells linked wrong by the model "
        "before → after fine-tuning): " + "; ".join(parts) + ".",
    ]


def _weight_bound(rankings: dict) -> list[str]:
    """How many weight learnings the time bound stopped (runs that record it)."""
    stopped = [
        check["weights"]["timed_out"]
        for budgets in rankings.values()
        for found in budgets.values()
        for figures in found.values()
        for check in figures.get("checks", [])
        if "timed_out" in check.get("weights", {})
    ]
    if not stopped:
        return []
    return [
        "",
        f"The weight learning's time bound (`LearnConfig.max_seconds`) stopped {sum(stopped)} "
        f"of its {len(stopped)} learnings here (with the best weights so far).",
    ]


def _learning_rate(ft: dict) -> str:
    """``, learning rate X`` where the run records it (runs before set none: 1e-4)."""
    return f", learning rate {ft['lr']:g}" if "lr" in ft else ""


def _held_out(ft: dict, rule: dict | None = None) -> str:
    fraction = ft.get("check_fraction")
    if not fraction:
        return ""
    margin = f" (at least {rule['min_gain']} of them fewer wrong)" if rule else ""
    held = (
        f" A {fraction:.0%} share of each case's answered cells is held out of the learning "
        "(fine-tuning and weights alike) and what was learned is checked on them, linked with "
        "the other answers pinned (`attrackt.link.held_out`); *k/n*: in how many of the n "
        "seeds' cases it was used."
    )
    if rule and "tuned_share" in rule:
        return held + (
            f" Learned weights are used where they link those cells better{margin}; what "
            "fine-tuning gives (pin+lora) is the mean of the associations before and after "
            f"(fine-tuned share {rule['tuned_share']:g}), refused where it gets at least "
            f"{rule['min_gain']} more of those cells wrong than the model before."
        )
    return held + (
        f" What was learned is used only where it links those cells better{margin} than "
        "what it would replace."
    )


def _used(figures: dict) -> str:
    """``; k/n``: how many seeds' cases used what was learned (runs that record it)."""
    kept = figures.get("kept")
    if not kept or not any(kept) or set(kept) == {"mix"}:
        return ""
    used = sum(("tuned" in k) or ("learned" in k) for k in kept)
    return f"; {used}/{len(kept)}"


def _interactive_findings(rankings: dict) -> list[str]:
    """What the issue asks of the tables: learning against pinning alone (errors outside,
    confidence ranking, 100 and 250 answers) and confidence against random (pinning alone,
    AOGM of the whole movie, every budget)."""

    def mean(found: dict, arm: str, key: str) -> float:
        return mean_sd(found[arm][key])[0]

    learned = []
    for budget in ("100", "250"):
        found = rankings["confidence"][budget]
        pin = mean(found, "pin", "errors_outside")
        best = min((a for a in found if a != "pin"), key=lambda a: mean(found, a, "errors_outside"))
        value = mean(found, best, "errors_outside")
        learned.append(
            f"{budget} answers: {best} {value:.1f} against {pin:.1f} "
            f"({100 * (value - pin) / pin:+.0f} %)"
        )
    findings = (
        "Best learning arm against pinning alone (errors outside, confidence ranking): "
        + "; ".join(learned)
        + "."
    )
    if "random" not in rankings:  # a run of the confidence ranking alone
        return [findings]
    versus = [
        (budget, mean(found, "pin", "aogm"), mean(rankings["random"][budget], "pin", "aogm"))
        for budget, found in rankings["confidence"].items()
    ]
    lower = sum(c < r for _, c, r in versus)
    return [
        findings + f" Confidence against random (pinning alone, AOGM): lower at {lower} of "
        f"{len(versus)} budgets ("
        + ", ".join(f"{b}: {c:.1f} vs {r:.1f}" for b, c, r in versus)
        + ")."
    ]


#: the learning arms a fine-tuning recipe is chosen among, on the training movies (01)
RECIPE_ARMS = ("pin+lora", "pin+lora-unchecked", "pin+lora-mix")


def _recipe(ft: dict) -> str:
    model = "every weight" if ft.get("full") else "LoRA"
    weight = ft.get("supervised_weight", 1.0)
    answers = f", answers x{weight:g}" if weight != 1 else ""
    return f"{model}, lr {ft['lr']:g}, {ft['max_steps']} steps{answers}"


def recipe_scores(runs: dict[str, dict]) -> dict[tuple[str, str], float]:
    """``(file, arm)`` -> the mean, over datasets and budgets (confidence ranking), of the
    arm's errors outside relative to pinning alone (``errors / max(pin errors, 1)``): the rule
    that picks the fine-tuning recipe on the training movies."""
    scores = {}
    for file, data in runs.items():
        for arm in RECIPE_ARMS:
            ratios = []
            for rankings in data["datasets"].values():
                for found in rankings["confidence"].values():
                    pin = mean_sd(found["pin"]["errors_outside"])[0]
                    ratios.append(mean_sd(found[arm]["errors_outside"])[0] / max(pin, 1.0))
            scores[(file, arm)] = float(np.mean(ratios))
    return scores


def _blends(data: dict) -> bool:
    """Whether a run's ``pin+lora`` is the mean of the associations before and after
    fine-tuning (attrackt's rule since ``held_out_rule`` records ``tuned_share``), rather than
    the fine-tuned model where it linked the held-out cells better."""
    return "tuned_share" in data.get("held_out_rule", {})


def render_recipes(_: dict) -> list[str]:
    runs = {
        path.name: json.loads(path.read_text(encoding="utf-8"))
        for path in sorted(RESULTS.glob("interactive_01_*.json"))
    }
    first_runs = {name: data for name, data in runs.items() if not _blends(data)}
    first = next(iter(first_runs.values()))
    lines = [
        "### The fine-tuning recipe, chosen on the training movies (`bench/interactive.py "
        "prepare --sequence 01` → `results/interactive_01_*.json`)",
        "",
        "The accuracy run's seed-0 unsupervised model (`accuracy_recipe_base.json`, trained on "
        "01 and 02 without labels) links movie 01; the ground truth answers the top 100 and 250 "
        "cells of the confidence ranking (seeds "
        f"{', '.join(map(str, first['seeds']))}), and each recipe fine-tunes on them (one GPU, "
        "the recipes' 48 jobs side by side: *seconds* is a shared GPU's). Every arm links "
        + (
            "with the guard on"
            if first["link_config"].get("guard")
            else "with the model's "
            "associations, the guard off: the guard links both 01 movies on position alone, "
            "which would hide what each recipe does to the model"
        )
        + ". Errors outside the answered cells, "
        "mean ± sd; *checked*: the fine-tuned model where the held-out check keeps it (k/n: "
        "kept in k of n seeds); *unchecked*: always; *mix*: the mean of the base and the "
        "fine-tuned associations. The choice: the lowest mean, over both movies and budgets, "
        "of errors outside relative to pinning alone.",
        "",
        "| recipe | movie | answers | pin | checked | unchecked | mix | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for data in first_runs.values():
        for name, rankings in data["datasets"].items():
            for budget, found in rankings["confidence"].items():
                cells = [_cell(found["pin"]["errors_outside"], 1)]
                for arm in RECIPE_ARMS:
                    used = _used(found[arm]) if arm == "pin+lora" else ""
                    cells.append(f"{_cell(found[arm]['errors_outside'], 1)}{used}")
                seconds = found["pin+lora-unchecked"]["seconds"]
                lines.append(
                    f"| {_recipe(data['finetune'])} | {name} 01 | {budget} | "
                    + " | ".join(cells)
                    + f" | {np.median(seconds):.0f} |"
                )
    weights = [
        f"{name} 01, {budget} answers: {_cell(found['pin+ssvm']['errors_outside'], 1)} "
        f"({_used(found['pin+ssvm']).lstrip('; ')} learned) against "
        f"{_cell(found['pin']['errors_outside'], 1)}"
        for data in first_runs.values()
        for name, rankings in data["datasets"].items()
        for budget, found in rankings["confidence"].items()
        if "pin+ssvm" in found
    ]
    if weights:
        lines += [
            "",
            "The linker's weights learned from the same answers (pin+ssvm, checked the same "
            "way), errors outside: " + "; ".join(weights) + ".",
        ]
    lines += ["", _passed_checks(first_runs)]
    scores = recipe_scores(first_runs)
    (file, arm), best = min(scores.items(), key=lambda item: item[1])
    lines += [
        "",
        f"Chosen: {_recipe(runs[file]['finetune'])}, {arm} ({best:.2f} of pinning's errors "
        "outside on average; "
        + ", ".join(
            f"{_recipe(runs[f]['finetune'])} {a}: {v:.2f}"
            for (f, a), v in sorted(scores.items(), key=lambda item: item[1])[1:4]
        )
        + " next).",
    ]
    for name, data in runs.items():
        if _blends(data):
            lines += ["", *_second_run(name, data, runs[file], arm)]
    return lines


def _second_run(name: str, data: dict, chosen: dict, arm: str) -> list[str]:
    """A later run of the chosen recipe on a base model trained again, with attrackt's rule
    (the mean of the associations before and after fine-tuning, refused where it links the
    held-out cells worse) and the check on held-out cells with nothing else pinned."""
    rule = data["held_out_rule"]
    lines = [
        f"`{name}`: the chosen recipe ({_recipe(data['finetune'])}) again, on a base model "
        "trained again by the same accuracy recipe (`accuracy_run2_base.json`), fine-tuned in "
        "the same GPU call as the fine-tuned cases of `interactive_run2_base.json`. *attrackt*: "
        f"what fine-tuning gives now, the mean of the associations before and after (fine-tuned "
        f"share {rule['tuned_share']:g}), refused where it gets at least {rule['min_gain']} "
        "more held-out cells wrong than the model before (k/n: used in k of n seeds); *free*: the "
        "fine-tuned model where it gets the held-out cells, linked with no other answer "
        "pinned, at least "
        f"{rule['min_gain']} fewer wrong (a check with more errors to count). Held-out cells "
        "wrong, per seed, before → after: with the other answers pinned (the mean) and with "
        "none pinned (the fine-tuned model).",
        "",
        "| movie | answers | pin | attrackt | unchecked | mix | free | held-out wrong, pinned "
        "| held-out wrong, none pinned |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def wrong(found: dict) -> str:
        return ", ".join(
            f"{c['model']['wrong_before']} → {c['model']['wrong_after']} of "
            f"{c['model']['held_out']}"
            for c in found["checks"]
            if c.get("model", {}).get("wrong_before") is not None
        )

    for movie, rankings in data["datasets"].items():
        for budget, found in rankings["confidence"].items():
            cells = [_cell(found["pin"]["errors_outside"], 1)] + [
                f"{_cell(found[a]['errors_outside'], 1)}{_used(found[a])}"
                for a in ("pin+lora", "pin+lora-unchecked", "pin+lora-mix", "pin+lora-free")
            ]
            lines.append(
                f"| {movie} 01 | {budget} | {' | '.join(cells)} | {wrong(found['pin+lora'])} "
                f"| {wrong(found['pin+lora-free'])} |"
            )
    both = {"first run": recipe_scores({"": chosen}), "this run": recipe_scores({"": data})}
    beat = [
        arm_name
        for arm_name in ("pin+lora-unchecked", "pin+lora-mix")
        if all(scores[("", arm_name)] < 1 for scores in both.values())
    ]
    lines += [
        "",
        "Errors outside relative to pinning alone, mean over both movies and budgets: "
        + "; ".join(
            f"{arm_name} {both['first run'][('', arm_name)]:.2f} (first run), "
            f"{both['this run'][('', arm_name)]:.2f} (this run)"
            for arm_name in ("pin+lora-unchecked", "pin+lora-mix")
        )
        + f"; the first run's check (pin+lora) {both['first run'][('', 'pin+lora')]:.2f}. "
        + f"The first run chose {arm}; below 1 in both runs: {', '.join(beat) or 'none'}"
        + (
            ", what fine-tuning gives since (`attrackt.link.held_out.TUNED_SHARE`)."
            if beat == ["pin+lora-mix"]
            else "."
        ),
    ]
    return lines


def _passed_checks(runs: dict[str, dict]) -> str:
    """Every held-out check a learned result passed on the training movies: by how many cells,
    and whether that result then linked the cells nobody answered better or worse."""
    margins, worse, better = [], 0, 0
    for data in runs.values():
        for rankings in data["datasets"].values():
            for found in rankings["confidence"].values():
                pin = found["pin"]["errors_outside"]
                for arm, key, result in (
                    ("pin+lora", "model", "pin+lora-unchecked"),
                    ("pin+ssvm", "weights", "pin+ssvm"),
                ):
                    for seed, check in enumerate(found.get(arm, {}).get("checks", [])):
                        check = check.get(key) or {}
                        before, after = check.get("wrong_before"), check.get("wrong_after")
                        if before is None or after >= before:
                            continue
                        margins.append(before - after)
                        outside = found[result]["errors_outside"][seed]
                        worse += outside > pin[seed]
                        better += outside < pin[seed]
    return (
        f"The held-out check (at the rule of these runs: used where fewer held-out cells are "
        f"wrong) passed {len(margins)} learned results, by {', '.join(map(str, margins))} "
        f"cell(s); {worse} of them linked the cells nobody answered worse than pinning alone, "
        f"{better} better. Since then a learned result must get at least 2 fewer held-out cells "
        "wrong (`attrackt.link.held_out.MIN_GAIN`)."
    )


def render_run_cpu(data: dict) -> list[str]:
    lines = [
        "### `attrackt run` and `attrackt demo` on a CPU (`bench/run_cpu.py` → "
        "`results/run_cpu.json`)",
        "",
        f"{data['provenance']['machine']['cpu_count']} CPU cores, no GPU; a fresh project per "
        f"seed ({', '.join(map(str, data['seeds']))}); the whole command timed.",
        "",
        "| command | minutes | AOGM | AOGM position only | the guard |",
        "|---|---|---|---|---|",
    ]
    names = {
        "run": f"`attrackt run {data['movie']} --gt-detections` (default plan)",
        "quick": f"`attrackt run {data['movie']} --gt-detections --quick`",
        "demo": "`attrackt demo` (synthetic movie)",
    }
    for key, label in names.items():
        found = data["runs"].get(key)
        if not found:
            continue
        minutes = [r["seconds"] / 60 for r in found]
        guards = ", ".join(sorted({r["guard"] for r in found}))
        lines.append(
            f"| {label} | {_cell(minutes, 1)} | {_cell([r['aogm'] for r in found], 1)} | "
            f"{_cell([r['aogm_position'] for r in found], 1)} | {guards} |"
        )
    plan = data["runs"]["run"][0].get("plan")
    if plan:
        lines += ["", f"The plan `attrackt run` stated: *{plan}*"]
    return lines


def render_ssvm(data: dict) -> list[str]:
    lines = [
        "### Learning the linker's weights (`bench/ssvm_convergence.py` → "
        "`results/ssvm_convergence.json`)",
        "",
        "The structured SVM on the cases of the interactive benchmark (confidence ranking, seed "
        "0): bundle iterations over all completion rounds, the latent objective at the start of "
        "the first and the last round, and the weights that moved most." + _start_costs(data),
        "",
        "| dataset | answers | iterations | rounds | converged | objective first → last | "
        "seconds | weights moved most |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in data["runs"].values():
        rounds = run["rounds"]
        first = rounds[0]["latent_objective"] if rounds else float("nan")
        last = rounds[-1]["latent_objective"] if rounds else float("nan")
        moved = sorted(run["weights"], key=lambda k: -abs(run["weights"][k] - run["initial"][k]))[
            :2
        ]
        change = ", ".join(f"{k} {run['initial'][k]:g} → {run['weights'][k]:.2f}" for k in moved)
        lines.append(
            f"| {run['dataset']} | {run['budget']} | {run['iterations']} | {len(rounds)} | "
            f"{'yes' if run['converged'] else 'no'} | {first:.4g} → {last:.4g} | "
            f"{run['seconds']:.0f} | {change} |"
        )
    return lines


def render_run_3d(data: dict) -> list[str]:
    machine = data["provenance"]["machine"]
    where = ", ".join(machine.get("gpus") or []) or f"{machine['cpu_count']} CPU cores"
    lines = [
        "### 3D through `attrackt run` (`bench/run_3d.py` → `results/run_3d.json`)",
        "",
        f"`attrackt run --quick` on {where} (device `{data['gpu']}`), one seed: time and memory "
        "only (its scores stay in the JSON: one seed makes no accuracy figure).",
        "",
        "| movie | voxel size | seconds | slowest stages | peak memory (MiB) | the guard |",
        "|---|---|---|---|---|---|",
    ]
    for name, movie in data["movies"].items():
        stages = sorted(movie["stages"].items(), key=lambda kv: -kv[1]["seconds"])[:2]
        slow = ", ".join(f"{stage} {found['seconds']:.0f} s" for stage, found in stages)
        voxel = re.search(r"--voxel-size (\S+)", movie["command"])
        lines.append(
            f"| {name} | {voxel.group(1) if voxel else '1'} | {movie['seconds_total']:.0f} | "
            f"{slow} | {movie['peak_rss_mib']:.0f} | {movie['guard']['verdict']} |"
        )
    return lines


#: result file -> its renderer, in the order of the section
RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "accuracy.json": render_accuracy,
    "accuracy_interactive_base.json": render_replicate,
    "accuracy_lr_base.json": lambda data: render_replicate(
        data, "accuracy_lr_base.json", "a third"
    ),
    "accuracy_recipe_base.json": lambda data: render_replicate(
        data, "accuracy_recipe_base.json", "a fourth"
    ),
    "accuracy_run2_base.json": lambda data: render_replicate(
        data, "accuracy_run2_base.json", "a fifth"
    ),
    "accuracy_run3_base.json": lambda data: render_replicate(
        data, "accuracy_run3_base.json", "a sixth"
    ),
    "crop_field.json": render_crop_field,
    "accuracy_run_a.json": render_input_ablation,
    "accuracy_motion.json": render_motion,
    "accuracy_hela_alone.json": render_hela_runs,
    "accuracy_ensemble.json": render_ensemble,
    "link_weights.json": render_link_weights,
    "ranking.json": render_ranking,
    "interactive.json": lambda data: render_interactive(
        data, "interactive.json", "accuracy_run3_base.json"
    ),
    "interactive_run2_base.json": lambda data: render_interactive(
        data, "interactive_run2_base.json", "accuracy_run2_base.json"
    ),
    "interactive_recipe_base.json": lambda data: render_interactive(
        data, "interactive_recipe_base.json", "accuracy_recipe_base.json"
    ),
    "interactive_lr.json": lambda data: render_interactive(
        data, "interactive_lr.json", "accuracy_lr_base.json"
    ),
    "interactive_lr_control.json": lambda data: render_interactive(
        data, "interactive_lr_control.json", "accuracy_lr_base.json"
    ),
    "interactive_01_lr1e-4.json": render_recipes,  # every interactive_01_*.json
    "ssvm_convergence.json": render_ssvm,
    "run_cpu.json": render_run_cpu,
    "run_3d.json": render_run_3d,
}


def render() -> str:
    """The whole section, markers included."""
    lines = [START, ""]
    for name, renderer in RENDERERS.items():
        path = RESULTS / name
        if path.is_file():
            lines += renderer(json.loads(path.read_text(encoding="utf-8"))) + [""]
    return "\n".join(lines + [END])


def replace_section(text: str, section: str) -> str:
    """``text`` with the part between the markers replaced by ``section``."""
    if START not in text or END not in text:
        raise SystemExit(f"{README} lacks the markers {START!r} ... {END!r}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + section + tail


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="update README.md")
    group.add_argument("--check", action="store_true", help="fail when README.md differs")
    args = parser.parse_args()
    section = render()
    text = README.read_text(encoding="utf-8")
    wanted = replace_section(text, section)
    if args.check:
        if wanted != text:
            raise SystemExit(
                "README.md's measured section differs from bench/results: run "
                "`python bench/report.py --write`"
            )
        print("README.md's measured section matches bench/results")
    elif args.write:
        README.write_text(wanted, encoding="utf-8")
        print(f"wrote the measured section of {README}")
    else:
        print(section)


if __name__ == "__main__":
    main()
