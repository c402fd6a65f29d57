"""Fused q/k/v matmuls compute what the model's own modules compute, and step aside
whenever they could not (a trainable weight, a moved weight, another input)."""

import copy

import pytest
import torch

from tasktune.backbone.fused_projections import fuse_projections, unfuse_projections

from conftest import tiny_model

IDS = torch.tensor([[7, 8, 9, 10, 11], [12, 13, 14, 15, 16]])


def _logits_and_input_grad(model):
    emb = model.get_input_embeddings()(IDS).detach().requires_grad_()
    out = model(inputs_embeds=emb).logits
    out.float().square().mean().backward()
    return out.detach(), emb.grad


@pytest.mark.parametrize("kind", ["llama", "gemma3"])
def test_a_frozen_decoder_gets_the_same_logits_and_input_gradients(kind):
    reference = tiny_model(kind)[0].double().requires_grad_(False)
    fused = copy.deepcopy(reference)
    keys = list(fused.state_dict())
    assert fuse_projections(fused) == 2  # 2 layers
    assert list(fused.state_dict()) == keys  # the blocks are no new state
    attn = fused.model.layers[0].self_attn
    assert attn.k_proj.weight.data_ptr() == attn.q_proj.weight.data_ptr() + attn.q_proj.weight.numel() * 8
    for a, b in zip(_logits_and_input_grad(reference), _logits_and_input_grad(fused), strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, atol=1e-12, rtol=1e-10)


def test_the_fused_path_is_taken_and_counts_fewer_matmuls():
    model = tiny_model("llama")[0].requires_grad_(False)
    calls = []
    hook = torch.nn.functional.linear

    def counting(*args, **kwargs):
        calls.append(args[1].shape)
        return hook(*args, **kwargs)

    torch.nn.functional.linear = counting
    try:
        with torch.no_grad():
            model(input_ids=IDS)
            plain = len(calls)
            fuse_projections(model)
            calls.clear()
            model(input_ids=IDS)
    finally:
        torch.nn.functional.linear = hook
    assert len(calls) == plain - 2 * 2  # per layer: q/k/v 3 -> 1
    assert torch.Size([32 + 2 * 16, 32]) in calls


def test_trainable_weights_take_the_separate_matmuls_and_get_their_gradients():
    reference = tiny_model("llama")[0].double()
    tuned = copy.deepcopy(reference).requires_grad_(False)
    fuse_projections(tuned)
    tuned.requires_grad_(True)  # fine-tuning after the backbone was fused
    for model in (reference, tuned):
        _logits_and_input_grad(model)
    for name in ("self_attn.q_proj", "self_attn.v_proj"):
        a = reference.model.layers[1].get_submodule(name).weight.grad
        b = tuned.model.layers[1].get_submodule(name).weight.grad
        assert b is not None and a.abs().sum() > 0
        torch.testing.assert_close(b, a)


def test_a_weight_updated_in_place_moved_or_replaced_is_what_the_model_uses():
    model = tiny_model("llama")[0].double().requires_grad_(False)
    fuse_projections(model)
    twin = copy.deepcopy(model)
    unfuse_projections(twin)  # the modules' own forwards: the reference
    with torch.no_grad():
        for m in (model, twin):  # a checkpoint loaded into the backbone: in place
            m.model.layers[0].self_attn.v_proj.weight.mul_(3)
            m.model.layers[1].self_attn.q_proj.weight.add_(0.5)
    torch.testing.assert_close(model(input_ids=IDS).logits, twin(input_ids=IDS).logits)
    model.float()  # a cast gives every weight new storage: the separate matmuls, still right
    twin.float()
    torch.testing.assert_close(model(input_ids=IDS).logits, twin(input_ids=IDS).logits)


def test_k_and_v_of_another_input_are_computed_on_their_own():
    model = tiny_model("llama")[0].requires_grad_(False)
    fuse_projections(model)
    attn = model.model.layers[0].self_attn
    x, other = torch.randn(2, 3, 32), torch.randn(2, 3, 32)
    q = attn.q_proj(x)
    torch.testing.assert_close(attn.k_proj(other), other @ attn.k_proj.weight.T)
    torch.testing.assert_close(attn.v_proj(x), x @ attn.v_proj.weight.T)  # still handed out for x
    torch.testing.assert_close(q, x @ attn.q_proj.weight.T)
    torch.testing.assert_close(attn.k_proj(x), x @ attn.k_proj.weight.T)


@pytest.mark.parametrize("kind", ["t5", "bart", "bert", "gpt2"])
def test_other_families_are_left_alone(kind):
    model = tiny_model(kind)[0].requires_grad_(False)
    assert fuse_projections(model) == 0


def test_biased_projections_fuse_their_biases_and_a_replaced_bias_is_used():
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)  # Qwen2: q, k and v carry biases
    cfg = Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64, max_position_embeddings=64)
    reference = Qwen2ForCausalLM(cfg).double().requires_grad_(False)
    with torch.no_grad():
        for p in reference.parameters():
            if p.dim() == 1:
                p.normal_()
    fused = copy.deepcopy(reference)
    assert fuse_projections(fused) == 2
    torch.testing.assert_close(fused(input_ids=IDS).logits, reference(input_ids=IDS).logits)
    for m in (reference, fused):
        m.model.layers[0].self_attn.k_proj.bias = torch.nn.Parameter(torch.ones(16, dtype=torch.float64),
                                                                      requires_grad=False)
    torch.testing.assert_close(fused(input_ids=IDS).logits, reference(input_ids=IDS).logits)


def test_a_backbone_fuses_by_default_and_tasktune_fuse_0_keeps_the_model_own_matmuls(monkeypatch):
    from tasktune.backbone.fused_projections import is_fused

    from conftest import tiny_backbone

    assert sum(is_fused(m) for m in tiny_backbone("llama").model.modules()) == 2 * 3
    monkeypatch.setenv("TASKTUNE_FUSE", "0")
    assert not any(is_fused(m) for m in tiny_backbone("llama").model.modules())
