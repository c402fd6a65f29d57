"""Packed weights compute what the plain ones compute, bit for bit, and step aside whenever they
could be stale (a weight updated, replaced or trained)."""

import copy

import pytest
import torch

from tasktune.backbone.fused_projections import fuse_projections, fused_groups
from tasktune.backbone.packed_weights import is_packed, packing_available
from tasktune.backbone.packing import backward_copies_fit, pack_model, packed_bytes, unpack_model, unpacked

from conftest import tiny_model

pytestmark = pytest.mark.skipif(not packing_available(torch.zeros(2, 2, dtype=torch.bfloat16)),
                                reason="this torch/CPU packs no bf16 weights for oneDNN")
IDS = torch.tensor([[7, 8, 9, 10, 11, 12], [12, 13, 14, 15, 16, 17]])


def _bf16_llama(fused: bool = True):
    model = tiny_model("llama")[0].to(torch.bfloat16).requires_grad_(False).eval()
    if fused:
        assert fuse_projections(model) == 2
    return model


def _logits_and_input_grad(model):
    emb = model.get_input_embeddings()(IDS).detach().requires_grad_()
    out = model(inputs_embeds=emb).logits
    out.float().square().mean().backward()
    return out.detach(), emb.grad


def test_logits_and_input_gradients_are_bit_identical():
    assert pack_model(_bf16_llama()) == 2 * 4 + 2 + 1  # per layer o, gate, up, down + q/k/v; the head
    plain, packed = _bf16_llama(), _bf16_llama()  # (a deep copy would take the q/k/v fusion apart)
    for model in (plain, packed):
        model.lm_head.weight = model.model.embed_tokens.weight  # tied, as SmolLM2's
    assert pack_model(packed) == 2 * 4 + 2 and not is_packed(packed.lm_head)  # a tied head stays plain
    assert all(g.packed is not None for g in fused_groups(packed))
    mlp = packed.model.layers[0].mlp.gate_proj.__dict__["_tasktune_packed"]
    assert mlp.backward is None  # made at the first backward, not before
    for a, b in zip(_logits_and_input_grad(plain), _logits_and_input_grad(packed), strict=True):
        assert a.abs().sum() > 0
        assert torch.equal(a, b)
    assert mlp.backward is not None
    with torch.no_grad():
        assert torch.equal(plain(input_ids=IDS).logits, packed(input_ids=IDS).logits)


def test_a_weight_updated_in_place_is_never_read_stale():
    model = _bf16_llama()
    pack_model(model)
    gate = model.model.layers[1].mlp.gate_proj
    with torch.no_grad():
        model(input_ids=IDS)
        gate.weight.mul_(2)
        model.model.layers[0].self_attn.k_proj.weight.add_(0.5)  # a view of the fused block
        after = model(input_ids=IDS).logits
    assert not is_packed(gate)  # dropped its copies, plain from now on
    unpack_model(model)
    with torch.no_grad():
        assert torch.equal(after, model(input_ids=IDS).logits)


def test_trained_weights_take_the_plain_matmul_and_get_gradients():
    model = _bf16_llama(fused=False)
    pack_model(model)
    down = model.model.layers[0].mlp.down_proj
    down.weight.requires_grad_(True)
    model(input_ids=IDS).logits.float().sum().backward()
    assert down.weight.grad is not None and down.weight.grad.abs().sum() > 0
    assert not is_packed(down) and is_packed(model.model.layers[0].mlp.up_proj)


def test_a_deep_copy_packs_its_own_weights():
    model = _bf16_llama(fused=False)
    pack_model(model)
    twin = copy.deepcopy(model)
    gate = twin.model.layers[0].mlp.gate_proj
    assert gate.__dict__["_tasktune_packed"].weight is gate.weight
    with torch.no_grad():
        assert torch.equal(twin(input_ids=IDS).logits, model(input_ids=IDS).logits)


def test_fp32_and_autocast_inputs_run_plain():
    model = tiny_model("llama")[0].requires_grad_(False)
    assert pack_model(model) == 0  # fp32 weights: MKL's sgemm needs no reorder
    bf16 = _bf16_llama(fused=False)
    pack_model(bf16)
    up = bf16.model.layers[0].mlp.up_proj
    x = torch.randn(3, 32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(up(x), torch.nn.functional.linear(x, up.weight))


def test_unpacked_blocks_and_what_training_can_afford(monkeypatch):
    model = _bf16_llama()
    pack_model(model)
    size = packed_bytes(model)
    assert size == sum(p.numel() * 2 for n, p in model.named_parameters() if "proj" in n or "lm_head" in n)
    with unpacked(model):
        assert packed_bytes(model) == 0 and not any(is_packed(m) for m in model.modules())
    assert packed_bytes(model) == size
    with unpacked(model, enabled=False):
        assert packed_bytes(model) == size
    import tasktune.backbone.packing as packing

    monkeypatch.setattr(packing, "available_memory", lambda: 3 * size)
    assert backward_copies_fit(model)
    monkeypatch.setattr(packing, "available_memory", lambda: size)
    assert not backward_copies_fit(model)
