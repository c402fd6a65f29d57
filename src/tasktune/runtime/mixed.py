"""Many task modules, one backbone, one forward pass.

Rows of different tasks share a batch: every task's soft vectors go into one table, each
row's soft indices are shifted to its task's block, and each row's scores are read at its
own verbalizer's tokens. KV-prefix tasks (prefix tuning, causal LMs) join the same pass: each
row gets its own task's prefix, left-padded to the longest prefix in the batch and masked there,
and position ids that start after its own prefix, so every row computes what its task alone
would (tested against each task's own scores). Prompt ensembling is the special case of N
prompts for one task: N copies of each input in one batch, majority vote (Lester et al. section 6).

Supported here: soft-prompt methods (prompt tuning, P-tuning; frozen LM), prefix tuning on causal
LMs and zero-shot, with single-token verbalizers. Other tasks (fine-tuned weights, calibrated
in-context learning, multi-token words) run as their own batches.
"""

from __future__ import annotations

from collections import Counter
from contextlib import nullcontext

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import Batch, collate, micro_batches
from tasktune.engine.cache_keyword import CACHE
from tasktune.engine.forward import score_logprobs
from tasktune.engine.kv_prefix import prefix_cache
from tasktune.methods.base import TaskModule

PIECE_TOKENS_CPU = 1024  # padded tokens per forward piece on CPU (the matmuls stay efficient; padding does not grow)


def can_mix(task) -> bool:
    """Declared by the objective and the method (see their `mixable`), plus single-token answers;
    a KV prefix mixes on causal LMs (masked and encoder-decoder prefixes live inside attention)."""
    module = task.module
    return (task.objective.mixable and task.encoder.single_token and module.mixable(module.config)
            and (not module.provides_kv or task.backbone.family == "causal"))


def soft_table(tasks: list) -> tuple[torch.Tensor | None, list[int]]:
    """Every task's soft vectors in one table, and where each task's block starts."""
    vectors, offsets, width = [], [], 0
    for t in tasks:
        t.module.eval()
        v = t.module.soft_vectors()
        offsets.append(width)
        if v is not None:
            vectors.append(v)
            width += len(v)
    return (torch.cat(vectors) if vectors else None), offsets


def with_row_prefixes(backbone, inputs: dict, batch: Batch, prefixes: list[torch.Tensor | None],
                      row_task: torch.Tensor) -> dict:
    """Backbone inputs where row r attends first to prefixes[row_task[r]] ([layers, 2, kv, L, hd], or
    None: no prefix): left-padded to the longest L, padding masked, positions from the row's own L."""
    lengths = torch.tensor([0 if p is None else p.shape[3] for p in prefixes])
    longest = int(lengths.max())
    if longest == 0:
        return inputs
    shape = next(p for p in prefixes if p is not None).shape
    padded = torch.zeros(len(prefixes), shape[0], 2, shape[2], longest, shape[4], dtype=backbone.dtype,
                         device=backbone.device)
    for t, p in enumerate(prefixes):
        if p is not None:
            padded[t, ..., longest - p.shape[3]:, :] = p.to(backbone.dtype)
    rows = padded[row_task.to(backbone.device)]  # [B, layers, 2, kv, L, hd]
    cache = prefix_cache(backbone.model.config, [(rows[:, i, 0], rows[:, i, 1]) for i in range(shape[0])])
    own = lengths[row_task].to(backbone.device)
    slots = torch.arange(longest, device=backbone.device)[None] >= (longest - own)[:, None]
    mask = torch.cat([slots.to(inputs["attention_mask"].dtype), inputs["attention_mask"]], dim=1)
    positions = own[:, None] + torch.arange(batch.ids.shape[1], device=backbone.device)[None]
    return {**inputs, CACHE: cache, "attention_mask": mask, "position_ids": positions}


