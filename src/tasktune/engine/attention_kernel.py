"""Which kernel runs an sdpa attention call.

On CPU, PyTorch's fused (flash) SDPA has a slow backward for the short sequences of
prompt-style training: profiled on the embedded SmolLM2 at batch 16, its backward took 30% of a
bf16 training step, five times its forward, while the plain math path (two batched matmuls and
a softmax) differentiates for a fraction of that. So, on CPU under autograd, an sdpa call runs
the model's own eager attention. For a plain Llama-style eager attention the math path is
lean_attention.py's, which saves a quarter of the memory for its backward and multiplies the
query heads that share a key/value head against the unrepeated keys.

Inference takes that lean path too where the scores are small: at evaluation shapes (batch 32,
9 query and 3 key/value heads, 30-75 keys) it runs 2.3-2.8x as fast as sdpa's flash kernel, and
evaluation 1.06-1.12x as fast on the whole (AMD EPYC AVX-512 BF16, SmolLM2 bf16, prompt/prefix/
P-tuning). Beyond MATH_INFERENCE_MAX_SCORES fp32 scores per call (long contexts, big batches)
sdpa's tiled kernel keeps memory flat; other families and other devices keep sdpa. Both paths
see the same mask, so results agree up to rounding (tested).
"""

from __future__ import annotations

import os

import torch

MATH_FOR_CPU_TRAINING = True  # a switch for tests and for measuring the difference
# the math path as lean_attention.py where the model's eager is the plain one (TASKTUNE_LEAN_ATTENTION=0: the
# model's own eager function, for A/B trials)
LEAN_FOR_CPU_TRAINING = os.environ.get("TASKTUNE_LEAN_ATTENTION", "1") != "0"
# inference on the lean path where its scores are small (TASKTUNE_MATH_INFERENCE=0: sdpa, for A/B trials)
MATH_FOR_CPU_INFERENCE = os.environ.get("TASKTUNE_MATH_INFERENCE", "1") != "0"
MATH_INFERENCE_MAX_SCORES = 1 << 23  # fp32 scores of one call: 32 MB


def use_math(query: torch.Tensor, key: torch.Tensor, lean: bool) -> bool:
    """Whether an sdpa call runs the math path: on CPU under autograd, and in CPU inference where
    the lean path applies (`lean`: use_lean's answer) and the scores are small."""
    if query.device.type != "cpu":
        return False
    if torch.is_grad_enabled():
        return MATH_FOR_CPU_TRAINING
    b, h, q_len, _ = query.shape
    return lean and MATH_FOR_CPU_INFERENCE and b * h * q_len * key.shape[-2] <= MATH_INFERENCE_MAX_SCORES


def path(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kwargs: dict) -> str:
    """Which kernel one sdpa call runs: "sdpa", "eager" (the model's own math attention) or "lean"
    (lean_attention.py)."""
    if query.device.type != "cpu":
        return "sdpa"
    lean = use_lean(module, query, key, value, kwargs)
    if not use_math(query, key, lean):
        return "sdpa"
    return "lean" if lean else "eager"


def use_lean(module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, kwargs: dict) -> bool:
    """Whether the math path may run as lean_attention: a model type whose eager attention is the
    plain one, no dropout, no position bias, the scale given, and q, k, v of one dtype outside
    autocast (mixed-precision fine-tuning keeps the model's eager function)."""
    from tasktune.engine.lean_attention import LEAN_MODEL_TYPES

    model_type = getattr(getattr(module, "config", None), "model_type", None)
    return (LEAN_FOR_CPU_TRAINING and model_type in LEAN_MODEL_TYPES and not kwargs.get("dropout")
            and kwargs.get("position_bias") is None and kwargs.get("scaling") is not None
            and query.dtype == key.dtype == value.dtype and not torch.is_autocast_enabled(query.device.type))


def causal_mask(q_len: int, k_len: int, prefix: int, like: torch.Tensor) -> torch.Tensor:
    """[1, 1, q, prefix + k] booleans: prefix columns always visible, real keys causally (the
    queries are the last q of the k keys)."""
    allowed = torch.ones(q_len, k_len, dtype=torch.bool, device=like.device).tril(k_len - q_len)
    return torch.cat([allowed.new_ones(q_len, prefix), allowed], dim=-1)[None, None]


def additive(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A boolean keep-mask as the additive mask eager attention expects (float masks pass through).
    The fill is fp32's lowest value even in float64: eager attentions that softmax in fp32 (Gemma)
    would turn float64's into -inf, and a row with every key masked (padding under a sliding
    window) into NaN."""
    if mask.dtype != torch.bool:
        return mask
    low = max(torch.finfo(dtype).min, torch.finfo(torch.float32).min)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, low)
