"""lean_swiglu: the gated MLP's output and gradients bit for bit, a third less saved."""

import torch
from transformers.models.llama.modeling_llama import LlamaConfig, LlamaMLP

from tasktune.backbone.lean_swiglu import is_lean, lean_swiglus, plain_swiglus

from conftest import tiny_backbone


def mlp(dtype=torch.bfloat16):
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=16, intermediate_size=48, num_attention_heads=2, num_key_value_heads=2)
    return LlamaMLP(config).to(dtype).requires_grad_(False)


def saved_bytes(fn) -> int:
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size() if t.requires_grad or t.grad_fn is not None else 0
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_bit_identical_output_and_input_gradient_with_less_saved():
    plain, lean = mlp(), mlp()
    assert lean_swiglus(lean) == 1 and is_lean(lean)
    x = torch.randn(3, 7, 16, dtype=torch.bfloat16, requires_grad=True)
    g = torch.randn(3, 7, 16, dtype=torch.bfloat16)
    out_p, out_l = plain(x), lean(x)
    assert torch.equal(out_p, out_l)
    assert torch.equal(torch.autograd.grad(out_p, x, g)[0], torch.autograd.grad(out_l, x, g)[0])
    # activations saved (weights are views of parameters): gate, silu(gate), up against gate, up
    assert saved_bytes(lambda: lean(x)) * 3 == saved_bytes(lambda: plain(x)) * 2


def test_weight_gradients_too_when_the_mlp_trains():
    plain, lean = mlp(torch.float32).requires_grad_(True), mlp(torch.float32).requires_grad_(True)
    lean_swiglus(lean)
    x = torch.randn(5, 16)
    plain(x).square().sum().backward()
    lean(x).square().sum().backward()
    for a, b in zip(plain.parameters(), lean.parameters(), strict=True):
        assert torch.equal(a.grad, b.grad)


def test_llama_backbones_run_it_and_compile_gets_the_plain_forward():
    bb = tiny_backbone("llama")
    mlps = [m for m in bb.model.modules() if isinstance(m, LlamaMLP)]
    assert mlps and all(is_lean(m) for m in mlps)  # the Backbone swapped them
    assert plain_swiglus(bb.model) == len(mlps) and not any(is_lean(m) for m in mlps)


def test_an_mlp_of_other_semantics_keeps_its_forward():
    other = mlp()
    other.act_fn = torch.nn.GELU()  # a gate of another activation: the probe disagrees
    assert lean_swiglus(other) == 0 and not is_lean(other)