@torch.inference_mode()
def mixed_scores(tasks: list, items: list[tuple[int, Example]], max_tokens: int = -1) -> list[torch.Tensor]:
    """Label scores of each (task index, example), all rows in one forward pass, or on CPU in
    length-sorted pieces of at most `max_tokens` padded tokens (-1: PIECE_TOKENS_CPU on CPU, whole
    batches elsewhere; 0: whole), so rows of very different lengths do not pay for padding."""
    backbone = tasks[0].backbone
    if any(t.backbone is not backbone for t in tasks):
        raise TasktuneError("mixed batches need every task on the same loaded backbone")
    bad = [t.method for t in tasks if not can_mix(t)]
    if bad:
        raise TasktuneError(f"tasks of method(s) {sorted(set(bad))} cannot share a mixed batch")
    table, offsets = soft_table(tasks)
    prefixes = [t.module.kv_prefix() for t in tasks]
    rows = []
    for ti, ex in items:
        row = tasks[ti].encoder.classification_rows(ex)[0]
        row.soft = [s + offsets[ti] if s >= 0 else -1 for s in row.soft]
        rows.append(row)
    out: list[torch.Tensor | None] = [None] * len(items)
    budget = max_tokens if max_tokens >= 0 else (PIECE_TOKENS_CPU if backbone.device.type == "cpu" else 0)
    for piece in micro_batches(list(range(len(rows))), [len(r.ids) for r in rows], budget):
        batch = collate([rows[i] for i in piece], backbone.tokenizer.pad_token_id).to(backbone.device)
        inputs = TaskModule.place_soft(backbone, batch, table)
        inputs = with_row_prefixes(backbone, inputs, batch, prefixes, torch.tensor([items[i][0] for i in piece]))
        logp = score_logprobs(backbone, inputs, batch)[:, 0]
        for r, i in enumerate(piece):
            label_ids = torch.tensor([ids[0] for ids in tasks[items[i][0]].encoder.label_ids], device=logp.device)
            out[i] = logp[r, label_ids].float().cpu()
    return out


def can_mix_generation(task) -> bool:
    """A decoding task whose rows can be decoded with other tasks' (causal LM, parameters as inputs)."""
    module = task.module
    return task.objective.decodes and task.backbone.family == "causal" and module.mixable(module.config)


class _MixedRows(nn.Module):
    """Several tasks' parameters as one module for the decoder: the rows it is given are `items`
    (task index, example), rendered each by its own task's template (`answer_row`), soft indices
    shifted into one table, KV prefixes per row."""

    def __init__(self, tasks: list):
        super().__init__()
        self.tasks = tasks
        self.table, self.offsets = soft_table(tasks)
        self.prefixes = [t.module.kv_prefix() for t in tasks]
        self.row_task: torch.Tensor | None = None

    def answer_row(self, item: tuple[int, Example]):
        ti, ex = item
        row = self.tasks[ti].encoder.answer_row(ex)
        row.soft = [s + self.offsets[ti] if s >= 0 else -1 for s in row.soft]
        return row

    def compute_context(self, device):
        return nullcontext()

    def forward(self, backbone, batch: Batch) -> dict:
        inputs = TaskModule.place_soft(backbone, batch, self.table)
        inputs = with_row_prefixes(backbone, inputs, batch, self.prefixes, self.row_task)
        inputs.pop("position_ids", None)  # the decoder sets positions from the (left-padded) mask
        return inputs


@torch.inference_mode()
def mixed_generate(tasks: list, items: list[tuple[int, Example]], beams: int = 1,
                   max_new_tokens: int = 64) -> list[str]:
    """Decoded texts of each (task index, source), the rows of every task decoded together."""
    from tasktune.engine.decode import generate

    bad = [t.method for t in tasks if not can_mix_generation(t)]
    if bad:
        raise TasktuneError(f"tasks of method(s) {sorted(set(bad))} cannot be decoded in a mixed batch")
    rows = _MixedRows(tasks)
    rows.row_task = torch.tensor([ti for ti, _ in items])  # in the items' order: one batch keeps it
    return generate(tasks[0].backbone, rows, rows, items, beams, max_new_tokens, batch_size=max(1, len(items)))


def ensemble_predict(tasks: list, examples: list[Example]) -> list[dict]:
    """Majority vote of N prompts for the same task, run as one batch of N copies per input; each
    result also names every member's own label (`members`, in task order)."""
    labels = tasks[0].verbalizer.labels
    if any(t.verbalizer.labels != labels for t in tasks):
        raise TasktuneError("an ensemble needs tasks with the same labels")
    items = [(ti, ex) for ex in examples for ti in range(len(tasks))]
    scores = mixed_scores(tasks, items)
    out = []
    for i in range(len(examples)):
        votes = [int(scores[i * len(tasks) + j].argmax()) for j in range(len(tasks))]
        counts = Counter(votes)
        top = max(counts.values())
        # ties: the label with the highest summed probability among the tied ones
        probs = sum(torch.softmax(scores[i * len(tasks) + j], -1) for j in range(len(tasks)))
        best = max((v for v in counts if counts[v] == top), key=lambda v: float(probs[v]))
        out.append({"label": labels[best], "votes": {labels[v]: c for v, c in counts.items()},
                    "members": [labels[v] for v in votes]})
    return out
