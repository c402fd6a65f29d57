"""Key/value prefixes for causal LMs: computed once, reused by every row of every batch.

Two users: (1) a shared literal prefix (in-context demonstrations, a long instruction) that
every row starts with: its KV is computed once per distinct prefix and expanded (no copy)
over the batch; (2) methods whose task parameters are themselves a KV prefix.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from tasktune.engine.batch import Batch

KV = list[tuple[torch.Tensor, torch.Tensor]]


def kv_of(backbone, ids: torch.Tensor) -> KV:
    """KV cache of the token ids [1, P] (causal LMs)."""
    out = backbone.model(input_ids=ids, use_cache=True)
    return [(k, v) for k, v, *_ in out.past_key_values]


def with_kv(inputs: dict, kv: KV) -> dict:
    """Backbone inputs extended by a KV prefix of batch size 1 or B (expanded, never copied)."""
    b = inputs["attention_mask"].shape[0]
    plen = kv[0][0].shape[-2]
    cache = DynamicCache(ddp_cache_data=[(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv])
    mask = torch.cat([inputs["attention_mask"].new_ones(b, plen), inputs["attention_mask"]], dim=1)
    return {**inputs, "past_key_values": cache, "attention_mask": mask}


def drop_prefix(batch: Batch, p: int) -> Batch:
    fields = dict(batch.__dict__)
    fields.update(ids=batch.ids[:, p:], soft=batch.soft[:, p:], mask=batch.mask[:, p:], score_pos=batch.score_pos - p)
    return Batch(**fields)


class SharedPrefixCache:
    """Run the prefix shared by all rows once (causal LMs): demonstrations, an instruction, and a
    soft prompt, whose vectors are the same in every row. At inference its KV is kept and reused
    across batches, keyed by the prefix's ids or input embeddings, so new task parameters
    (evaluation during training) never hit a stale entry; in training it is recomputed per
    forward, with gradients, once instead of once per row."""

    def __init__(self, min_length: int = 8):
        self.min_length = min_length
        self.key: torch.Tensor | None = None  # ids [P] or input embeddings [P, H] of the stored prefix
        self.kv: KV | None = None

    @staticmethod
    def _limit(batch: Batch) -> int:
        """How far a shared prefix may reach: up to the first padding or read position."""
        ok = (batch.mask > 0).all(0)
        cut = int(ok.float().argmin()) if not bool(ok.all()) else ok.numel()
        reads = batch.score_pos.masked_fill(batch.score_mask == 0, 10**9)
        return min(cut, int(reads.min()))

    def _shared_length(self, batch: Batch) -> int:
        limit = self._limit(batch)
        same = ((batch.ids[:, :limit] == batch.ids[:1, :limit]) & (batch.soft[:, :limit] == batch.soft[:1, :limit]))
        same = same.all(0)
        return int(same.float().argmin()) if not bool(same.all()) else limit

    def shared_length(self, batch: Batch) -> int:
        """Leading positions a training forward runs once for all rows (0: none, the split is skipped)."""
        p = self._shared_length(batch) if len(batch) >= 2 else 0
        return p if p >= self.min_length else 0

    def _hit(self, key: torch.Tensor, limit: int) -> bool:
        n = 0 if self.key is None else len(self.key)
        return 0 < n <= limit and self.key.shape[1:] == key.shape[1:] and torch.equal(key[:n], self.key)

    def split(self, backbone, batch: Batch, inputs: dict, fresh: bool = False) -> tuple[Batch, dict] | None:
        """(batch and backbone inputs without the shared prefix, with its KV attached), or None.

        fresh: training. The prefix's KV is computed now from the first row, with gradients (they
        flow back through the expansion over rows, summed), and nothing is kept."""
        embeds = inputs.get("inputs_embeds")
        if "past_key_values" in inputs:
            return None
        if len(batch) >= 2:
            limit = self._shared_length(batch)
        else:  # one row: only a stored prefix can be reused
            limit = self._limit(batch)
        source = embeds[0] if embeds is not None else batch.ids[0]
        if fresh:
            if len(batch) < 2 or limit < self.min_length:
                return None
            key, kv = source[:limit], None
        elif self._hit(source[:limit], limit):
            key, kv = self.key, self.kv
        else:
            if len(batch) < 2 or limit < self.min_length:
                return None
            key, kv = source[:limit].clone(), None
        if kv is None:
            if embeds is not None:
                out = backbone.model(inputs_embeds=key[None], use_cache=True)
                kv = [(k, v) for k, v, *_ in out.past_key_values]
            else:
                kv = kv_of(backbone, key[None])
            if not fresh:
                self.key, self.kv = key, kv
        p = len(key)
        rest = {"attention_mask": inputs["attention_mask"][:, p:]}
        if embeds is not None:
            rest["inputs_embeds"] = embeds[:, p:]
        else:
            rest["input_ids"] = inputs["input_ids"][:, p:]
        return drop_prefix(batch, p), with_kv(rest, kv)
