"""KV prefixes inside attention, for models whose prefix cannot ride in a KV cache: the
self-attention of encoders (BERT, the T5/BART encoder) and the cross-attention of a decoder.

transformers 5.x sends every attention call through ALL_ATTENTION_FUNCTIONS, keyed by
`config._attn_implementation`, with the attention module as first argument and the model
forward's extra keywords passed down. We register `tasktune_sdpa` and `tasktune_eager`: when the
call carries an `attention_prefix` keyword holding keys/values for this module, they prepend
them, widen the mask by L always-visible columns (and T5's position bias by L zero columns),
then hand over to transformers' sdpa or the model's own eager function. Without that keyword
they change nothing, so other tasks sharing the backbone see the model they expect.

Because the prefix is added at every call, it survives KV caching and beam reordering: the
cache holds real tokens only, and `model.generate` works unchanged for encoder-decoder models
(it rejects unknown keywords, so there the prefix is set for the block with `active`).
"""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from tasktune import TasktuneError
from tasktune.engine import attention_kernel as kernel
from tasktune.engine.lean_attention import lean_attention

KEYWORD = "attention_prefix"
_REGISTERED: set[str] = set()
_ACTIVE: ContextVar[AttentionPrefix | None] = ContextVar("tasktune_attention_prefix", default=None)
# how many active() blocks are open in any thread: while none is, attention does not read the ContextVar,
# which torch.compile cannot trace (a compiled forward would fall back to eager at every layer)
_OPEN = [0]
_OPEN_LOCK = threading.Lock()


@dataclass
class AttentionPrefix:
    """Keys/values [kv_heads, L, head_dim] per attention module; `shapes` records what it saw."""

    kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    shapes: dict[int, tuple[int, int]] | None = None  # probe mode: id(module) -> (kv heads, head dim)
    captured: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = None  # capture mode: the real keys/values

    def take(self, module: nn.Module, key: torch.Tensor, value: torch.Tensor):
        if self.shapes is not None:
            self.shapes[id(module)] = (key.shape[1], key.shape[3])
        if self.captured is not None:
            self.captured[id(module)] = (key, value)
        return self.kv.get(id(module))


@contextmanager
def active(prefix: AttentionPrefix | None):
    """Apply `prefix` to every attention call inside the block (for `generate`, which refuses
    model keywords it does not know)."""
    token = _ACTIVE.set(prefix)
    with _OPEN_LOCK:
        _OPEN[0] += 1
    try:
        yield
    finally:
        with _OPEN_LOCK:
            _OPEN[0] -= 1
        _ACTIVE.reset(token)


def _base_function(base: str, module: nn.Module):
    if base == "eager":  # each model file defines its own eager attention (T5 adds its position bias there)
        fn = getattr(sys.modules[type(module).__module__], "eager_attention_forward", None)
        if fn is None:
            raise TasktuneError(f"{type(module).__name__}: no eager_attention_forward to wrap")
        return fn
    return ALL_ATTENTION_FUNCTIONS[base]


def _widen(t: torch.Tensor, n: int, value) -> torch.Tensor:
    """Prepend n columns of `value` on the last dimension."""
    return torch.cat([t.new_full((*t.shape[:-1], n), value), t], dim=-1)


def _causal(module: nn.Module, query: torch.Tensor, kwargs: dict) -> bool:
    """Whether sdpa, given no mask, would apply `is_causal` itself (transformers' own rule), so
    that a mask built here must say it instead."""
    flag = kwargs.get("is_causal")
    return bool(getattr(module, "is_causal", True) if flag is None else flag) and query.shape[2] > 1


def _prefixed(base: str):
    def attention(module, query, key, value, attention_mask, **kwargs):
        prefix: AttentionPrefix | None = kwargs.pop(KEYWORD, None)
        if prefix is None and _OPEN[0]:
            prefix = _ACTIVE.get()
        kv = prefix.take(module, key, value) if prefix is not None else None
        if kv is not None:
            pk, pv = kv
            b, L = query.shape[0], pk.shape[-2]
            key = torch.cat([pk.to(key.dtype).expand(b, -1, -1, -1), key], dim=2)
            value = torch.cat([pv.to(value.dtype).expand(b, -1, -1, -1), value], dim=2)
            if attention_mask is not None:
                attention_mask = _widen(attention_mask, L, True if attention_mask.dtype == torch.bool else 0.0)
            elif _causal(module, query, kwargs):
                attention_mask = kernel.causal_mask(query.shape[2], key.shape[2] - L, L, query)
            if kwargs.get("position_bias") is not None:
                kwargs["position_bias"] = _widen(kwargs["position_bias"], L, 0.0)
        impl = kernel.path(module, query, key, value, kwargs) if base == "sdpa" else base
        if base == "sdpa" and impl != "sdpa":
            if attention_mask is None and _causal(module, query, kwargs):
                attention_mask = kernel.causal_mask(query.shape[2], key.shape[2], 0, query)
            if impl == "lean":  # the eager function, saving less for its backward
                mask = kernel.additive(attention_mask, query.dtype) if attention_mask is not None else None
                return lean_attention(query, key, value, mask, kwargs["scaling"])
        if impl == "eager" and attention_mask is not None:
            attention_mask = kernel.additive(attention_mask, query.dtype)
        return _base_function(impl, module)(module, query, key, value, attention_mask, **kwargs)

    return attention


def install(model: nn.Module, base: str | None = None) -> None:
    """Route the model's attention through the prefix-aware wrapper of its current implementation
    (or of `base`: sdpa | eager)."""
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS
    from transformers.modeling_utils import AttentionInterface

    impl = base or model.config._attn_implementation.removeprefix("tasktune_")
    if impl not in ("sdpa", "eager"):
        raise TasktuneError(f"attention prefixes need sdpa or eager attention, not '{impl}' "
                            "(load the model with attn_implementation='sdpa')")
    name = f"tasktune_{impl}"
    if name not in _REGISTERED:
        AttentionInterface.register(name, _prefixed(impl))
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[impl])
        _REGISTERED.add(name)
    if model.config._attn_implementation != name:
        model.set_attn_implementation(name)


def attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The innermost attention modules (those transformers hands to the attention function),
    ordered encoder self-attention, decoder self-attention, cross-attention."""

    def is_attention(m: nn.Module) -> bool:
        return type(m).__name__.endswith("Attention") and hasattr(m, "layer_idx")

    found = [(n, m) for n, m in model.named_modules()
             if is_attention(m) and not any(is_attention(c) for c in m.children())]

    def kind(name: str) -> int:
        low = name.lower()
        if "encoder_attn" in low or "encdecattention" in low or "crossattention" in low:
            return 2
        return 1 if "decoder" in low else 0

    return sorted(found, key=lambda nm: kind(nm[0]))  # stable: layer order within a kind

