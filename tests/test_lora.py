"""LoRA adapters: what trains, what stays, merging, saving apart and loading."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from attrackt.errors import InputError
from attrackt.losses import AttracktHeads
from attrackt.model import AssociationTransformer, TransformerConfig
from attrackt.model.lora import (
    LoRAConfig,
    apply_lora,
    load_adapters,
    lora_layers,
    merge_lora,
    remove_lora,
    save_adapters,
)

pytestmark = pytest.mark.usefixtures("single_thread")


class Wrapped(nn.Module):
    """The transformer and the Attrackt heads in one module, as training wraps them."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        config = TransformerConfig(
            feature_dim=1, embedding_dim=4, d_model=32, n_heads=2, encoder_layers=1,
            decoder_layers=1, dropout=0.0,
        )  # fmt: skip
        self.model = AssociationTransformer(config)
        self.heads = AttracktHeads(4, width=8)

    def forward(self, coords, mask, features, z):
        return self.model(coords, mask, features, z)


def inputs(seed: int = 1, n: int = 12):
    g = torch.Generator().manual_seed(seed)
    times = torch.arange(n) % 3
    coords = torch.cat([times[:, None].float(), torch.rand(n, 2, generator=g) * 50], -1)[None]
    mask = torch.ones(1, n, dtype=torch.bool)
    return coords, mask, torch.randn(1, n, 1, generator=g), torch.randn(1, n, 4, generator=g)


def is_adapter(name: str) -> bool:
    """A LoRA matrix, as peft names it."""
    return ".lora_A.default." in name or ".lora_B.default." in name


CONFIG = LoRAConfig(rank=4, alpha=8.0, dropout=0.1, trainable=("heads.*",))


def train_briefly(net: nn.Module, steps: int = 5) -> None:
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    net.train()
    for step in range(steps):
        logits = net(*inputs(step))
        heads_term = net.heads.m_d(net.heads.m_e(torch.ones(1, 4))).square().sum()
        loss = logits.square().mean() + heads_term
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()


def test_only_adapters_and_heads_train_and_the_base_stays_bit_identical():
    net = Wrapped()
    base = {k: v.clone() for k, v in net.state_dict().items()}
    names = apply_lora(net, CONFIG)
    # 4 projections in each of 1 encoder and 1 decoder layer
    assert len(names) == 8 and all(n.split(".")[-1] in ("q_proj", "k_proj", "v_proj", "out_proj")
                                   for n in names)  # fmt: skip
    trainable = {n for n, p in net.named_parameters() if p.requires_grad}
    adapters = {n for n in trainable if is_adapter(n)}
    assert len(adapters) == 16
    assert trainable - adapters == {n for n, _ in net.heads.named_parameters(prefix="heads")}
    # a fresh adapter changes nothing (B starts at zero)
    with torch.no_grad():
        assert torch.equal(net(*inputs()), Wrapped()(*inputs()))
    train_briefly(net)
    state = remove_lora(copy.deepcopy(net)).state_dict()  # the base, under its own names
    for key, value in base.items():
        if key.startswith("heads."):
            assert not torch.equal(state[key], value), f"{key} did not train"
        else:
            assert torch.equal(state[key], value), f"{key} changed"
    assert any(not torch.equal(b := m.lora_B["default"].weight, torch.zeros_like(b))
               for m in lora_layers(net).values())  # fmt: skip


def test_merged_model_computes_what_the_adapted_model_computes():
    net = Wrapped()
    apply_lora(net, CONFIG)
    train_briefly(net)
    with torch.no_grad():
        adapted = net(*inputs(7))
        merged_net = merge_lora(copy.deepcopy(net))
        merged = merged_net(*inputs(7))
        plain = remove_lora(copy.deepcopy(net))(*inputs(7))
    assert not lora_layers(merged_net)
    assert all(type(m) is nn.Linear for n, m in merged_net.named_modules() if n.endswith("q_proj"))
    torch.testing.assert_close(merged, adapted, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(plain, adapted, atol=1e-4)  # the adapters did change the model
    torch.testing.assert_close(plain, Wrapped()(*inputs(7)), rtol=0, atol=0)


def test_adapters_saved_apart_reload_onto_a_fresh_base(tmp_path):
    net = Wrapped()
    apply_lora(net, CONFIG)
    train_briefly(net)
    path = tmp_path / "adapters.pt"
    save_adapters(path, net, CONFIG, extra={"cells": 3})
    saved = torch.load(path, weights_only=True)["adapters"]
    assert all(is_adapter(k) or k.startswith("heads.") for k in saved)
    assert not any("base_layer" in k for k in saved)  # the base is not copied
    fresh = Wrapped().eval()
    config = load_adapters(path, fresh)
    assert config == CONFIG
    with torch.no_grad():
        torch.testing.assert_close(fresh(*inputs(3)), net(*inputs(3)), rtol=0, atol=0)
    for name, param in fresh.heads.named_parameters():
        assert torch.equal(param, dict(net.heads.named_parameters())[name])


def test_bad_configurations_and_foreign_files_are_clear_errors(tmp_path):
    with pytest.raises(InputError, match="rank"):
        LoRAConfig(rank=0)
    with pytest.raises(InputError, match="dropout"):
        LoRAConfig(dropout=1.0)
    net = Wrapped()
    with pytest.raises(InputError, match="no linear layer"):
        apply_lora(net, LoRAConfig(targets=("*nonexistent",)))
    apply_lora(net, LoRAConfig(rank=2, targets=("model.encoder.*q_proj",)))
    assert list(lora_layers(net)) == ["model.encoder.0.attn.q_proj"]
    with pytest.raises(InputError, match="already carries"):
        apply_lora(net, CONFIG)
    save_adapters(tmp_path / "a.pt", net, LoRAConfig(rank=2, targets=("model.encoder.*q_proj",)))
    other = Wrapped()
    apply_lora(other, CONFIG)
    with pytest.raises(InputError, match="does not fit"):
        load_adapters(tmp_path / "a.pt", other)
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(InputError, match="junk.pt"):
        load_adapters(tmp_path / "junk.pt", Wrapped())


def test_adapting_keeps_the_train_mode_the_global_random_state_and_a_seeded_start():
    net = Wrapped().eval()
    state = torch.random.get_rng_state()
    apply_lora(net, CONFIG)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert not any(m.training for m in net.modules())  # peft's new layers start in train mode
    with torch.no_grad():  # so LoRA's dropout is off: the same output twice
        torch.testing.assert_close(net(*inputs()), net(*inputs()), rtol=0, atol=0)
    again, other = Wrapped(), Wrapped()
    apply_lora(again, CONFIG)
    apply_lora(other, LoRAConfig(rank=4, alpha=8.0, seed=1))

    def starts(m: nn.Module) -> list[torch.Tensor]:
        return [layer.lora_A["default"].weight for layer in lora_layers(m).values()]

    assert all(torch.equal(a, b) for a, b in zip(starts(net), starts(again), strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(starts(net), starts(other), strict=True))
    assert not any(m.training for m in merge_lora(net).modules())
