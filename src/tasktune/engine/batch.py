"""Rows -> padded tensors. Right padding; positions to read are explicit, so no left-padding tricks."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasktune.engine.encoding import Row

# Sentences per evaluation forward (length-sorted). 64 scored the whole SST-2 dev 1.09-1.14x faster
# than 32 on an AMX Xeon, on glibc's malloc and on tcmalloc, for prompt, prefix and P-tuning; 128
# was no faster (benchmarks/eval_batch_trial.py, docs/BENCHMARKS.md "Evaluation batch size").
EVAL_BATCH_SIZE = 64


@dataclass
class Batch:
    ids: torch.Tensor  # [R, T] token ids (soft slots hold 0)
    soft: torch.Tensor  # [R, T] virtual-token index, -1 for real tokens
    mask: torch.Tensor  # [R, T] attention mask
    score_pos: torch.Tensor  # [R, P] positions whose logits are read
    score_mask: torch.Tensor  # [R, P]
    targets: torch.Tensor  # [R, P] target token at each read position (multi-token scoring)
    decoder_ids: torch.Tensor | None = None  # [R, D] seq2seq decoder inputs
    decoder_mask: torch.Tensor | None = None
    real_tokens: int = 0

    def to(self, device) -> Batch:
        moved = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in self.__dict__.items()}
        return Batch(**moved)

    def __len__(self) -> int:
        return self.ids.shape[0]


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


def collate(rows: list[Row], pad_id: int) -> Batch:
    ids = _pad([r.ids for r in rows], pad_id)
    soft = _pad([r.soft for r in rows], -1)
    mask = _pad([[1] * len(r.ids) for r in rows], 0)
    pos = _pad([r.score_pos or [0] for r in rows], 0)
    smask = _pad([[1] * len(r.score_pos) for r in rows], 0)
    targets = _pad([r.targets or [0] for r in rows], 0)
    if targets.shape[1] < pos.shape[1]:
        targets = torch.nn.functional.pad(targets, (0, pos.shape[1] - targets.shape[1]))
    dec = dmask = None
    if rows[0].decoder_ids is not None:
        dec = _pad([r.decoder_ids for r in rows], pad_id)
        dmask = _pad([[1] * len(r.decoder_ids) for r in rows], 0)
    return Batch(ids, soft, mask, pos, smask, targets, dec, dmask, sum(r.real_tokens for r in rows))


def micro_batches(idx: list[int], lengths: list[int], max_tokens: int) -> list[list[int]]:
    """One batch as the fewest equal-sized, length-sorted pieces of at most `max_tokens` padded
    tokens each (a single example may exceed it; 0 = the whole batch as given): little padding,
    activations bounded by max_tokens, and pieces big enough to keep the matmuls efficient."""
    if max_tokens <= 0:
        return [idx]
    order = sorted(idx, key=lambda i: lengths[i])
    for k in range(1, len(order) + 1):
        size = -(-len(order) // k)
        pieces = [order[j:j + size] for j in range(0, len(order), size)]
        if all(len(p) * lengths[p[-1]] <= max_tokens for p in pieces):
            return pieces
    return [[i] for i in order]


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches of at most `batch_size` items, items of similar length together (little
    padding) where they take several batches; a single batch keeps the given order."""
    order = list(range(len(lengths)))
    if len(lengths) > batch_size:
        order.sort(key=lengths.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
