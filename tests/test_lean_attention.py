"""lean_attention: the eager attention's function and gradients, less saved for the backward."""

import pytest
import torch

from tasktune.build import build_task
from tasktune.engine import attention_kernel, lean_attention
from tasktune.methods import PromptTuningConfig
from test_attention_kernel import TEMPLATE, loss_and_grad

from conftest import tiny_backbone


def eager(q, k, v, mask, scale):
    g = q.shape[1] // k.shape[1]
    kr, vr = k.repeat_interleave(g, 1), v.repeat_interleave(g, 1)
    s = q @ kr.transpose(-1, -2) * scale
    if mask is not None:
        s = s + mask
    return (torch.softmax(s, -1, dtype=torch.float32).to(q.dtype) @ vr).transpose(1, 2)


def inputs(dtype, b=2, h=6, kvh=2, L=5, S=8, d=4):
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, n, t, d, dtype=dtype, requires_grad=True) for n, t in ((h, L), (kvh, S), (kvh, S)))
    keep = torch.ones(b, 1, L, S, dtype=torch.bool).tril(S - L)
    keep[1, :, :, -2:] = False  # the second row is padded: its last two keys masked
    return q, k, v, attention_kernel.additive(keep, dtype)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.bfloat16, 2e-2)])
def test_same_output_and_gradients_as_eager_attention(dtype, tol):
    q, k, v, mask = inputs(dtype)
    g = torch.randn(2, 5, 6, 4, dtype=dtype)
    out, _ = lean_attention.lean_attention(q, k, v, mask, 0.5)
    ref = eager(q, k, v, mask, 0.5)
    torch.testing.assert_close(out, ref, atol=tol, rtol=tol)
    grads = torch.autograd.grad(out, (q, k, v), g)
    refs = torch.autograd.grad(ref, (q, k, v), g)
    for a, r in zip(grads, refs, strict=True):
        assert r.abs().sum() > 0
        torch.testing.assert_close(a, r, atol=tol * 4, rtol=tol * 4)


def saved_bytes(fn) -> int:
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_saves_q_k_v_only():
    q, k, v, mask = inputs(torch.bfloat16, L=16, S=16)
    lean = saved_bytes(lambda: lean_attention.lean_attention(q, k, v, mask, 0.5))
    full = saved_bytes(lambda: eager(q, k, v, mask, 0.5))
    qkv = sum(t.numel() * t.element_size() for t in (q, k, v, mask))
    assert lean == qkv
    assert lean < full / 2


def test_llama_training_takes_the_lean_path_with_the_same_loss_and_gradients(monkeypatch):
    bb = tiny_backbone("llama")
    bb.model.double()
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), TEMPLATE, ["positive", "negative"],
                      seed=1)
    task.module.double()
    calls = []
    real = lean_attention.lean_attention
    monkeypatch.setattr("tasktune.engine.attention_prefix.lean_attention",
                        lambda *a: calls.append(1) or real(*a))
    lean_loss, lean_grads = loss_and_grad(task)
    assert calls
    monkeypatch.setattr(attention_kernel, "LEAN_FOR_CPU_TRAINING", False)
    calls.clear()
    eager_loss, eager_grads = loss_and_grad(task)
    assert not calls
    # float64 weights, but both softmaxes run in fp32 (as Llama's eager does): fp32 rounding apart
    torch.testing.assert_close(lean_loss, eager_loss, atol=1e-6, rtol=1e-6)
    for a, b in zip(lean_grads, eager_grads, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
