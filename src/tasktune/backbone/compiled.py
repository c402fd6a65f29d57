"""torch.compile for the frozen backbone, with a compile cache kept across runs.

A prompt-tuning step on a small model is mostly not matrix multiplication: tens of thousands of
small elementwise ops and the autograd engine between them. Compiling the base model's forward
(inductor, dynamic shapes) fuses those chains and compiles the backward as one graph: on the
embedded SmolLM2 a bf16 prompt-tuning step goes from 0.79 to 0.52 s on an AMX Xeon and from 0.83
to 0.54-0.64 s on an AVX-512 BF16 EPYC (docs/BENCHMARKS.md, the two "torch.compile on ..."
sections). The price is the compile itself, paid per process: a few
minutes the first time on a machine, 15-30 s once inductor's FX-graph and AOTAutograd caches hold
this model's graphs. So the caches live in tasktune's cache folder (not /tmp) and compiling is a
choice (`--compile`), worth it for runs of more than about a hundred steps.

While compiled, RMSNorms run the model's own forward: tasktune's lean norm is a custom autograd
Function, which the AOTAutograd cache refuses to store (every run would recompile from scratch),
and inductor's partitioner already decides what the backward keeps. The fused q/k/v matmuls
(fused_projections.py), the packed weights (packed_weights.py) and the last layer at read
positions (engine/last_layer.py) step aside too: the graph
compiled is the model's own, so the compile caches measured stay valid.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.backbone.fused_projections import restore_projections, unfuse_projections
from tasktune.backbone.lean_norm import lean_rms_norms, plain_rms_norms
from tasktune.backbone.lean_swiglu import lean_swiglus, plain_swiglus
from tasktune.backbone.packing import pack_model, unpack_model


def compile_cache_dir() -> str:
    """tasktune's folder for inductor's compiled graphs (TORCHINDUCTOR_CACHE_DIR, when set, wins)."""
    from tasktune.backbone.gguf_cache import cache_root

    return str(cache_root() / "inductor")


@contextmanager
def compiled(model: nn.Module, enabled: bool = True, inference: bool = False):
    """Run the block with `model.base_model.forward` compiled; the eager forward and the lean norms
    come back afterwards (the backbone is shared with other tasks and with serving).

    Only forwards under autograd run compiled unless `inference`: the no-grad graphs of evaluation
    (the prompt's KV run alone, then batches reading it) took 34-38 s to compile even with a warm
    cache, for 1.14-1.25x on an evaluation (docs/BENCHMARKS.md), so by default they stay eager."""
    if not enabled:
        yield
        return
    base = model.base_model
    if "forward" in base.__dict__:
        raise TasktuneError(f"{type(base).__name__}.forward is already replaced (compiled twice?)")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", compile_cache_dir())
    packed = unpack_model(model)
    lean = plain_rms_norms(model)
    lean_mlps = plain_swiglus(model)
    fused = unfuse_projections(model)
    from tasktune.engine.last_layer import plain_last_layer, read_positions_last_layer

    last = plain_last_layer(model)  # the model's own graph: the compile caches measured stay valid
    eager = base.forward
    fast = torch.compile(eager, dynamic=True)

    def forward(*args, **kwargs):
        return fast(*args, **kwargs) if inference or torch.is_grad_enabled() else eager(*args, **kwargs)

    base.forward = forward
    try:
        # Python floats as constants: traced as symbols, prefix tuning's forward fails dynamo's
        # tensorify pass and restarts its analysis, and the abandoned attempt's AOT compile is
        # paid again in every run (its graph never reaches the cache)
        with torch._dynamo.config.patch(specialize_float=True):
            yield
    finally:
        del base.forward
        if lean:
            lean_rms_norms(model)
        if lean_mlps:
            lean_swiglus(model)
        restore_projections(fused)
        if last:
            read_positions_last_layer(model)
        if packed:
            pack_model(model)
