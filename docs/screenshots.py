"""The README's screenshots of the proof-reading widget, taken in a real napari window.

    xvfb-run -s "-screen 0 1600x1000x24" python docs/screenshots.py [--hela SEQUENCE]

writes ``docs/images/napari_*.png``:

- ``napari_cell.png``: the current cell zoomed, its next frame beside it, markers by role, the
  lineage (a synthetic movie whose associations stand in for a trained model's: the truth's
  links scored 0.6-0.95, one link and one division missed by the solver, so every marker shows);
- ``napari_hela.png`` (with ``--hela``, e.g. ``$ATTRACKT_DATA/Fluo-N2DL-HeLa/02``): the same on
  a real movie of ~150 nuclei a frame (GT detections, position-only linking, random ranking:
  no model is trained here);
- ``napari_finetune.png``: a fine-tuning round running (steps, time left, Cancel), answering on;
- ``napari_error.png``: a contradictory answer, refused in red;
- ``napari_round.png``: a round's summary after re-solving.

The projects are built in a temporary folder (seconds; ``--hela`` about a minute).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from attrackt.data import Associations, Tracks
from attrackt.napari.viewer import open_viewer
from attrackt.store import Store
from attrackt.synthetic import SyntheticConfig, generate

SIZE = (1500, 950)


def synthetic_project(root: Path) -> Path:
    """A synthetic project whose solver cut one link and one daughter, with a tiny base model
    (4 steps) to fine-tune and associations that stand in for a trained model's."""
    from attrackt.features import regionprops_features
    from attrackt.model import TransformerConfig, WindowConfig
    from attrackt.train import TrainConfig
    from attrackt.training import AssociationTrainConfig, train_association_model

    clip = generate(
        SyntheticConfig(shape=(320, 320), frames=12, density=4, division_rate=0.08, seed=4)
    )
    clip.write(root / "ctc", "01")
    gt = clip.tracks("01")
    det = regionprops_features(clip.images, clip.masks, gt.detections)
    det = det.with_vectors(embedding=det.table[det.feature_columns].to_numpy(np.float32))
    kids = gt.children()
    halved = next(p for p, c in kids.items() if len(c) == 2)
    ends = next(p for p, c in kids.items() if len(c) == 1 and p != halved)
    cut = {(halved, kids[halved][1]), (ends, kids[ends][0])}
    solver = Tracks(det, np.asarray([e for e in gt.edges.tolist() if tuple(e) not in cut]))
    scores = np.random.default_rng(0).uniform(0.6, 0.95, len(gt.edges))
    project = root / "project"
    Store(det, masks={"01": clip.masks}, meta={"sources": {"01": str(root / "ctc" / "01")}}).save(
        project / "embedded.npz"
    )
    solver.save(project / "tracks")
    Associations.from_arrays(gt.edges[:, 0], gt.edges[:, 1], scores).save(
        project / "associations.parquet"
    )
    fast = TrainConfig(steps=4, batch_size=4, lr=1e-3, device="cpu", progress=False)
    model = TransformerConfig(d_model=16, n_heads=2, encoder_layers=1, decoder_layers=1)
    config = AssociationTrainConfig(
        model=model, windows=WindowConfig(window=3), train=fast, heads_width=8, val_frames=0
    )
    train_association_model(det, None, config, project / "model")
    return project


def hela_project(sequence: Path, root: Path) -> Path:
    """A project of a CTC sequence: GT detections, position-only tracks, no model."""
    from attrackt.link import LinkConfig, link
    from attrackt.prepare import PrepareConfig, prepare

    store = prepare(
        [sequence], PrepareConfig(masks=True, gt_detections=True, crop_size=32, crop_pixels=32)
    )
    project = root / "hela"
    store.save(project / "store.npz")
    link(store.detections, None, None, LinkConfig(k=10)).tracks.save(project / "tracks")
    return project


def settle(seconds: float = 0.5) -> None:
    from qtpy.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.02)


def shoot(viewer, path: Path) -> None:
    settle()
    viewer.screenshot(str(path), canvas_only=False)
    print("wrote", path)


def endless_finetuning():
    """Fine-tuning long enough to be seen running."""
    from attrackt.finetune import FinetuneConfig
    from attrackt.model.lora import LoRAConfig
    from attrackt.napari.session import SessionConfig
    from attrackt.predict import PredictConfig
    from attrackt.train import TrainConfig

    train = TrainConfig(steps=10, batch_size=2, lr=1e-3, device="cpu", progress=False)
    return SessionConfig(
        finetune=FinetuneConfig(lora=LoRAConfig(rank=2, alpha=2.0), min_steps=2000, train=train),
        predict=PredictConfig(tta=False, device="cpu", progress=False),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "images")
    parser.add_argument("--hela", type=Path, help="a CTC sequence folder for napari_hela.png")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        project = synthetic_project(root)
        viewer, widget = open_viewer(project, config=endless_finetuning())
        viewer.window.resize(*SIZE)
        settle(1)
        widget.back_button.click()  # zoom again: the canvas has its size now
        shoot(viewer, args.out / "napari_cell.png")

        widget.accept_button.click()
        widget.finetune_button.click()
        end = time.monotonic() + 120
        while "left" not in widget.progress.format() and time.monotonic() < end:
            settle(0.2)
        settle(3)
        widget.none_button.click()  # answering goes on
        shoot(viewer, args.out / "napari_finetune.png")
        widget.cancel_button.click()
        while widget.busy:
            settle(0.2)

        session = widget.session
        kids = session.tracks.children()
        first, second = [p for p, c in kids.items() if len(c) == 1][:2]
        session.go_to(first)
        session.give(kids[first])
        widget._go_to_id(second)
        session.give(kids[first])  # one child for two parents
        widget._show()
        widget.resolve_button.click()
        shoot(viewer, args.out / "napari_error.png")
        session.give(kids[second])

        widget.resolve_button.click()
        while widget.busy:
            settle(0.2)
        shoot(viewer, args.out / "napari_round.png")
        viewer.close()

        if args.hela is not None:
            viewer, widget = open_viewer(hela_project(args.hela, root))
            viewer.window.resize(*SIZE)
            settle(1)
            widget.next_button.click()
            shoot(viewer, args.out / "napari_hela.png")
            viewer.close()


if __name__ == "__main__":
    main()
