"""One matmul where a frozen attention layer runs three on the same input: q, k and v.

A Llama-style attention multiplies the same hidden states by q_proj, k_proj and v_proj: on
SmolLM2 a [576, 576] and two [576, 192] GEMMs forward, three more in the backward to the input
and the adds that sum their gradients. Where small shapes run far below the GEMM peak (AMX),
one [576, 960] matmul does the same work faster: 1.3-2x for these matmuls alone on an AMX Xeon
at 256-1,024 tokens, 1.06x on a whole prompt-tuning or P-tuning step (docs/BENCHMARKS.md,
"Fused q/k/v matmuls").

`fuse_projections` copies each layer's three weights once into one contiguous block and makes
them views of it, so the model holds no second copy (the originals' pages of a mapped weights
file go back to the system: resident_pages.py) and an in-place update of a view (a checkpoint
loaded into the backbone) is seen by the fused matmul. The attention forward stays the
model's own: q_proj computes q, k and v in one matmul and hands k and v to k_proj and v_proj when
they are called next with the same tensor (any other input is computed on its own). A layer falls
back to its separate matmuls while a weight requires grad (fine-tuning: the block is no leaf to
train) or no longer lives in the block (moved, cast or replaced), so the fused path is never
wrong, only sometimes not taken.

Gate and up of the MLP share an input too, but fusing them measured slower on the AMX Xeon (the
[3072, 576] backward runs below two [1536, 576] ones), so they stay apart. Only decoder-only
models are fused (an encoder-decoder's cross-attention feeds k and v another input), and a model
keeps its fusion only if its logits on a probe input match the unfused model's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MethodType

import torch
import torch.nn.functional as F
from torch import nn

from tasktune.backbone.packed_weights import PackedWeight, linear, packing_available
from tasktune.backbone.resident_pages import release_file_pages

ATTENTION = ("q_proj", "k_proj", "v_proj")


@dataclass(eq=False)
class FusedGroup:
    """The block a layer's q/k/v weights are views of, and the views' addresses when fused."""

    linears: list[nn.Linear]
    weight: torch.Tensor
    bias: torch.Tensor | None
    sizes: list[int]
    pointers: list[tuple[int, int]] = field(default_factory=list)  # (weight, bias) of each view
    pending: tuple | None = None  # (input, outputs not yet handed out), attention only
    packed: PackedWeight | None = None  # the block in oneDNN's layout (packed_weights.py)

    def usable(self) -> bool:
        return all(not lin.weight.requires_grad and lin.weight.data_ptr() == p
                   and (lin.bias is None or not lin.bias.requires_grad and lin.bias.data_ptr() == b)
                   for lin, (p, b) in zip(self.linears, self.pointers, strict=True))

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.packed is not None and not self.packed.current(self.weight):
            self.packed = None  # the block was updated in place: plain from now on
        return linear(x, self.weight, self.bias, self.packed).split(self.sizes, -1)


def _group(linears: list[nn.Linear], originals: list[torch.Tensor]) -> FusedGroup | None:
    first = linears[0]
    if not all(type(lin) is nn.Linear and lin.in_features == first.in_features for lin in linears):
        return None
    w = first.weight
    if any(lin.weight.dtype != w.dtype or lin.weight.device != w.device for lin in linears):
        return None
    biased = [lin.bias is not None for lin in linears]
    if any(biased) != all(biased):
        return None
    originals += [t.detach() for lin in linears for t in (lin.weight, lin.bias) if t is not None]
    weight = torch.cat([lin.weight.detach() for lin in linears])
    bias = torch.cat([lin.bias.detach() for lin in linears]) if all(biased) else None
    sizes = [lin.out_features for lin in linears]
    group = FusedGroup(linears, weight, bias, sizes)
    start = 0
    for lin, n in zip(linears, sizes, strict=True):
        lin.weight = nn.Parameter(weight[start:start + n], requires_grad=lin.weight.requires_grad)
        if bias is not None:
            lin.bias = nn.Parameter(bias[start:start + n], requires_grad=lin.bias.requires_grad)
        start += n
    group.pointers = [(lin.weight.data_ptr(), lin.bias.data_ptr() if lin.bias is not None else 0) for lin in linears]
    return group


def _first_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    group: FusedGroup = self._tasktune_fused
    if not group.usable():
        group.pending = None
        return F.linear(x, self.weight, self.bias)
    q, *rest = group.run(x)
    group.pending = (x, rest)
    return q


def _next_forward(self: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    group: FusedGroup = self._tasktune_fused
    index = group.linears.index(self) - 1
    pending = group.pending
    if pending is not None and pending[0] is x and pending[1][index] is not None:
        out = pending[1][index]
        rest = list(pending[1])
        rest[index] = None
        group.pending = None if all(r is None for r in rest) else (x, rest)  # hand each out once
        return out
    return F.linear(x, self.weight, self.bias)


def is_fused(module: nn.Module) -> bool:
    return "_tasktune_fused" in module.__dict__


def _bind(group: FusedGroup) -> None:
    for i, lin in enumerate(group.linears):
        lin.__dict__["_tasktune_fused"] = group  # a plain attribute: no state_dict entry, no .to()
        lin.forward = MethodType(_first_forward if i == 0 else _next_forward, lin)


def _fuse_module(module: nn.Module, originals: list[torch.Tensor]) -> int:
    children = dict(module.named_children())
    if not all(n in children for n in (*ATTENTION, "o_proj")):
        return 0
    group = _group([children[n] for n in ATTENTION], originals)
    if group is None:
        return 0
    _bind(group)
    return 1


def unfuse_projections(model: nn.Module) -> list[FusedGroup]:
    """The modules' own forwards back; the weights stay views of the blocks, so the returned
    groups can be put back as they are (restore_projections)."""
    groups: dict[int, FusedGroup] = {}
    for module in model.modules():
        if is_fused(module):
            group = module.__dict__.pop("_tasktune_fused")
            groups[id(group)] = group
            del module.forward
    return list(groups.values())


def restore_projections(groups: list[FusedGroup]) -> None:
    """Fuse again what unfuse_projections took apart: no copy, no probe (a layer whose weights
    left the block meanwhile takes its separate matmuls, as always)."""
    for group in groups:
        group.pending = None
        _bind(group)


@torch.no_grad()
def _probe_logits(model: nn.Module) -> torch.Tensor:
    ids = torch.arange(3, 11, device=model.get_input_embeddings().weight.device).view(2, 4)
    return model(input_ids=ids).logits.float()


def fused_groups(model: nn.Module) -> list[FusedGroup]:
    """The model's fused q/k/v blocks, once each."""
    return list({id(g): g for m in model.modules() if is_fused(m) for g in [m.__dict__["_tasktune_fused"]]}.values())


