"""LoRA through peft: low-rank adapters on chosen linear layers, for fine-tuning on a few answers.

An adapted layer computes ``x W^T + b + (alpha / rank) * B A dropout(x)``, with ``A`` drawn like
a linear layer's weight and ``B`` zero, so a freshly adapted model computes exactly what the
base model does. :func:`apply_lora` puts peft's LoRA layers (``peft.inject_adapter_in_model``
with a ``peft.LoraConfig``) in place of the target ``nn.Linear`` modules, in place: the model
stays the same object of the same class (it is not a transformers model; peft's ``PeftModel``
wrapper would put it under ``base_model.model``, renaming every parameter and replacing the
object that training, checkpoints and callers hold). Around
peft, this module adds what the method needs and peft does not do on a plain module: targets
as ``fnmatch`` patterns over module names, base parameters that keep training
(``LoRAConfig.trainable``, the Attrackt heads), a seeded start of ``A``, the train/eval mode of
the replaced layers (peft's new layers start in train mode, dropout on, inside a model in eval
mode), saving the adapters apart from the base checkpoint (:func:`save_adapters`, one
``torch.load``-safe file with the trainable base parameters too), loading them onto a fresh base
model (:func:`load_adapters`) and merging them into its weights (:func:`merge_lora`), after
which the model is a plain model again.

peft is imported only where adapters are made or found: importing it loads transformers
(about 4 s on a busy CPU machine), which prediction and linking do not need.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attrackt.checkpoints import read_torch_file
from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

ADAPTER_FORMAT = "attrackt-lora-2"  # 2: peft's parameter names (1: the hand-written LoRA's)
_ADAPTER = "default"  # the name of the one peft adapter a model carries


@dataclass(frozen=True)
class LoRAConfig:
    """Which layers get adapters and how large they are (defaults: the method's settings).

    ``targets``: ``fnmatch`` patterns over module names (``"*q_proj"`` matches every query
    projection, ``"encoder.0.*"`` the first encoder layer's); only ``nn.Linear`` modules are
    adapted. ``trainable``: patterns over *parameter* names of the base model that keep
    training (for example ``"heads.*"`` for the Attrackt loss's ``m_E``/``m_D``). ``seed``
    fixes the random start of the ``A`` matrices.
    """

    rank: int = 32
    alpha: float = 32.0
    dropout: float = 0.1
    targets: tuple[str, ...] = ("*q_proj", "*k_proj", "*v_proj", "*out_proj")
    trainable: tuple[str, ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise InputError("LoRA config", f"rank must be >= 1, got {self.rank}")
        if not 0 < self.alpha < math.inf:
            raise InputError("LoRA config", f"alpha must be positive and finite, got {self.alpha}")
        if not 0 <= self.dropout < 1:
            raise InputError("LoRA config", f"dropout must lie in [0, 1), got {self.dropout}")
        if not self.targets:
            raise InputError("LoRA config", "name at least one target layer pattern")
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "trainable", tuple(self.trainable))

    def to_dict(self) -> dict[str, Any]:
        raw = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in raw.items()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoRAConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def lora_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The adapted layers of ``model`` (peft LoRA layers) by module name."""
    from peft.tuners.lora import LoraLayer

    return {n: m for n, m in model.named_modules() if isinstance(m, LoraLayer)}


def _is_adapter(name: str) -> bool:
    return f".lora_A.{_ADAPTER}." in name or f".lora_B.{_ADAPTER}." in name


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the module ``name``."""
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def apply_lora(model: nn.Module, config: LoRAConfig | None = None) -> list[str]:
    """Adapt every ``nn.Linear`` whose name matches ``config.targets``; freeze the rest.

    After this, exactly the adapter matrices and the base parameters matching
    ``config.trainable`` require gradients. Returns the names of the adapted layers.
    """
    from peft import LoraConfig, inject_adapter_in_model

    config = config or LoRAConfig()
    if lora_layers(model):
        raise InputError("model", "already carries LoRA adapters; merge or remove them first")
    names = [
        name
        for name, module in model.named_modules()
        if type(module) is nn.Linear and any(fnmatch.fnmatch(name, p) for p in config.targets)
    ]
    if not names:
        raise InputError(
            "LoRA config", f"no linear layer of the model matches the targets {config.targets}"
        )
    training = {name: model.get_submodule(name).training for name in names}
    peft_config = LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=names,  # full names: peft matches them exactly
    )
    with torch.random.fork_rng(devices=[]):  # peft draws its own start of A: not from ours
        inject_adapter_in_model(peft_config, model, adapter_name=_ADAPTER)
    generator = torch.Generator().manual_seed(config.seed)
    for name in names:
        layer = model.get_submodule(name)
        layer.train(training[name])
        start = layer.lora_A[_ADAPTER].weight
        with torch.no_grad():  # peft's own start, drawn from the seeded generator
            fresh = torch.empty(start.shape)
            nn.init.kaiming_uniform_(fresh, a=math.sqrt(5), generator=generator)
            start.copy_(fresh)
    for name, param in model.named_parameters():
        trainable = _is_adapter(name) or any(fnmatch.fnmatch(name, p) for p in config.trainable)
        param.requires_grad_(trainable)
    return names


def _unload(model: nn.Module, merge: bool) -> nn.Module:
    for name, layer in lora_layers(model).items():
        if merge and not layer.merged:
            layer.merge()
        elif not merge and layer.merged:
            layer.unmerge()
        base = layer.get_base_layer()
        base.train(layer.training)
        _swap(model, name, base)
    if hasattr(model, "peft_config"):  # set by peft's injection
        del model.peft_config
    return model


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer's weight (in place); the model has no adapters after."""
    return _unload(model, merge=True)


def remove_lora(model: nn.Module) -> nn.Module:
    """Drop every adapter without merging (in place): the base model is back."""
    return _unload(model, merge=False)


def adapter_state(model: nn.Module, config: LoRAConfig) -> dict[str, torch.Tensor]:
    """The adapter matrices and the ``config.trainable`` base parameters, detached on CPU."""
    return {
        name: param.detach().cpu().clone()
        for name, param in model.named_parameters()
        if _is_adapter(name) or any(fnmatch.fnmatch(name, p) for p in config.trainable)
    }


def save_adapters(
    path: str | Path,
    model: nn.Module,
    config: LoRAConfig,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write the adapters (see :func:`adapter_state`) and ``config`` to ``path``, atomically."""
    if not lora_layers(model):
        raise InputError("model", "carries no LoRA adapters to save")
    state = {
        "format": ADAPTER_FORMAT,
        "config": config.to_dict(),
        "adapters": adapter_state(model, config),
        "extra": dict(extra or {}),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def read_adapters(path: str | Path) -> tuple[LoRAConfig, dict[str, torch.Tensor], dict]:
    """The configuration, tensors and extra facts of an adapter file."""
    path = Path(path)
    state = read_torch_file(path, "adapter")
    if not isinstance(state, dict) or state.get("format") != ADAPTER_FORMAT:
        found = state.get("format") if isinstance(state, dict) else None
        hint = (
            "; it was written before attrackt used peft: use the merged model.pt beside it"
            if found == "attrackt-lora-1"
            else ""
        )
        raise InputError(path, f"not an attrackt LoRA adapter file ({ADAPTER_FORMAT}){hint}")
    return LoRAConfig.from_dict(state["config"]), state["adapters"], state.get("extra", {})


def load_adapters(path: str | Path, model: nn.Module) -> LoRAConfig:
    """Adapt ``model`` (a base model, or one adapted with the same configuration) and load the
    adapters saved at ``path`` into it. Returns their configuration."""
    config, tensors, _ = read_adapters(path)
    if not lora_layers(model):
        apply_lora(model, config)
    own = dict(model.named_parameters())
    expected = {n for n in own if _is_adapter(n)}
    missing = sorted(expected - set(tensors))
    unknown = sorted(set(tensors) - set(own))
    if missing or unknown:
        raise InputError(
            path,
            f"does not fit the model: adapters missing {missing[:5]}, unknown parameters "
            f"{unknown[:5]} (another model configuration?)",
        )
    with torch.no_grad():
        for name, tensor in tensors.items():
            if own[name].shape != tensor.shape:
                raise InputError(
                    path,
                    f"parameter {name!r} has shape {tuple(tensor.shape)} in the file but "
                    f"{tuple(own[name].shape)} in the model",
                )
            own[name].copy_(tensor)
    return config
