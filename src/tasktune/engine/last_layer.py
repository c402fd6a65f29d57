"""The last decoder layer at the read positions only.

tasktune reads a causal LM's logits at a few positions per row (engine/forward.py). Every layer but
the last must run every position, since later positions attend to its keys and values. The last
layer's output, though, is read only at those positions: its keys and values are needed everywhere
(they are what the read positions attend to), but its queries, attention, o_proj, residuals, MLP,
and the model's final norm, only there. A classification row of SmolLM2 reads one position of ~50,
so this skips about 94% of the last layer's matmuls: 1/30 of the backbone's layer work, forward and
backward, in training, evaluation and serving.

A model forward called with `read_positions=` [B, P] (the keyword reaches every decoder layer, as
transformers passes model keywords down) gets from its last layer [B, P, hidden] instead of
[B, T, hidden], so the norm and head run on those rows (`logits_to_keep=0`). Without the keyword
the layer runs its own forward: generation, KV capture and everything else see the model as it is.

Only Llama-style layers (MODEL_TYPES: input/post-attention RMSNorm, q/k/v/o projections, rotary
embeddings, Qwen3's per-head q/k norms) and only after the logits at the read positions of a probe
input, with and without a KV cache before it, match the full forward's (`at_read_positions`).
"""

from __future__ import annotations

import sys
from types import MethodType

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

KEYWORD = "read_positions"
MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})
_QK_NORM = frozenset({"qwen3"})


