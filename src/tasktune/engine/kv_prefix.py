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
    """Reuse the KV of the token prefix shared by all rows (inference only, causal LMs)."""

    def __init__(self, min_length: int = 32):
        self.min_length = min_length
        self.ids: torch.Tensor | None = None
        self.kv: KV | None = None

    @staticmethod
    def _limit(batch: Batch) -> int:
        """How far a shared prefix may reach: up to the first soft slot, padding or read position."""
        ok = ((batch.soft < 0) & (batch.mask > 0)).all(0)
        cut = int(ok.float().argmin()) if not bool(ok.all()) else ok.numel()
        reads = batch.score_pos.masked_fill(batch.score_mask == 0, 10**9)
        return min(cut, int(reads.min()))

    def split(self, backbone, batch: Batch) -> tuple[Batch, KV] | None:
        limit = self._limit(batch)
        if self.ids is not None and len(self.ids) <= limit and bool((batch.ids[:, : len(self.ids)] == self.ids).all()):
            return drop_prefix(batch, len(self.ids)), self.kv
        if len(batch) < 2:
            return None
        same = (batch.ids[:, :limit] == batch.ids[:1, :limit]).all(0)
        p = int(same.float().argmin()) if not bool(same.all()) else limit
        if p < self.min_length:
            return None
        self.ids = batch.ids[0, :p].clone()
        self.kv = kv_of(backbone, self.ids[None])
        return drop_prefix(batch, p), self.kv
