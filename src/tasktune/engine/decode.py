"""Greedy and beam-search decoding.

Causal LMs: the method's inputs (soft prompt in the embeddings, or a KV prefix) go in with
the prompt; after that only the cache grows, so the task parameters are present at every
step. Our own loop because `generate` cannot start from a cache holding virtual tokens that
have no ids; tests check it against `generate` on a plain model.

Encoder-decoder models: the soft prompt sits in the encoder's input embeddings and prefixes
are added inside attention at every call, so transformers' `generate` runs unchanged.
"""

from __future__ import annotations

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine import attention_prefix
from tasktune.engine.batch import collate


@torch.inference_mode()
def generate(task, ex: Example, beams: int = 5, max_new_tokens: int = 64, length_penalty: float = 1.0) -> str:
    family = task.backbone.family
    if family not in ("causal", "seq2seq"):
        raise TasktuneError(f"decoding needs a causal or encoder-decoder model, not a {family} one")
    with task.module.compute_context(task.backbone.device):
        if family == "seq2seq":
            return _generate_seq2seq(task, ex, beams, max_new_tokens, length_penalty)
        return _generate_causal(task, ex, beams, max_new_tokens, length_penalty)


def _generate_seq2seq(task, ex: Example, beams: int, max_new_tokens: int, length_penalty: float) -> str:
    backbone = task.backbone
    batch = collate([task.encoder.answer_row(ex)], backbone.tokenizer.pad_token_id).to(backbone.device)
    task.module.eval()
    inputs = task.module(backbone, batch)
    with attention_prefix.active(inputs.pop(attention_prefix.KEYWORD, None)):
        out = backbone.model.generate(**inputs, num_beams=max(1, beams), max_new_tokens=max_new_tokens,
                                      length_penalty=length_penalty, do_sample=False, early_stopping=True)
    return backbone.tokenizer.decode(out[0], skip_special_tokens=True).strip()


def _generate_causal(task, ex: Example, beams: int, max_new_tokens: int, length_penalty: float) -> str:
    backbone = task.backbone
    model, tok = backbone.model, backbone.tokenizer
    eos = tok.eos_token_id
    batch = collate([task.encoder.answer_row(ex)], tok.pad_token_id).to(backbone.device)
    task.module.eval()
    inputs = task.module(backbone, batch)
    out = model(**inputs, use_cache=True, logits_to_keep=1)
    cache, mask = out.past_key_values, inputs["attention_mask"]
    logp = torch.log_softmax(out.logits[:, -1].float(), -1)  # [1, V]

    k = max(1, beams)
    scores, first = logp[0].topk(k)
    seqs = first[:, None]
    cache.batch_repeat_interleave(k)
    mask = mask.repeat(k, 1)
    finished: list[tuple[float, list[int]]] = []

    def norm(score: float, length: int) -> float:
        return score / (length ** length_penalty)

    alive = [i for i in range(k) if int(seqs[i, -1]) != eos]
    for i in range(k):
        if int(seqs[i, -1]) == eos:
            finished.append((norm(float(scores[i]), 1), []))
    for _ in range(max_new_tokens - 1):
        if not alive or len(finished) >= k:
            break
        idx = torch.tensor(alive, device=seqs.device)
        seqs, scores, mask = seqs[idx], scores[idx], mask[idx]
        cache.reorder_cache(idx)
        mask = torch.cat([mask, mask.new_ones(len(idx), 1)], 1)
        out = model(input_ids=seqs[:, -1:], attention_mask=mask, past_key_values=cache, use_cache=True)
        cand = scores[:, None] + torch.log_softmax(out.logits[:, -1].float(), -1)
        top_scores, top = cand.flatten().topk(2 * k)
        keep_beam, keep_tok, keep_score = [], [], []
        for s, flat in zip(top_scores.tolist(), top.tolist(), strict=True):
            b, t = divmod(flat, cand.shape[1])
            if t == eos:
                if len(finished) < k:
                    finished.append((norm(s, seqs.shape[1] + 1), seqs[b].tolist()))
            elif len(keep_beam) < k:
                keep_beam.append(b)
                keep_tok.append(t)
                keep_score.append(s)
            if len(keep_beam) == k:
                break
        sel = torch.tensor(keep_beam, device=seqs.device)
        cache.reorder_cache(sel)
        mask = mask[sel]
        seqs = torch.cat([seqs[sel], torch.tensor(keep_tok, device=seqs.device)[:, None]], 1)
        scores = torch.tensor(keep_score, device=seqs.device)
        alive = list(range(len(keep_beam)))
        if k == 1 and finished:
            break
    if not finished:  # ran out of tokens: take the best open beam
        finished = [(norm(float(scores[i]), seqs.shape[1]), seqs[i].tolist()) for i in range(len(seqs))]
    best = max(finished, key=lambda x: x[0])[1]
    return tok.decode(best, skip_special_tokens=True).strip()