def _rows(t: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """[B or 1, T, ...] -> [B, P, ...]: the rows at `pos` [B, P]."""
    index = pos.view(*pos.shape, *([1] * (t.dim() - 2)))
    return torch.take_along_dim(t, index, dim=1)


def _query_mask(mask: torch.Tensor | None, pos: torch.Tensor, q_len: int, k_len: int, eager: bool):
    """The layer's attention mask at the read queries only: [B, 1, P, S]. With no mask (sdpa's
    causal shortcut) the causal mask those queries see: every key up to their own position, after
    the k_len - q_len cached ones."""
    if mask is not None:
        return torch.take_along_dim(mask, pos[:, None, :, None], dim=2)
    keys = torch.arange(k_len, device=pos.device)
    keep = (keys <= pos[..., None] + (k_len - q_len))[:, None]
    if not eager:
        return keep
    low = torch.finfo(torch.float32).min
    return torch.zeros(keep.shape, dtype=torch.float32, device=pos.device).masked_fill(~keep, low)


def _attention_at(attn: nn.Module, x: torch.Tensor, pos: torch.Tensor, mask, position_embeddings, cache,
                  kwargs: dict) -> torch.Tensor:
    """The attention module's output at the read positions [B, P, hidden], as its forward computes
    it for those rows."""
    b, t, _ = x.shape
    p = pos.shape[1]
    q = attn.q_proj(x)  # first: with fused projections this one matmul also makes k and v
    k = attn.k_proj(x).view(b, t, -1, attn.head_dim)
    v = attn.v_proj(x).view(b, t, -1, attn.head_dim).transpose(1, 2)
    q = _rows(q, pos).view(b, p, -1, attn.head_dim)
    if attn.config.model_type in _QK_NORM:
        q, k = attn.q_norm(q), attn.k_norm(k)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    rope = sys.modules[type(attn).__module__].apply_rotary_pos_emb
    cos, sin = position_embeddings
    q = rope(q, q, _rows(cos.expand(b, -1, -1), pos), _rows(sin.expand(b, -1, -1), pos))[0]
    k = rope(k, k, cos, sin)[1]
    if cache is not None:
        k, v = cache.update(k, v, attn.layer_idx)
    impl = attn.config._attn_implementation
    eager = impl.endswith("eager")
    function = sys.modules[type(attn).__module__].eager_attention_forward if impl == "eager" \
        else ALL_ATTENTION_FUNCTIONS[impl]
    out, _ = function(attn, q, k, v, _query_mask(mask, pos, t, k.shape[2], eager),
                      dropout=0.0 if not attn.training else attn.attention_dropout, scaling=attn.scaling,
                      **kwargs)
    return attn.o_proj(out.reshape(b, p, -1).contiguous())


def _forward(self: nn.Module, hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    pos = kwargs.pop(KEYWORD, None)
    if pos is None:
        return type(self).forward(self, hidden_states, *args, **kwargs)
    if args:
        raise TypeError("the last layer at read positions takes its inputs by keyword")
    mask = kwargs.pop("attention_mask", None)
    position_embeddings = kwargs.pop("position_embeddings")
    cache = kwargs.pop("cache", None)
    if cache is None:
        cache = kwargs.pop("past_key_values", None)
    for name in ("position_ids", "use_cache", "cache_position"):
        kwargs.pop(name, None)
    x = self.input_layernorm(hidden_states)
    h = _rows(hidden_states, pos) + _attention_at(self.self_attn, x, pos, mask, position_embeddings, cache, kwargs)
    return h + self.mlp(self.post_attention_layernorm(h))


def last_layer(model: nn.Module) -> nn.Module | None:
    """The last decoder layer of a Llama-style causal LM, None for any other model."""
    config = getattr(model, "config", None)
    if config is None or config.model_type not in MODEL_TYPES:
        return None
    return model.base_model.layers[config.num_hidden_layers - 1]


def at_read_positions(model: nn.Module) -> bool:
    """Whether the model's last layer takes `read_positions` (installed and not taken back)."""
    layer = last_layer(model)
    return layer is not None and getattr(layer.__dict__.get("forward"), "__func__", None) is _forward


def plain_last_layer(model: nn.Module) -> bool:
    """Give the last layer its class's own forward back (torch.compile); whether it had ours."""
    if not at_read_positions(model):
        return False
    del last_layer(model).forward
    return True


@torch.no_grad()
def _agrees(model: nn.Module) -> bool:
    """Whether logits at read positions match the full forward's, with and without a KV cache."""
    from transformers import DynamicCache

    from tasktune.engine.cache_keyword import CACHE

    device = model.get_input_embeddings().weight.device
    ids = torch.arange(3, 15, device=device).view(2, 6)
    pos = torch.tensor([[5, 2], [1, 4]], device=device)
    mask = torch.ones_like(ids)
    mask[1, 5] = 0  # a padded position: the mask is no longer causal-only
    scale = None
    for cached in (False, True):
        caches = []
        if cached:
            for _ in range(2):
                cache = DynamicCache(config=model.config)
                model(input_ids=ids[:, :2], use_cache=True, **{CACHE: cache})
                caches.append(cache)
        rest = ids[:, 2:] if cached else ids
        extra = [{CACHE: c, "attention_mask": torch.ones(2, 2 + rest.shape[1], dtype=mask.dtype,
                                                                       device=device)} for c in caches] \
            or [{"attention_mask": mask}] * 2
        full = model(input_ids=rest, logits_to_keep=pos, use_cache=False, **extra[0]).logits.float()
        ours = model(input_ids=rest, logits_to_keep=0, use_cache=False, **{KEYWORD: pos}, **extra[1]).logits.float()
        scale = full.abs().max().item()
        tol = max(16 * torch.finfo(model.get_input_embeddings().weight.dtype).eps * scale, 1e-5)
        if ours.shape != full.shape or not torch.allclose(ours, full, rtol=0, atol=tol):
            return False
    return True


def read_positions_last_layer(model: nn.Module) -> bool:
    """Let the model's last layer run at the read positions only, if its kind is known and the
    probe agrees; returns whether it does."""
    layer = last_layer(model)
    if layer is None or at_read_positions(model):
        return layer is not None
    layer.forward = MethodType(_forward, layer)  # bound: a deep copy binds to the copy
    mode = model.training
    model.eval()
    try:
        ok = _agrees(model)
    except (TypeError, ValueError, RuntimeError, AttributeError, KeyError, IndexError):
        ok = False
    finally:
        model.train(mode)
    if not ok:
        del layer.forward
    return ok
