"""The one forward path: method inputs -> frozen backbone -> log-probs at the read positions only.

The LM head never runs over every position: causal and (most) masked models take
`logits_to_keep` as a [rows, positions] tensor (a Llama-style last layer runs at those
positions only: last_layer.py); a masked LM without it runs its encoder and
applies the head to the gathered positions; seq2seq reads the (short) decoder.
"""

from __future__ import annotations

import inspect
from functools import lru_cache

import torch

from tasktune.engine.batch import Batch
from tasktune.engine.last_layer import KEYWORD as READ_POSITIONS
from tasktune.engine.last_layer import at_read_positions


@lru_cache(maxsize=32)
def _accepts_logits_to_keep(cls) -> bool:
    return "logits_to_keep" in inspect.signature(cls.forward).parameters


def _split_head(model):
    """(encoder, head) for a masked LM whose forward has no logits_to_keep; None if unknown."""
    base = model.base_model
    heads = [m for _, m in model.named_children() if m is not base]
    return (base, heads[0]) if len(heads) == 1 else None


def read_forward(model, inputs: dict, pos: torch.Tensor, **kwargs):
    """A causal LM's forward with logits at `pos` [rows, positions] only: its output, logits
    [R, P, V]. The hidden rows reach the head gathered, hence contiguous: `logits_to_keep=1`
    slices [R, 1, H] out of [R, T, H] as a strided view, and a linear layer on a strided 3-D input
    expands its weight to one copy per row (pytorch/pytorch#151934): 0.47 s against 0.011 s for
    SmolLM2's head at 8 rows on an AVX-512 EPYC."""
    if at_read_positions(model):  # the last layer returns only the read rows (last_layer.py)
        return model(**inputs, logits_to_keep=0, **{READ_POSITIONS: pos}, **kwargs)
    return model(**inputs, logits_to_keep=pos, **kwargs)


def answer_logits(backbone, inputs: dict, batch: Batch) -> torch.Tensor:
    """Logits [R, P, V] at `batch.score_pos` (positions relative to the real tokens)."""
    model, family = backbone.model, backbone.family
    pos = batch.score_pos
    if family == "seq2seq":
        out = model(**inputs, decoder_input_ids=batch.decoder_ids, decoder_attention_mask=batch.decoder_mask,
                    use_cache=False)
        return torch.take_along_dim(out.logits, pos[..., None], dim=1)
    if at_read_positions(model) or _accepts_logits_to_keep(type(model)):
        return read_forward(model, inputs, pos, use_cache=False).logits
    split = _split_head(model)
    if split is not None:
        base, head = split
        hidden = base(**inputs).last_hidden_state
        return head(torch.take_along_dim(hidden, pos[..., None], dim=1))
    logits = model(**inputs).logits
    return torch.take_along_dim(logits, pos[..., None], dim=1)


def score_logprobs(backbone, inputs: dict, batch: Batch) -> torch.Tensor:
    """log-softmax over the vocabulary, in fp32, at the read positions: [R, P, V]."""
    return torch.log_softmax(answer_logits(backbone, inputs, batch).float(), dim=-1)


def sequence_scores(logp: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Sum of the target tokens' log-probs per row: [R]."""
    return (logp.gather(-1, batch.targets[..., None]).squeeze(-1) * batch.score_mask).sum(-1)
