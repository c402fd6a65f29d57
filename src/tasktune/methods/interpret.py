"""Interpretability (Lester et al. section 7): nearest vocabulary tokens of each soft vector."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nearest_tokens(backbone, vectors: torch.Tensor, k: int = 5) -> list[list[str]]:
    emb = backbone.embeddings.weight.detach().float()
    sims = F.normalize(vectors.float().to(emb.device), dim=-1) @ F.normalize(emb, dim=-1).T
    top = sims.topk(k, dim=-1).indices.cpu()
    tok = backbone.tokenizer
    return [[tok.decode([int(i)]) for i in row] for row in top]
