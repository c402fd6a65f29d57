"""Attention that keeps q, k and v for its backward and recomputes the probabilities there.

The eager attention of a Llama-style model (what tasktune runs on CPU under autograd, see
attention_kernel.py) saves for its backward the keys and values repeated to every query head
(x3 on SmolLM2's grouped-query attention), the softmax output in fp32 and the probabilities in
bf16: per token and layer about four times what q, k and v hold. Prompt-style training keeps
them for every layer of the frozen backbone, so they are a third of a step's activation memory.

`lean_attention` computes the same function as the model's eager attention, in the same dtypes
(scores in the model dtype, softmax in fp32, probabilities cast back), but saves only q, k, v and
the mask, and recomputes the scores and the softmax in its backward (attention scores are a few
percent of a step's FLOPs at prompt-tuning lengths). The query heads that share a key/value head
are multiplied as one [group x queries] block against the unrepeated keys, so no repeated copy is
made, forward or backward.

Only for models whose eager attention is exactly this (LEAN_MODEL_TYPES): no logit soft-capping,
no attention sinks, no position bias.
"""

from __future__ import annotations

import torch

LEAN_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def _probs(qg: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, scale: float, g: int) -> torch.Tensor:
    """[b, kvh, g*L, S] probabilities, as eager attention makes them: scores in the input dtype,
    plus the additive mask, softmax in fp32, cast back."""
    b, kvh, gl, _ = qg.shape
    scores = torch.matmul(qg, k.transpose(-1, -2)) * scale
    if mask is not None:  # [b or 1, 1, L, S] -> every head of the group sees its query row's mask
        scores = (scores.view(b, kvh, g, gl // g, -1) + mask[:, :, None]).view(b, kvh, gl, -1)
    return torch.softmax(scores, dim=-1, dtype=torch.float32)


class _LeanAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, mask, scale: float):
        b, h, L, d = q.shape
        g = h // k.shape[1]
        qg = q.reshape(b, k.shape[1], g * L, d)  # query head i*g + j reads key/value head i
        p = _probs(qg, k, mask, scale, g)
        out = torch.matmul(p.to(q.dtype), v).view(b, h, L, d)
        ctx.save_for_backward(q, k, v, mask)
        ctx.scale, ctx.g = scale, g
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, mask = ctx.saved_tensors
        scale, g = ctx.scale, ctx.g
        b, h, L, d = q.shape
        kvh = k.shape[1]
        qg = q.reshape(b, kvh, g * L, d)
        p32 = _probs(qg, k, mask, scale, g)
        p = p32.to(q.dtype)
        go = grad_out.reshape(b, kvh, g * L, d)
        grad_v = torch.matmul(p.transpose(-1, -2), go)  # sums the group's heads into their kv head
        grad_p = torch.matmul(go, v.transpose(-1, -2)).float()
        grad_s = (p32 * (grad_p - (grad_p * p32).sum(-1, keepdim=True))).to(q.dtype) * scale
        grad_q = torch.matmul(grad_s, k).view(b, h, L, d)
        grad_k = torch.matmul(grad_s.transpose(-1, -2), qg)
        return grad_q, grad_k, grad_v, None, None


def lean_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                   scale: float) -> tuple[torch.Tensor, None]:
    """(output [b, L, heads, head_dim], None): the return of a transformers eager attention
    function (no weights). query [b, heads, L, d]; key/value [b, kv_heads, S, d]; mask additive."""
    out = _LeanAttention.apply(query, key, value, mask, scale)
    return out.transpose(1, 2).contiguous(), None