def pack_groups(model: nn.Module) -> int:
    """Pack every fused block (packed_weights.py); returns how many."""
    groups = [g for g in fused_groups(model) if g.packed is None and packing_available(g.weight)]
    for group in groups:
        group.packed = PackedWeight.of(group.weight)
    return len(groups)


def unpack_groups(model: nn.Module) -> int:
    """Drop the fused blocks' packed copies; returns how many."""
    groups = [g for g in fused_groups(model) if g.packed is not None]
    for group in groups:
        group.packed = None
    return len(groups)


def fuse_projections(model: nn.Module) -> int:
    """Fuse every attention's q/k/v of a decoder-only model; returns how many layers (0: not
    fused, the model's output on a probe differed or no attention matched)."""
    config = getattr(model, "config", None)
    if config is None or getattr(config, "is_encoder_decoder", False):
        return 0
    mode = model.training
    model.eval()
    try:
        before = _probe_logits(model)
        originals: list[torch.Tensor] = []  # the weights copied into blocks: no module reads them any more
        fused = sum(_fuse_module(m, originals) for m in list(model.modules()))
        release_file_pages(originals)  # their resident pages of a mapped file (resident_pages.py)
        if fused:
            after = _probe_logits(model)
            tol = 8 * torch.finfo(model.get_input_embeddings().weight.dtype).eps * before.abs().max().item()
            if not torch.allclose(before, after, rtol=0, atol=max(tol, 1e-5)):
                unfuse_projections(model)
                return 0
        return fused
    finally:
        model.train(mode)
