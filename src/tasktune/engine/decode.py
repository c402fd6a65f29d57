"""Greedy and beam-search decoding, batched over sources.

Causal LMs: sources are left-padded into one batch; the method's inputs (soft prompt in the
embeddings, or a KV prefix) go in with the prompt, and after that only the cache grows, so the
task parameters are present at every step. Position ids come from the attention mask (left
padding) and start after each row's own KV prefix, as in training (rows of several tasks,
runtime/mixed.py, carry prefixes of several lengths, padding masked). What every row starts
with (a soft prompt, the template's opening) is run once, as a KV prefix of one row: on E2E
with 20 virtual tokens that is 24 of a source's ~64 positions, a third of the prefill. Our own
loop because `generate` cannot start from a cache holding virtual tokens that have no ids; tests
check it against `generate` on a plain model, and batched decoding against one source at a time.

Encoder-decoder models: the soft prompt sits in the encoder's input embeddings and prefixes
are added inside attention at every call, so transformers' `generate` runs unchanged.
"""

from __future__ import annotations

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine import attention_prefix
from tasktune.engine.batch import Batch, collate, length_sorted_batches
from tasktune.engine.cache_keyword import CACHE, cache_of
from tasktune.engine.encoding import Row
from tasktune.engine.forward import read_forward
from tasktune.engine.kv_prefix import MIN_SHARED, kv_of, with_kv

# Rows (sources x beams) a decoding step runs by default. A step reads every weight whatever the
# rows, so more rows are nearly free until the matmuls stop being bound by reading weights: on a
# Zen 4 EPYC, 48 sources a batch decoded greedily 2.2x faster than 8, and beam 5 at 16 sources (80
# rows) 1.17x faster than at 8, for 0.11-0.15 GB more peak RSS (benchmarks/decode_batch_trial.py,
# docs/BENCHMARKS.md "Decoding batch size").
DECODE_ROWS = 80


