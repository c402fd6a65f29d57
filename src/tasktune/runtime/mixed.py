"""Many task modules, one backbone, one forward pass.

Rows of different tasks share a batch: every task's soft vectors go into one table, each
row's soft indices are shifted to its task's block, and each row's scores are read at its
own verbalizer's tokens. Prompt ensembling is the special case of N prompts for one task:
N copies of each input in one batch, majority vote (Lester et al. section 6).

Supported here: soft-prompt methods (prompt tuning, P-tuning; frozen LM) and zero-shot, with
single-token verbalizers. Other tasks (prefix tuning, fine-tuned weights, multi-token words)
run as their own batches.
"""

from __future__ import annotations

from collections import Counter

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import collate
from tasktune.engine.forward import score_logprobs
from tasktune.methods.base import TaskModule


def can_mix(task) -> bool:
    """Declared by the objective and the method (see their `mixable`), plus single-token answers."""
    return task.objective.mixable and task.encoder.single_token and task.module.mixable(task.module.config)


@torch.inference_mode()
def mixed_scores(tasks: list, items: list[tuple[int, Example]]) -> list[torch.Tensor]:
    """Label scores of each (task index, example), all rows in one forward pass."""
    backbone = tasks[0].backbone
    if any(t.backbone is not backbone for t in tasks):
        raise TasktuneError("mixed batches need every task on the same loaded backbone")
    bad = [t.method for t in tasks if not can_mix(t)]
    if bad:
        raise TasktuneError(f"tasks of method(s) {sorted(set(bad))} cannot share a mixed batch")
    vectors, offsets, width = [], [], 0
    for t in tasks:
        t.module.eval()
        v = t.module.soft_vectors()
        offsets.append(width)
        if v is not None:
            vectors.append(v)
            width += len(v)
    table = torch.cat(vectors) if vectors else None
    rows = []
    for ti, ex in items:
        row = tasks[ti].encoder.classification_rows(ex)[0]
        row.soft = [s + offsets[ti] if s >= 0 else -1 for s in row.soft]
        rows.append(row)
    batch = collate(rows, backbone.tokenizer.pad_token_id).to(backbone.device)
    logp = score_logprobs(backbone, TaskModule.place_soft(backbone, batch, table), batch)[:, 0]
    out = []
    for r, (ti, _) in enumerate(items):
        label_ids = torch.tensor([ids[0] for ids in tasks[ti].encoder.label_ids], device=logp.device)
        out.append(logp[r, label_ids].float().cpu())
    return out


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
