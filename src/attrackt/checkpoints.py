"""Checkpoint files: what a model is (its kind and configuration), its weights, and the state a
run needs to resume; written atomically, read with clear errors; and the device to use."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attrackt import distributed
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

logger = logging.getLogger(__name__)

CHECKPOINT_FORMAT = 1


@dataclass
class Checkpoint:
    """The content of a checkpoint file, as read by :func:`load_checkpoint`."""

    path: Path
    kind: str
    model_config: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    step: int
    train_config: dict[str, Any]
    extra: dict[str, Any]
    best_val_loss: float | None
    state: dict[str, Any]  # everything, optimiser, scheduler and random states included

    def load_into(self, model: nn.Module) -> nn.Module:
        """Load the weights into ``model`` after checking its kind, parameter names and shapes."""
        _match_model(self.path, self.kind, self.model_state, model)
        getattr(model, "module", model).load_state_dict(self.model_state)
        return model


# --------------------------------------------------------------------------------------------
# small pieces (public: the objectives and their tests use them)
# --------------------------------------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA, then MPS, then CPU; anything else is passed to ``torch.device``.

    In one of several processes launched together (torchrun), CUDA without an index is the
    process's own GPU, ``cuda:LOCAL_RANK``.
    """
    if isinstance(device, torch.device):
        return distributed.local_device(device)
    if device == "auto":
        if torch.cuda.is_available():
            return distributed.local_device(torch.device("cuda"))
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise InputError("device", f"unknown device {device!r} ({err})") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device", "CUDA was asked for but is not available")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError("device", "MPS was asked for but is not available")
    return distributed.local_device(resolved)


def model_identity(model: nn.Module) -> tuple[str, dict[str, Any]]:
    """The ``kind`` tag and the configuration dict that a checkpoint records for ``model``.

    ``model.kind`` (default: the class name) and ``dataclasses.asdict(model.config)`` when the
    model carries a dataclass ``config`` (default: an empty dict).
    """
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    kind = str(getattr(model, "kind", type(model).__name__))
    config = getattr(model, "config", None)
    as_dict = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else {}
    return kind, as_dict


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------


def check_plain(value: Any, where: str) -> None:
    """Raise ``TypeError`` unless ``value`` loads with ``torch.load(weights_only=True)``."""
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is neither str nor int")
            check_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(
        f"{where} holds a {type(value).__name__}; checkpoints keep only tensors, numbers, "
        "strings, lists and dicts"
    )


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` with ``torch.save`` atomically (temp file beside it, fsync, rename)."""
    check_plain(state, "checkpoint")
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _match_model(
    path: Path, kind: str, state: Mapping[str, torch.Tensor], model: nn.Module
) -> None:
    model_kind, _ = model_identity(model)
    model = getattr(model, "module", model)
    if kind != model_kind:
        raise InputError(path, f"holds a {kind!r} model, not the {model_kind!r} model given")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise InputError(
            path,
            f"does not fit the {kind!r} model: parameters missing from the checkpoint "
            f"{missing[:5]}, parameters the model lacks {unexpected[:5]}",
        )
    for name, tensor in own.items():
        if tuple(state[name].shape) != tuple(tensor.shape):
            raise InputError(
                path,
                f"parameter {name!r} has shape {tuple(state[name].shape)} in the checkpoint but "
                f"{tuple(tensor.shape)} in the model (a model of another configuration?)",
            )


def read_torch_file(path: str | Path, what: str) -> Any:
    """What ``torch.save`` wrote to ``path`` (``weights_only``: no pickled objects run); a missing,
    truncated or foreign file is an :class:`InputError` naming the file and ``what`` it should
    be."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"no such {what} file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise InputError(
            path, f"not a readable {what} file (truncated or corrupt?): {err}"
        ) from err


def load_checkpoint(path: str | Path, model: nn.Module | None = None) -> Checkpoint:
    """Read a checkpoint written by :func:`fit` (``weights_only``: no pickled objects run).

    With ``model``, check that the checkpoint holds a model of the same kind and shapes and load
    its weights into ``model``. Every problem (missing, truncated or foreign file, another kind
    or shape) is an :class:`InputError` naming the file.
    """
    path = Path(path)
    state = read_torch_file(path, "checkpoint")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(path, "not an attrackt checkpoint")
    checkpoint = Checkpoint(
        path=path,
        kind=state["kind"],
        model_config=state["model_config"],
        model_state=state["model"],
        step=int(state["step"]),
        train_config=state["train_config"],
        extra=state["extra"],
        best_val_loss=state["best_val_loss"],
        state=state,
    )
    if model is not None:
        checkpoint.load_into(model)
    return checkpoint


# --------------------------------------------------------------------------------------------
# the loop
# --------------------------------------------------------------------------------------------
