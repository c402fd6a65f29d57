"""The SwiGLU MLP with a lean backward: keep gate and up, recompute silu(gate) there.

A Llama-style MLP computes down(silu(gate(x)) * up(x)). With frozen weights autograd saves, per
token and layer, three [intermediate] tensors for the backward: gate (for silu's backward),
silu(gate) and up (for the product's). `SwiGLUFunction` keeps gate and up only and recomputes
silu(gate) in its backward, with the same kernels in the same order, so forward and gradients
are bit-identical to the module's own: a third less of the MLP's activation memory (on
SmolLM2, 70 MB of a 768-token piece's step) for one elementwise pass.

A model's MLP class is swapped only after it reproduces the module's own output on a probe
input, bit for bit, so an MLP of other semantics (GELU, a gate applied elsewhere) keeps its own
forward; torch.compile gets the model's own forward back (compiled.py).
"""

from __future__ import annotations

from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn


class SwiGLUFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        gate, up = ctx.saved_tensors
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate) if ctx.needs_input_grad[0] else None
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        return grad_gate, grad_up


def _forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return self.down_proj(SwiGLUFunction.apply(self.gate_proj(x), self.up_proj(x)))


def _is_gated_mlp(module: nn.Module) -> bool:
    children = dict(module.named_children())
    return all(isinstance(children.get(n), nn.Linear) for n in ("gate_proj", "up_proj", "down_proj")) \
        and "act_fn" in children


@torch.no_grad()
def _agrees(module: nn.Module) -> bool:
    weight = module.gate_proj.weight
    gen = torch.Generator(device="cpu").manual_seed(0)
    x = torch.randn(4, weight.shape[1], generator=gen).to(weight.device, weight.dtype)
    ours, theirs = _forward(module, x), module(x)
    return ours.dtype == theirs.dtype and torch.equal(ours, theirs)


def is_lean(module: nn.Module) -> bool:
    """Whether `module` runs the lean forward (bound on the instance by lean_swiglus)."""
    return getattr(module.__dict__.get("forward"), "__func__", None) is _forward


def plain_swiglus(model: nn.Module) -> int:
    """Give the lean MLPs their class's own forward back (for torch.compile); returns how many."""
    lean = [m for m in model.modules() if is_lean(m)]
    for module in lean:
        del module.forward
    return len(lean)


def lean_swiglus(model: nn.Module) -> int:
    """Give every gated MLP whose class passes the probe the lean backward; returns how many."""
    verdict: dict[type, bool] = {}
    swapped = 0
    for module in model.modules():
        if not _is_gated_mlp(module):
            continue
        if type(module) not in verdict:
            verdict[type(module)] = _agrees(module)
        if verdict[type(module)]:
            module.forward = MethodType(_forward, module)  # bound: a deep copy binds to the copy
            swapped += 1
    return swapped
