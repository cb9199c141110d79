"""The peer's model for speed comparisons: Trackastra's ``TrackingTransformer``, random weights.

Trackastra's package ``__init__`` files import its whole application (dask, requests, ...), which
GPU machines lack; its model needs only torch. :func:`extract_peer` copies the few source files
the model needs (``trackastra/model``, ``trackastra/utils``) out of its wheel
(``pip download trackastra==0.5.6 --no-deps``), and :func:`load_tracking_transformer` imports the
model class from them (or from an installed trackastra) without running those ``__init__`` files,
standing in empty modules for ``dask``/``yaml`` where they are missing (the model's forward pass
uses neither). Nothing of the peer is changed; no weights are downloaded.

:func:`compare_speed` times, on the same batch of windows, a training step (forward, loss,
backward, AdamW) and inference (forward, normalisation) of our model and of the peer's.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import time
import types
import zipfile
from pathlib import Path

import torch

PEER_FILES = ("trackastra/_version.py", "trackastra/model/", "trackastra/utils/")


def extract_peer(wheel: str | Path, dest: str | Path) -> Path:
    """Copy the model's source files out of a trackastra wheel into ``dest``; return ``dest``."""
    dest = Path(dest)
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if name.endswith(".py") and name.startswith(PEER_FILES):
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(archive.read(name))
    return dest


def _stub(name: str) -> None:
    """An empty module for ``name`` (and its parents) unless the real one can be imported."""
    if name in sys.modules:
        return
    try:
        if importlib.util.find_spec(name) is not None:
            return
    except ModuleNotFoundError:
        pass
    parent = name.rpartition(".")[0]
    if parent:
        _stub(parent)
    module = types.ModuleType(name)
    module.__path__ = []  # importable as a package

    def placeholder(attribute: str) -> type:  # for names used in annotations (da.Array)
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        return type(attribute, (), {})

    module.__getattr__ = placeholder
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], name.rpartition(".")[2], module)


def load_tracking_transformer(source: str | Path | None = None) -> type:
    """The peer's ``TrackingTransformer`` class, from an extracted folder (holding
    ``trackastra/``) or, with ``None``, from an installed trackastra."""
    if source is None:
        spec = importlib.util.find_spec("trackastra")
        if spec is None or not spec.submodule_search_locations:
            raise ModuleNotFoundError("trackastra is not installed and no source folder was given")
        root = Path(next(iter(spec.submodule_search_locations)))
    else:
        root = Path(source) / "trackastra"
    if not (root / "model" / "model.py").is_file():
        raise FileNotFoundError(f"{root}: no trackastra/model/model.py")
    for name in ("dask", "dask.array", "yaml"):
        _stub(name)
    for name, folder in (("trackastra", root), ("trackastra.model", root / "model")):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(folder)]  # skip the package's own __init__
            sys.modules[name] = package
    return importlib.import_module("trackastra.model.model").TrackingTransformer


def build_peer(feature_dim: int, ndim: int = 2, window: int = 6) -> torch.nn.Module:
    """The peer at the method's size (d256, 6 + 6 layers, 4 heads), RoPE, quiet softmax."""
    cls = sys.modules["trackastra.model.model"].TrackingTransformer
    return cls(
        coord_dim=ndim,
        feat_dim=feature_dim,
        d_model=256,
        nhead=4,
        num_encoder_layers=6,
        num_decoder_layers=6,
        dropout=0.1,
        window=window,
        spatial_pos_cutoff=256,
        attn_positional_bias="rope",
        causal_norm="quiet_softmax",
    )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats


def compare_speed(ours, loss_fn, peer, batch, device: torch.device, repeats: int = 5) -> dict:
    """Seconds per training step and per inference pass of both models on ``batch``.

    Our step is our training objective (``loss_fn``); the peer's is its forward pass, its
    parental normalisation and a cross-entropy against the ground truth of the batch (our
    supervised loss), as its supervised training does. Both run under the same bf16 autocast
    (on CUDA) with AdamW. Inference: forward and normalisation without gradients, eval mode.
    """
    from attrackt.losses import supervised_loss
    from attrackt.model import valid_pairs

    amp = device.type == "cuda"
    padding = ~batch.mask
    peer_times = torch.where(batch.mask, batch.times, -1)
    a_gt = batch.a_gt if batch.a_gt is not None else torch.zeros_like(padding, dtype=torch.float)
    valid = valid_pairs(batch.times, batch.mask)

    def autocast(enabled: bool = amp):
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)

    def peer_scores():
        with autocast(peer_amp):
            logits = peer(batch.coords, batch.features, padding_mask=padding)
        return peer.normalize_output(logits.float(), peer_times, batch.coords)

    ours.to(device).train()
    peer.to(device).train()
    peer_amp = amp
    try:  # the peer's attention mask may not mix with bf16 queries; then it runs in float32
        with torch.no_grad():
            peer_scores()
    except RuntimeError:
        peer_amp = False

    def make_step(model, loss):
        params = [p for p in model.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=1e-5, fused=device.type == "cuda")

        def step():
            with autocast():
                value = loss()
            optimiser.zero_grad(set_to_none=True)
            value.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()

        return step

    out: dict = {
        "batch_windows": len(batch),
        "tokens": int(batch.mask.shape[1]),
        "ours_bf16": amp,
        "peer_bf16": peer_amp,
    }
    steps = {
        "ours": make_step(ours, lambda: loss_fn(ours, batch)["loss"]),
        "peer": make_step(peer, lambda: supervised_loss(peer_scores(), a_gt, valid)),
    }
    for name, step in steps.items():
        out[f"{name}_train_step_s"] = _seconds(step, device, repeats)
    ours.eval()
    peer.eval()
    with torch.no_grad():
        for name, infer in (("ours", lambda: ours.associations(batch)), ("peer", peer_scores)):
            with autocast():
                out[f"{name}_inference_s"] = _seconds(infer, device, repeats)
    out["train_speedup"] = out["peer_train_step_s"] / out["ours_train_step_s"]
    out["inference_speedup"] = out["peer_inference_s"] / out["ours_inference_s"]
    out["ours_windows_per_s"] = len(batch) / out["ours_train_step_s"]
    out["peer_windows_per_s"] = len(batch) / out["peer_train_step_s"]
    return {
        k: (round(v, 6) if isinstance(v, float) and math.isfinite(v) else v) for k, v in out.items()
    }
