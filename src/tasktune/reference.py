"""A plain reference path for prompt tuning a causal LM, to check the fast path against.

No tasktune engine code: the prompt text is tokenised whole by the tokenizer, the soft prompt is
concatenated to the input embeddings, transformers runs its ordinary forward over the whole
sequence one example at a time with the full logits, the label words are read at the last
position, and torch's default AdamW with a hand-written warmup + linear decay updates the
prompt. The fast path (answer-position-only logits, shared prompt KV, length-sorted batches,
fused AdamW, the CPU attention kernel, a bf16 backbone) must reach the same accuracy from the
same seed and data: tests/test_parity.py on a tiny model, benchmarks/parity.py on SST-2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tasktune.train.sampler import batch_stream, encoded_lengths


class ReferencePromptTuning:
    def __init__(self, model, tokenizer, prompt: torch.Tensor, label_words: Sequence[str]):
        self.model, self.tok = model, tokenizer
        self.prompt = prompt.detach().clone().float().requires_grad_()
        self.words = [tokenizer(w, add_special_tokens=False).input_ids[0] for w in label_words]
        self.specials = tokenizer("").input_ids  # e.g. a BOS, which stays first, before the prompt

    def scores(self, texts: Sequence[str]) -> torch.Tensor:
        """[B, C] logits of the label words after each prompt text."""
        emb = self.model.get_input_embeddings()
        dtype = emb.weight.dtype
        out = []
        for text in texts:
            ids = self.tok(text, add_special_tokens=False).input_ids
            x = torch.cat([emb(torch.tensor([self.specials], dtype=torch.long)), self.prompt.to(dtype)[None],
                           emb(torch.tensor([ids]))], dim=1)
            out.append(self.model(inputs_embeds=x).logits[0, -1].float()[self.words])
        return torch.stack(out)

    @torch.no_grad()
    def accuracy(self, texts: Sequence[str], labels: Sequence[int]) -> float:
        pred = self.scores(texts).argmax(-1)
        return (pred == torch.tensor(labels)).float().mean().item()

    def train(self, batches: Sequence[tuple[Sequence[str], Sequence[int]]], lr: float, weight_decay: float,
              warmup_ratio: float, max_grad_norm: float) -> list[float]:
        total, warmup = len(batches), int(warmup_ratio * len(batches))
        opt = torch.optim.AdamW([self.prompt], lr=lr, weight_decay=weight_decay)
        losses = []
        for step, (texts, labels) in enumerate(batches):
            factor = (step + 1) / max(1, warmup) if step < warmup else (total - step) / max(1, total - warmup)
            for group in opt.param_groups:
                group["lr"] = lr * max(0.0, factor)
            loss = F.cross_entropy(self.scores(texts), torch.tensor(labels))
            loss.backward()
            torch.nn.utils.clip_grad_norm_([self.prompt], max_grad_norm)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
        return losses


def trainer_batches(task, examples: list, batch_size: int, seed: int, steps: int) -> list[list]:
    """The batches `tasktune.train.train` feeds a single process, in order (same seed, same data
    order), so the reference sees exactly the same examples at every step."""
    stream = batch_stream(encoded_lengths([task.objective.encode(ex) for ex in examples]), batch_size, seed)
    return [[examples[i] for i in next(stream)[1]] for _ in range(steps)]
