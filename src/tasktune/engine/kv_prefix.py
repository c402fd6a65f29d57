"""Key/value prefixes for causal LMs: computed once, reused by every row of every batch.

Two users: (1) a shared literal prefix (in-context demonstrations, a long instruction) that
every row starts with: its KV is computed once per distinct prefix and expanded (no copy)
over the batch; (2) methods whose task parameters are themselves a KV prefix.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import NamedTuple

import torch
from transformers import DynamicCache

from tasktune.engine.batch import Batch
from tasktune.engine.cache_keyword import CACHE, cache_of

KV = list[tuple[torch.Tensor, torch.Tensor]]

# Leading positions shared by every row worth running once: shorter ones save less than the
# expansion and the extra call cost.
MIN_SHARED = 8


def kv_of(backbone, prefix: torch.Tensor) -> KV:
    """KV cache of a prefix (causal LMs): token ids [1, P] or input embeddings [1, P, H]. Runs the
    base model only: a prefix's logits are never read, so the LM head (vocabulary-wide) is skipped.

    The cache is a plain one of full layers, so a sliding-window layer (Gemma 3, Mistral) returns
    the whole prefix, not only its last window: `prefix_cache` then gives every layer its kind."""
    key = "inputs_embeds" if prefix.is_floating_point() else "input_ids"
    out = backbone.model.base_model(**{key: prefix}, use_cache=True, **{CACHE: DynamicCache()})
    return [(k, v) for k, v, *_ in cache_of(out)]


def prefix_cache(model_config, kv: KV) -> DynamicCache:
    """A cache holding a KV prefix, each layer of the model's own kind: a sliding-window layer keeps
    the last window of the prefix and counts all of it, so masks and positions match a forward over
    prefix + rows (built without the config, every layer would be a full one: wrong masks there)."""
    return DynamicCache(ddp_cache_data=kv, config=model_config)


def with_kv(inputs: dict, kv: KV, model_config) -> dict:
    """Backbone inputs extended by a KV prefix of batch size 1 or B (expanded over the batch)."""
    b = inputs["attention_mask"].shape[0]
    plen = kv[0][0].shape[-2]
    cache = prefix_cache(model_config, [(k.expand(b, -1, -1, -1), v.expand(b, -1, -1, -1)) for k, v in kv])
    mask = torch.cat([inputs["attention_mask"].new_ones(b, plen), inputs["attention_mask"]], dim=1)
    return {**inputs, CACHE: cache, "attention_mask": mask}


def drop_prefix(batch: Batch, p: int) -> Batch:
    fields = dict(batch.__dict__)
    fields.update(ids=batch.ids[:, p:], soft=batch.soft[:, p:], mask=batch.mask[:, p:], score_pos=batch.score_pos - p)
    return Batch(**fields)


class _StepPrefix(NamedTuple):
    """The prefix of one optimizer step: its key, its KV with the graph, and the KV as leaves."""

    key: torch.Tensor
    graph: list[torch.Tensor]
    leaves: list[torch.Tensor]


class SharedPrefixCache:
    """Run the prefix shared by all rows once (causal LMs): demonstrations, an instruction, and a
    soft prompt, whose vectors are the same in every row. At inference its KV is kept and reused
    across batches, keyed by the prefix's ids or input embeddings, so new task parameters
    (evaluation during training) never hit a stale entry; in training it is recomputed with
    gradients once per forward instead of once per row, or, inside step(), once per optimizer step."""

    def __init__(self, min_length: int = MIN_SHARED):
        self.min_length = min_length
        self.key: torch.Tensor | None = None  # ids [P] or input embeddings [P, H] of the stored prefix
        self.kv: KV | None = None
        self._in_step = False
        self._step: _StepPrefix | None = None

    @contextmanager
    def step(self):
        """One optimizer step of several micro-batches: the shared prefix runs once for all of them.

        Its KV is computed with gradients on the first piece and handed to every piece as detached
        leaves; each piece's backward accumulates into their .grad, and on leaving, one backward
        through the prefix's own graph carries the summed gradient to the task parameters (and to
        the backbone, when it trains). The same update as running the prefix per piece, minus
        pieces - 1 prefix forwards and backwards. Pieces whose prefix differs (dropout, another
        task) run it themselves. Not under DistributedDataParallel: the deferred backward would
        land after the gradients were all-reduced."""
        self._in_step, self._step = True, None
        try:
            yield
            if self._step is not None:
                pairs = [(g, leaf.grad) for g, leaf in zip(self._step.graph, self._step.leaves, strict=True)
                         if leaf.grad is not None]
                if pairs:
                    torch.autograd.backward([g for g, _ in pairs], [d for _, d in pairs])
        finally:
            self._in_step, self._step = False, None

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

    def _step_kv(self, backbone, key: torch.Tensor, soft: bool, batch: Batch, module) -> KV | None:
        """Inside step(): the step's prefix KV as leaves if `key` is its prefix (the first piece
        computes it), else None (the piece runs its own prefix)."""
        if self._step is None:
            if soft and module is None:
                return None
            # the graph from the task parameters to the prefix must outlive this piece's backward,
            # which frees the graph of the piece's own inputs: a soft prefix is rebuilt for it
            source = module(backbone, batch)["inputs_embeds"][0, : len(key)] if soft else key
            graph = [t for pair in kv_of(backbone, source[None]) for t in pair]
            leaves = [t.detach().requires_grad_(t.requires_grad) for t in graph]
            self._step = _StepPrefix(source.detach(), graph, leaves)
        stored = self._step.key
        if stored.shape != key.shape or not torch.equal(stored, key.detach()):
            return None
        leaves = self._step.leaves
        return list(zip(leaves[0::2], leaves[1::2], strict=True))

    def split(self, backbone, batch: Batch, inputs: dict, fresh: bool = False,
              module=None) -> tuple[Batch, dict] | None:
        """(batch and backbone inputs without the shared prefix, with its KV attached), or None.

        fresh: training. The prefix's KV is computed now from the first row, with gradients (they
        flow back through the expansion over rows, summed), and nothing is kept; inside step(),
        once per optimizer step instead. module: the method whose forward made `inputs`; run again,
        it gives the step's soft prefix a graph of its own."""
        embeds = inputs.get("inputs_embeds")
        if CACHE in inputs:
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
        if fresh and self._in_step:
            kv = self._step_kv(backbone, key, embeds is not None, batch, module)
        if kv is None:
            kv = kv_of(backbone, key[None])
            if not fresh:
                self.key, self.kv = key, kv
        p = len(key)
        rest = {"attention_mask": inputs["attention_mask"][:, p:]}
        if embeds is not None:
            rest["inputs_embeds"] = embeds[:, p:]
        else:
            rest["input_ids"] = inputs["input_ids"][:, p:]
        return drop_prefix(batch, p), with_kv(rest, kv, backbone.model.config)
