"""Length-bucketed, seeded batch order: similar lengths share a batch (little padding), yet
the order of batches is random and changes every epoch."""

from __future__ import annotations

import torch


def bucketed_batches(lengths: list[int], batch_size: int, seed: int, chunk: int = 50) -> list[list[int]]:
    gen = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    batches = []
    span = batch_size * chunk
    for start in range(0, len(perm), span):
        group = sorted(perm[start : start + span], key=lambda i: lengths[i])
        batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


def batch_stream(lengths: list[int], batch_size: int, seed: int, rank: int = 0, world: int = 1):
    """Endless (epoch, batch indices) for one process; each epoch reshuffles with seed + epoch."""
    epoch = 0
    while True:
        batches = bucketed_batches(lengths, batch_size, seed + epoch)
        usable = len(batches) - len(batches) % world if len(batches) >= world else len(batches)
        for b in batches[rank:usable:world]:
            yield epoch, b
        epoch += 1


def encoded_lengths(encoded: list[tuple[list, int]]) -> list[int]:
    """Tokens per encoded example (all its rows): what batches are bucketed by."""
    return [sum(len(r.ids) for r in rows) for rows, _ in encoded]
