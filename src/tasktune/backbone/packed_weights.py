"""Frozen bf16 linear weights kept in the CPU GEMM library's own blocked layout, packed once.

On CPU a bf16 matmul goes to oneDNN, which first reorders a plain [out, in] weight into its
blocked layout, on every call. A frozen backbone's weights never change, so tasktune reorders
each one once (`torch.ops.mkldnn._reorder_linear_weight`, what inductor's freezing does) and
multiplies against the packed copy (`torch.ops.mkldnn._linear_pointwise`): the same kernels,
bit-identical outputs (tests/test_packed_weights.py), without the per-call reorder. At SmolLM2's
shapes on an AVX-512 BF16 EPYC that is 1.05-1.3x per GEMM, most at small token counts
(docs/BENCHMARKS.md, "Packed weights").

Memory. The forward copy replaces the plain weight in memory: the plain weight's pages of a
mapped weights file go back to the system (resident_pages.py) and come back from the file only
if something reads them again, so evaluation and serving hold each weight once, as before. The
backward to the input (grad @ W) needs W in the other orientation, a second copy, made at the
first backward: training holds the linear weights twice (the plain weight would cost the same).
A run that cannot afford that trains with `unpacked` (TrainConfig.packed_weights).

Never wrong, only sometimes not taken: a module whose weight requires grad (fine-tuning), was
replaced, moved or updated in place (the tensor's version counter) drops its packed copies and
runs the plain `F.linear` from then on; so does an input of another dtype or under autocast.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from tasktune.backbone.resident_pages import release_file_pages

_OP = "_linear_pointwise"


def packing_available(weight: torch.Tensor) -> bool:
    """Whether this torch build packs `weight` for oneDNN: a bf16 CPU tensor on a CPU with bf16
    support in oneDNN."""
    return (weight.device.type == "cpu" and weight.dtype == torch.bfloat16 and weight.dim() == 2
            and torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, _OP)
            and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _pack(weight: torch.Tensor) -> torch.Tensor:
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous())


def _matmul(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, packed, bias, "none", [None], "")


@dataclass(eq=False)
class PackedWeight:
    """A frozen weight's packed copies and what identifies the weight they were made from."""

    weight: torch.Tensor
    version: int
    pointer: int
    forward: torch.Tensor
    backward: torch.Tensor | None = None  # made at the first backward

    @classmethod
    def of(cls, weight: torch.Tensor) -> PackedWeight:
        packed = cls(weight, weight._version, weight.data_ptr(), _pack(weight))
        release_file_pages([weight.detach()])  # one at a time: never two resident copies of them all
        return packed

    def __deepcopy__(self, memo: dict) -> PackedWeight:  # oneDNN's tensors have no storage to copy
        return PackedWeight.of(copy.deepcopy(self.weight, memo))

    def current(self, weight: torch.Tensor) -> bool:
        """Whether `weight` is still the frozen tensor, with the contents, that was packed."""
        return (weight is self.weight and not weight.requires_grad and weight.data_ptr() == self.pointer
                and weight._version == self.version)

    def grad_input(self, grad: torch.Tensor) -> torch.Tensor:
        if self.backward is None:
            self.backward = _pack(self.weight.t())
            release_file_pages([self.weight.detach()])  # packing read them back in
        return _matmul(grad, self.backward, None)


class _PackedLinear(torch.autograd.Function):
    """x @ W.T + b against the packed W; the gradient to x only (W and b are frozen)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, packed: PackedWeight, bias: torch.Tensor | None) -> torch.Tensor:
        ctx.packed = packed
        return _matmul(x, packed.forward, bias)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.packed.grad_input(grad), None, None


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
           packed: PackedWeight | None) -> torch.Tensor:
    """F.linear(x, weight, bias), against `packed` where it still holds `weight` and x suits it."""
    if (packed is None or x.dtype != packed.forward.dtype or x.device.type != "cpu"
            or torch.is_autocast_enabled("cpu") or (bias is not None and bias.requires_grad)):
        return F.linear(x, weight, bias)
    if torch.is_grad_enabled() and x.requires_grad:
        return _PackedLinear.apply(x, packed, bias)
    return _matmul(x, packed.forward, bias)


def _packed_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    packed: PackedWeight = self.__dict__["_tasktune_packed"]
    if not packed.current(self.weight):  # fine-tuned, replaced, updated: plain from now on
        unpack_module(self)
        return F.linear(x, self.weight, self.bias)
    return linear(x, self.weight, self.bias, packed)


def is_packed(module: nn.Module) -> bool:
    return "_tasktune_packed" in module.__dict__


def unpack_module(module: nn.Module) -> None:
    """The module's own forward back; its packed copies are freed."""
    module.__dict__.pop("_tasktune_packed", None)
    if getattr(module.__dict__.get("forward"), "__func__", None) is _packed_forward:
        del module.forward


def pack_linears(model: nn.Module, skip: frozenset[int] = frozenset()) -> int:
    """Pack every frozen bf16 CPU nn.Linear of `model` whose forward is its own (not one another
    module replaced, such as a fused q/k/v projection) and whose weight is not in `skip` (by id:
    an LM head tied to the input embeddings stays plain); returns how many."""
    packed = 0
    for module in model.modules():
        if type(module) is not nn.Linear or "forward" in module.__dict__ or id(module.weight) in skip:
            continue
        w = module.weight
        if w.requires_grad or not packing_available(w):
            continue
        module.__dict__["_tasktune_packed"] = PackedWeight.of(w)  # no state_dict entry
        module.forward = MethodType(_packed_forward, module)
        packed += 1
    return packed


def unpack_linears(model: nn.Module) -> int:
    """Every packed module's own forward back (its copies freed); returns how many."""
    modules = [m for m in model.modules() if is_packed(m)]
    for module in modules:
        unpack_module(module)
    return len(modules)
