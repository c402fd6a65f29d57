"""Initialisations of soft vectors (Lester et al. 2021, section 3.2 / METHODS.md section 1).

Frequency of BPE tokens: byte-level BPE (GPT-2, Llama-3, SmolLM) and SentencePiece (T5)
vocabularies assign ids in merge / score order, which follows pair frequency in the
tokenizer's training corpus, so the lowest non-special ids are the most frequent tokens.
`frequent_token_ids` therefore takes the first 5,000 ids that are not special tokens. A
WordPiece vocabulary (BERT) is not frequency-ordered; there the ids are an approximation.
"""

from __future__ import annotations

import torch

from tasktune import TasktuneError

INITS = ("random-uniform", "sampled-vocab", "class-label", "text")


def frequent_token_ids(tokenizer, k: int = 5000) -> torch.Tensor:
    special = set(tokenizer.all_special_ids)
    ids = [i for i in range(min(len(tokenizer), k + len(special) + 1)) if i not in special]
    return torch.tensor(ids[:k], dtype=torch.long)


def _embed(backbone, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return backbone.embed(ids.to(backbone.device)).float().cpu()


def sampled_vocab(backbone, n: int, gen: torch.Generator) -> torch.Tensor:
    pool = frequent_token_ids(backbone.tokenizer)
    pick = pool[torch.randperm(len(pool), generator=gen)[:n]]
    if len(pick) < n:  # tiny vocabularies: sample with replacement
        pick = pool[torch.randint(len(pool), (n,), generator=gen)]
    return _embed(backbone, pick)


def init_soft(backbone, n: int, how: str, gen: torch.Generator, label_ids: list[list[int]] | None = None,
              text: str = "") -> torch.Tensor:
    """[n, hidden] fp32 initial vectors."""
    if how == "random-uniform":
        return torch.empty(n, backbone.hidden_size).uniform_(-0.5, 0.5, generator=gen)
    if how == "sampled-vocab":
        return sampled_vocab(backbone, n, gen)
    if how == "class-label":
        if not label_ids:
            raise TasktuneError("class-label init needs a verbalizer")
        out = sampled_vocab(backbone, n, gen)
        for i, ids in enumerate(label_ids[:n]):  # a multi-token word averages its pieces
            out[i] = _embed(backbone, torch.tensor(ids)).mean(0)
        return out
    if how == "text":
        if not text:
            raise TasktuneError("init 'text' needs --init-text")
        ids = backbone.tokenizer(text, add_special_tokens=False).input_ids
        if not ids:
            raise TasktuneError("--init-text tokenises to nothing")
        reps = (n + len(ids) - 1) // len(ids)
        return _embed(backbone, torch.tensor((ids * reps)[:n]))
    raise TasktuneError(f"unknown init '{how}': choose from {', '.join(INITS)}")
