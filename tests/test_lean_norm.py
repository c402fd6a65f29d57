"""RMSNorms get the lean backward only where it reproduces the model's own norm."""

import copy

import pytest
import torch
from torch import nn
from transformers.models.gemma.modeling_gemma import GemmaRMSNorm
from transformers.models.llama.modeling_llama import LlamaRMSNorm

from tasktune.backbone.lean_norm import lean_rms_norms

from conftest import tiny_model


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_llama_outputs_and_gradients_match_the_model_own_norms(dtype):
    reference = tiny_model("llama")[0].to(dtype)  # a bare model: its own norms
    lean = copy.deepcopy(reference)
    assert lean_rms_norms(lean) == 5  # 2 layers x 2 + the final norm
    assert all(p.requires_grad for p in reference.parameters())  # weights trainable too (fine-tuning)
    ids = torch.tensor([[7, 8, 9, 10, 11], [12, 13, 14, 15, 16]])
    grads = []
    for model in (reference, lean):
        emb = model.get_input_embeddings()(ids).detach().requires_grad_()
        out = model(inputs_embeds=emb).logits
        out.float().square().mean().backward()
        norm_w = model.model.norm.weight.grad.clone()
        grads.append((out.detach(), emb.grad, norm_w))
        model.zero_grad()
    # both norms compute in fp32 inside (HF upcasts even fp64), so fp32 rounding is the floor
    tol = dict(atol=1e-6, rtol=1e-4) if dtype == torch.float64 else dict(atol=3e-2, rtol=3e-2)
    for a, b in zip(*grads, strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, **tol)


def test_deep_copy_binds_the_copy():
    model = nn.Sequential(LlamaRMSNorm(8))
    assert lean_rms_norms(model) == 1
    twin = copy.deepcopy(model)
    with torch.no_grad():
        twin[0].weight.mul_(2)
    x = torch.randn(2, 8)
    torch.testing.assert_close(twin(x), 2 * model(x))


def test_a_norm_with_other_semantics_is_left_alone():
    model = nn.Sequential(GemmaRMSNorm(8, eps=1e-6))  # scales by 1 + weight: the probe must refuse it
    model[0].variance_epsilon = 1e-6  # the attribute the detector looks for
    with torch.no_grad():
        model[0].weight.normal_()
    assert lean_rms_norms(model) == 0
