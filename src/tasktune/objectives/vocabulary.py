"""Open-vocabulary answers (knowledge probing, LAMA-style): the label is a word, scored
against the whole vocabulary at the answer slot; P@1 = the top token is the gold one.

Only single-token answers have a P@1 (as in LAMA); multi-token answers get label -100
and are reported as excluded.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tasktune.data.readers import Example
from tasktune.engine.batch import Batch
from tasktune.engine.forward import score_logprobs
from tasktune.objectives.base import Encoded, Objective, Prediction


class VocabularyObjective(Objective):
    kind = "vocabulary"
    reads_facts = True

    def label_index(self, ex: Example) -> int:
        ids = self.encoder.tok(" " + ex.label.strip(), add_special_tokens=False).input_ids
        return ids[0] if len(ids) == 1 else -100

    def label_name(self, index: int) -> str:
        return self.encoder.tok.decode([index]).strip()

    def encode(self, ex: Example) -> Encoded:
        label = self.label_index(ex) if ex.label is not None else -100
        return Encoded([self.encoder.answer_row(ex)], label)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        return score_logprobs(backbone, inputs, batch)[:, 0, :]

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(scores, labels.to(scores.device), ignore_index=-100)

    def metrics(self, scores: torch.Tensor, examples: list[Example]) -> dict:
        gold = torch.tensor([self.label_index(ex) for ex in examples])
        pred = scores.argmax(-1)
        keep = gold >= 0
        p1 = (pred[keep] == gold[keep]).float().mean().item() if bool(keep.any()) else 0.0
        return {"p_at_1": p1, "accuracy": p1, "score": p1, "n": int(keep.sum()),
                "n_multi_token_excluded": int((~keep).sum())}

    def predictions(self, scores: torch.Tensor) -> list[Prediction]:
        top = torch.softmax(scores, -1).topk(5, dim=-1)
        return [Prediction(self.label_name(int(i[0])), float(v[0]),
                           {self.label_name(int(j)): float(x) for j, x in zip(i, v, strict=True)})
                for v, i in zip(top.values, top.indices, strict=True)]
