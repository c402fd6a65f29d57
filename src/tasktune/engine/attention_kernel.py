"""Which kernel runs an sdpa attention call.

On CPU, PyTorch's fused (flash) SDPA has a slow backward for the short sequences of
prompt-style training: profiled on the embedded SmolLM2 at batch 16, its backward took 30% of a
bf16 training step, five times its forward, while the plain math path (two batched matmuls and
a softmax) differentiates for a fraction of that. So, on CPU under autograd, an sdpa call runs
the model's own eager attention; inference keeps sdpa (equal speed there), and other devices
are untouched. Both see the same mask, so results agree up to rounding (tested).
"""

from __future__ import annotations

import torch

MATH_FOR_CPU_TRAINING = True  # a switch for tests and for measuring the difference


def use_math(query: torch.Tensor) -> bool:
    return MATH_FOR_CPU_TRAINING and query.device.type == "cpu" and torch.is_grad_enabled()


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
