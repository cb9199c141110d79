"""LoRA: low-rank adapters on chosen linear layers, for fine-tuning on a few corrections.

An adapted layer computes ``x W^T + b + (alpha / rank) * dropout(x) A^T B^T`` with ``A``
(rank x in) drawn like a linear layer's weight and ``B`` (out x rank) zero, so a freshly adapted
model computes exactly what the base model does. :func:`apply_lora` swaps each target
``nn.Linear`` for a :class:`LoRALinear` that *shares* the base weight and bias tensors (their
names in the state dict stay the same, so a base checkpoint loads into an adapted model) and
freezes every base parameter except those named in ``LoRAConfig.trainable``.

Why a module swap and not ``torch.nn.utils.parametrize`` or peft: a weight parametrization
``W + BA`` cannot apply LoRA's dropout, which acts on the layer's *input*; peft would add a
dependency (and its transformers-oriented stack) for some eighty lines of code. The adapters
alone (plus any extra trainable parameters) are saved apart from the base checkpoint
(:func:`save_adapters`), can be loaded onto a fresh base model (:func:`load_adapters`) and
merged into its weights (:func:`merge_lora`), after which the model is a plain transformer again.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from attrackt.errors import InputError
from attrackt.io.atomic import atomic_path

ADAPTER_FORMAT = "attrackt-lora-1"


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
        if not self.alpha > 0:
            raise InputError("LoRA config", f"alpha must be > 0, got {self.alpha}")
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


class LoRALinear(nn.Linear):
    """An ``nn.Linear`` (sharing the base layer's weight and bias) plus a low-rank update."""

    def __init__(
        self,
        base: nn.Linear,
        rank: int,
        alpha: float,
        dropout: float,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(
            base.in_features, base.out_features, bias=base.bias is not None, device="meta"
        )
        self.weight = base.weight
        self.bias = base.bias
        like = {"device": base.weight.device, "dtype": base.weight.dtype}
        start = torch.empty(rank, base.in_features)
        nn.init.kaiming_uniform_(start, a=math.sqrt(5), generator=generator)
        self.lora_a = nn.Parameter(start.to(**like))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **like))
        self.lora_dropout = nn.Dropout(dropout)
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        low_rank = F.linear(F.linear(self.lora_dropout(x), self.lora_a), self.lora_b)
        return super().forward(x) + self.scale * low_rank

    def delta_weight(self) -> torch.Tensor:
        """The update ``(alpha / rank) * B A`` that merging adds to the weight."""
        return self.scale * (self.lora_b @ self.lora_a)

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is the base weight plus the update."""
        plain = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None, device="meta"
        )
        plain.weight = nn.Parameter(
            (self.weight + self.delta_weight()).detach(), requires_grad=self.weight.requires_grad
        )
        plain.bias = self.bias
        return plain

    def unadapted(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the base weight and bias (the update dropped)."""
        plain = nn.Linear(
            self.in_features, self.out_features, bias=self.bias is not None, device="meta"
        )
        plain.weight = self.weight
        plain.bias = self.bias
        return plain


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` in place of the module ``name``, in the same train/eval mode."""
    new.train(model.get_submodule(name).training)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The adapted layers of ``model`` by module name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def _is_adapter(name: str) -> bool:
    return name.endswith((".lora_a", ".lora_b"))


def apply_lora(model: nn.Module, config: LoRAConfig | None = None) -> list[str]:
    """Adapt every ``nn.Linear`` whose name matches ``config.targets``; freeze the rest.

    After this, exactly the adapter matrices and the base parameters matching
    ``config.trainable`` require gradients. Returns the names of the adapted layers.
    """
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
    for name, param in model.named_parameters():
        param.requires_grad_(any(fnmatch.fnmatch(name, p) for p in config.trainable))
    generator = torch.Generator().manual_seed(config.seed)
    for name in names:
        base = model.get_submodule(name)
        adapted = LoRALinear(base, config.rank, config.alpha, config.dropout, generator)
        _swap(model, name, adapted)
    return names


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every adapter into its layer's weight (in place); the model has no adapters after."""
    for name, layer in lora_layers(model).items():
        _swap(model, name, layer.merged())
    return model


def remove_lora(model: nn.Module) -> nn.Module:
    """Drop every adapter without merging (in place): the base model is back."""
    for name, layer in lora_layers(model).items():
        _swap(model, name, layer.unadapted())
    return model


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
    if not path.is_file():
        raise InputError(path, "no such adapter file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        raise InputError(path, f"not a readable adapter file ({err})") from err
    if not isinstance(state, dict) or state.get("format") != ADAPTER_FORMAT:
        raise InputError(path, "not an attrackt LoRA adapter file")
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
