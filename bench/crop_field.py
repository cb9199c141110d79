"""How wide a crop the auto-encoder should see: the field of view in typical cell diameters.

The auto-encoder's embedding is the teacher of the unsupervised model: it helps where a cell's
embedding is nearer its own parent's than the other candidates'. For each field (``crop_cells``
typical cell diameters) and each training movie (01; the auto-encoder trains on 01 + 02 without
labels, as in ``bench/accuracy.py``), this counts the children whose nearest candidate parent in
embedding (of the k = 10 nearest in position, as the linker offers them) is not the true one:
the teacher's *miss rate*, against that of position alone. The field with the lowest geometric
mean miss rate over the movies is the choice (``PrepareConfig.crop_cells``).

    ATTRACKT_DATA=../shared/data python bench/crop_field.py --fields 1.5,2.5,3.5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, choose_by_geometric_mean, provenance, write_results  # noqa: E402


def miss_rates(store, sequence: str) -> dict[str, float]:
    """Children of ``sequence`` (with their true parent one frame back among their candidates)
    whose nearest candidate by embedding, and by position, is another cell."""
    from attrackt.link.candidates import candidate_links

    part = store.select([sequence])
    detections, edges = part.detections, part.edges()
    links = candidate_links(detections)
    rows = detections.rows_of(links.ravel()).reshape(-1, 2)
    parent = dict(zip(edges[:, 1].tolist(), edges[:, 0].tolist(), strict=True))
    z = detections.vectors["embedding"].astype(np.float64)
    pos = detections.positions()
    wrong = {"embedding": 0, "position": 0}
    children = 0
    for child in np.unique(links[:, 1]):
        mine = links[:, 1] == child
        sources, source_rows = links[mine, 0], rows[mine, 0]
        truth = parent.get(int(child))
        if truth is None or truth not in sources or len(sources) < 2:
            continue
        row = rows[mine, 1][0]
        children += 1
        for kind, values in (("embedding", z), ("position", pos)):
            distance = np.linalg.norm(values[source_rows] - values[row], axis=1)
            wrong[kind] += int(sources[np.argmin(distance)] != truth)
    return {kind: count / max(children, 1) for kind, count in wrong.items()} | {
        "children": children
    }


def measure(name: str, sources: list[Path], gt: bool, field: float, args) -> dict:
    """Prepare the movie at this field, train the auto-encoder, count the misses on 01."""
    from accuracy import CROP_PIXELS, autoencoder_config

    from attrackt.embed import embed_store
    from attrackt.prepare import PrepareConfig, prepare

    start = time.perf_counter()
    store = prepare(
        sources, PrepareConfig(gt_detections=gt, crop_cells=field, crop_pixels=CROP_PIXELS)
    )
    config = autoencoder_config(args.seed, args.device, args.minutes, args.base_channels)
    with tempfile.TemporaryDirectory() as tmp:
        embedded = embed_store(store, config, Path(tmp) / "ae", resume=False)
    found = miss_rates(embedded, "01")
    found |= {"crop_size": store.meta["crop_size"], "seconds": time.perf_counter() - start}
    print(f"{name} at {field:g} diameters ({store.meta['crop_size']} px): {found}", flush=True)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("ATTRACKT_DATA", "../shared/data"))
    parser.add_argument("--fields", default="1.5,2.5,3.5", help="fields in cell diameters")
    parser.add_argument("--minutes", type=float, default=1.5, help="auto-encoder training")
    parser.add_argument("--base-channels", type=int, default=32)  # as accuracy.py
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", default=str(RESULTS / "crop_field.json"))
    args = parser.parse_args()

    from accuracy import DATASETS, SYNTHETIC_SEEDS

    from attrackt.synthetic import generate, preset

    fields = [float(f) for f in args.fields.split(",")]
    datasets: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in DATASETS.items():
            if "ctc" in spec:
                sources = [Path(args.data) / spec["ctc"] / s for s in ("01", "02")]
            else:
                for seq, seed in SYNTHETIC_SEEDS.items():
                    generate(preset(spec["preset"], seed=seed)).write(Path(tmp) / name, seq)
                sources = [Path(tmp) / name / s for s in ("01", "02")]
            datasets[name] = {
                f"{f:g}": measure(name, sources, "ctc" in spec, f, args) for f in fields
            }
    table = {
        name: {f: [max(r["embedding"], 1e-4)] for f, r in per.items()}
        for name, per in datasets.items()
    }
    choice, scores = choose_by_geometric_mean(table)
    print(f"chosen on the training movies (01): {choice} diameters ({scores})")
    report = {
        "provenance": provenance(),
        "protocol": "GT detections; auto-encoder trained on 01 + 02 without labels, "
        "misses counted on 01 (the training movie): children whose nearest candidate parent "
        "(of the k = 10 nearest in position) in embedding is not the true parent",
        "seed": args.seed,
        "budgets_minutes": {"autoencoder": args.minutes},
        "base_channels": args.base_channels,
        "fields": fields,
        "datasets": datasets,
        "choice": {"crop_cells": float(choice), "geometric_mean_miss_rate": scores},
    }
    write_results(Path(args.json), report)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