def decode_batch_size(beams: int) -> int:
    """Sources a decoding batch holds by default: DECODE_ROWS rows a step."""
    return max(1, DECODE_ROWS // max(1, beams))


@torch.inference_mode()
def generate(backbone, module, encoder, examples: list[Example], beams: int = 5, max_new_tokens: int = 64,
             length_penalty: float = 1.0, batch_size: int | None = None, min_new_tokens: int = 0) -> list[str]:
    """Decoded texts of `examples`, in their order: `module` turns each batch into backbone inputs
    (its task parameters), `encoder` renders the sources. Where they take several batches, a batch
    holds sources of similar length (sorted by it), so little of it is padding; one batch keeps
    the given order. `min_new_tokens`: end-of-sequence is barred until that many tokens exist
    (transformers' option of the same name; equal-length outputs for timing). `batch_size`: sources
    a batch, by default `decode_batch_size(beams)`."""
    family = backbone.family
    if family not in ("causal", "seq2seq"):
        raise TasktuneError(f"decoding needs a causal or encoder-decoder model, not a {family} one")
    module.eval()
    step = _generate_seq2seq if family == "seq2seq" else _generate_causal
    rows = [encoder.answer_row(ex) for ex in examples]
    out: list[str] = [""] * len(examples)
    with module.compute_context(backbone.device):
        for idx in length_sorted_batches([len(r.ids) for r in rows], batch_size or decode_batch_size(beams)):
            texts = step(backbone, module, [rows[i] for i in idx], max(1, beams), max_new_tokens, length_penalty,
                         min(min_new_tokens, max_new_tokens))
            for i, text in zip(idx, texts, strict=True):
                out[i] = text
    return out


def _generate_seq2seq(backbone, module, rows: list[Row], beams: int, max_new_tokens: int, length_penalty: float,
                      min_new_tokens: int) -> list[str]:
    batch = collate(rows, backbone.tokenizer.pad_token_id)
    inputs = module(backbone, batch.to(backbone.device))
    with attention_prefix.active(inputs.pop(attention_prefix.KEYWORD, None)):
        out = backbone.model.generate(**inputs, num_beams=beams, max_new_tokens=max_new_tokens,
                                      length_penalty=length_penalty, do_sample=False, early_stopping=True,
                                      min_new_tokens=min_new_tokens)
    return [backbone.tokenizer.decode(o, skip_special_tokens=True).strip() for o in out]


def _left_padded(rows, pad_id: int) -> Batch:
    """collate, then move each row's padding to the left (decoding appends on the right)."""
    batch = collate(rows, pad_id)
    width = batch.ids.shape[1]
    for i, r in enumerate(rows):
        shift = width - len(r.ids)
        if shift:
            batch.ids[i] = batch.ids[i].roll(shift)
            batch.soft[i] = batch.soft[i].roll(shift)
            batch.mask[i] = batch.mask[i].roll(shift)
    return batch


def _window(config) -> int | None:
    """The attention window of a model with sliding-window layers (Gemma 3, Mistral), else None."""
    window = getattr(getattr(config, "get_text_config", lambda: config)(), "sliding_window", None)
    return window if isinstance(window, int) and window > 0 else None


def _columns(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Each row's columns `idx` [rows, n] of token ids [rows, T] or input embeddings [rows, T, H]."""
    return x.gather(1, idx if x.dim() == 2 else idx[..., None].expand(-1, -1, x.shape[-1]))


def _shared_prefix(backbone, inputs: dict, batch: Batch, new_tokens: int) -> tuple[dict, torch.Tensor]:
    """Inputs whose leading positions shared by every row (a soft prompt, the template's opening)
    run once, as a KV prefix of one row expanded over the batch, and the batch's mask without them.
    Unchanged where nothing (or under MIN_SHARED positions) is shared, or the method brings its own
    KV prefix. `batch` is left-padded: row i starts at its own column, its padding first; with the
    prefix run once the padding lies after it, which a sliding window (over columns) would see
    where it saw prefix tokens, so a model with one shares only where every column fits in it."""
    mask = batch.mask
    window = _window(backbone.model.config)
    if CACHE in inputs or len(mask) < 2 or (window is not None and mask.shape[1] + new_tokens > window):
        return inputs, mask
    key = "inputs_embeds" if "inputs_embeds" in inputs else "input_ids"
    x = inputs[key]
    lengths = mask.sum(-1)
    width, reach = mask.shape[1], int(lengths.min()) - 1  # every row keeps a position of its own
    starts = (width - lengths)[:, None]  # each row's first real column
    if reach < MIN_SHARED:
        return inputs, mask
    lead = _columns(x, starts + torch.arange(reach, device=mask.device))
    same = (lead == lead[:1]).reshape(*lead.shape[:2], -1).all(-1).all(0)  # a position equal in every row
    p = int(same.float().argmin()) if not bool(same.all()) else reach
    if p < MIN_SHARED:
        return inputs, mask
    kv = kv_of(backbone, lead[:1, :p])
    # drop the p shared columns of each row, which start where its padding ends
    j = torch.arange(width - p, device=mask.device)[None]
    src = j + p * (j >= starts)
    rest_mask = mask.gather(1, src)
    return with_kv({**inputs, key: _columns(x, src), "attention_mask": rest_mask}, kv, backbone.model.config), rest_mask


class _Beams:
    """The finished hypotheses of one source."""

    def __init__(self, k: int, length_penalty: float):
        self.k, self.lp, self.done = k, length_penalty, []

    def add(self, score: float, tokens: list[int], length: int) -> None:
        """`length`: generated tokens the score covers (the end-of-sequence token included). Keeps
        the k best by length-normalised score, as transformers' beam hypotheses do."""
        entry = (score / (length ** self.lp), tokens)
        if len(self.done) < self.k:
            self.done.append(entry)
        else:
            worst = min(range(self.k), key=lambda i: self.done[i][0])
            if entry[0] > self.done[worst][0]:
                self.done[worst] = entry

    @property
    def full(self) -> bool:
        return len(self.done) >= self.k


def _next_token_scores(logits: torch.Tensor, k: int) -> torch.Tensor:
    """[N, V] scores of the next token. A beam search adds log-probs up along a hypothesis; greedy
    decoding only takes each row's best, which the logits rank as their log-softmax does: no fp32
    copy and softmax over the vocabulary per row and step (about 3 of SmolLM2's 40 ms a greedy
    step at 8 rows). Greedy scores are then sums of logits, compared only within a row."""
    return torch.log_softmax(logits.float(), -1) if k > 1 else logits


def _top_per_source(cand: torch.Tensor, groups: list[list[int]], k: int) -> list[tuple[list[float], list[int]]]:
    """Each source's 2k best (score, index into its rows x vocabulary, flattened), from `cand`
    [rows, V] and each source's rows. One top-k over [sources, rows x V] where every source has
    as many rows, in order (as the loop keeps them while no source has ended); else one a source."""
    m = len(groups[0])
    if all(g == list(range(j * m, (j + 1) * m)) for j, g in enumerate(groups)):
        top_s, top_i = cand.reshape(len(groups), -1).topk(min(2 * k, m * cand.shape[1]), dim=-1)
        return list(zip(top_s.tolist(), top_i.tolist(), strict=True))
    out = []
    for rows in groups:
        flat = cand[rows].flatten()
        top_s, top_i = flat.topk(min(2 * k, flat.numel()))
        out.append((top_s.tolist(), top_i.tolist()))
    return out


def _generate_causal(backbone, module, rows: list[Row], k: int, max_new_tokens: int, length_penalty: float,
                     min_new_tokens: int) -> list[str]:
    model, tok = backbone.model, backbone.tokenizer
    eos = tok.eos_token_id
    batch = _left_padded(rows, tok.pad_token_id).to(backbone.device)
    inputs, real_mask = _shared_prefix(backbone, module(backbone, batch), batch, max_new_tokens)
    # each row's KV-prefix length (0 without one; rows of several tasks may differ, padding masked)
    prefix_slots = inputs["attention_mask"].shape[1] - real_mask.shape[1]
    offset = inputs["attention_mask"][:, :prefix_slots].sum(-1, keepdim=True)
    pos = (real_mask.cumsum(-1) - 1).clamp(min=0) + offset
    last = torch.full((len(rows), 1), pos.shape[1] - 1, device=pos.device)  # left-padded: last column
    out = read_forward(model, inputs, last, position_ids=pos, use_cache=True)
    cache, mask = cache_of(out), inputs["attention_mask"]
    logp = _next_token_scores(out.logits[:, -1], k)  # [N, V]
    if min_new_tokens >= 1:  # barred after the softmax, as transformers' MinNewTokens processor does
        logp[:, eos] = -float("inf")

    n = len(rows)
    results = [_Beams(k, length_penalty) for _ in range(n)]
    # alive beams, flattened over sources: owner source, score, tokens so far
    first_scores, first_tok = logp.topk(k, dim=-1)  # [N, k]
    owner, scores, seqs, keep = [], [], [], []
    for e in range(n):
        for s, t in zip(first_scores[e].tolist(), first_tok[e].tolist(), strict=True):
            if t == eos:
                results[e].add(s, [], 1)
            else:
                owner.append(e), scores.append(s), seqs.append([t]), keep.append(e)
    last_pos = pos[:, -1]
    cache_rows = n
    for step in range(max_new_tokens - 1):
        alive = [i for i, e in enumerate(owner) if not results[e].full and not (k == 1 and results[e].done)]
        if not alive:
            break
        rows = [keep[i] for i in alive]
        if rows != list(range(cache_rows)):  # greedy with no row ended keeps the cache as it is (no copy)
            sel = torch.tensor(rows, device=mask.device, dtype=torch.long)
            cache.reorder_cache(sel)
            mask, last_pos = mask[sel], last_pos[sel]
        cache_rows = len(rows)
        mask = torch.cat([mask, mask.new_ones(len(alive), 1)], 1)
        last_pos = last_pos + 1
        owner = [owner[i] for i in alive]
        scores = [scores[i] for i in alive]
        seqs = [seqs[i] for i in alive]
        ids = torch.tensor([[s[-1]] for s in seqs], device=mask.device)
        out = model(input_ids=ids, attention_mask=mask, position_ids=last_pos[:, None], **{CACHE: cache},
                    use_cache=True)
        logp = _next_token_scores(out.logits[:, -1], k)
        if step + 2 <= min_new_tokens:  # this step makes token step + 2
            logp[:, eos] = -float("inf")
        cand = torch.tensor(scores, device=mask.device)[:, None] + logp
        new_owner, new_scores, new_seqs, keep = [], [], [], []
        rows_of: dict[int, list[int]] = {}
        for i, e in enumerate(owner):
            rows_of.setdefault(e, []).append(i)
        for (e, rows), (top_s, top_i) in zip(rows_of.items(), _top_per_source(cand, list(rows_of.values()), k),
                                             strict=True):
            taken = 0
            for s, f in zip(top_s, top_i, strict=True):
                b, t = divmod(f, cand.shape[1])
                row = rows[b]
                if t == eos:
                    results[e].add(s, seqs[row], len(seqs[row]) + 1)
                elif taken < k:
                    new_owner.append(e), new_scores.append(s), new_seqs.append(seqs[row] + [t]), keep.append(row)
                    taken += 1
                if taken == k:
                    break
        owner, scores, seqs = new_owner, new_scores, new_seqs  # `keep`: their rows in the cache
    # out of tokens: a source with fewer than k ended hypotheses lets its open beams compete with
    # them (transformers does the same), so an ended short one does not beat a better open one
    for i, e in enumerate(owner):
        if not results[e].full:
            results[e].add(scores[i], seqs[i], len(seqs[i]))
    texts = []
    for r in results:
        best = max(r.done, key=lambda x: x[0])[1] if r.done else []
        texts.append(tok.decode(best, skip_special_tokens=True).strip())
    return texts
