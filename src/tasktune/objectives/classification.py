"""Verbalizer classification: scores of each label's word(s) at the answer slot."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tasktune.data.readers import Example
from tasktune.engine.batch import Batch
from tasktune.engine.forward import score_logprobs, sequence_scores
from tasktune.objectives.base import Encoded, Objective, Prediction


class ClassificationObjective(Objective):
    kind = "classification"
    mixable = True

    @property
    def labels(self) -> tuple[str, ...]:
        return self.encoder.verbalizer.labels

    def label_index(self, ex: Example) -> int:
        return self.encoder.verbalizer.index(ex.label, ex.where)

    def check(self, ex: Example, require_label: bool = False) -> None:
        super().check(ex, require_label)
        if ex.label is not None:
            self.label_index(ex)

    def encode(self, ex: Example) -> Encoded:
        label = self.label_index(ex) if ex.label is not None else -100
        return Encoded(self.encoder.classification_rows(ex), label)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        """[B, C] log-likelihood of each label."""
        logp = score_logprobs(backbone, inputs, batch)
        if self.encoder.single_token:
            first = torch.tensor([t[0] for t in self.encoder.label_ids], device=logp.device)
            return logp[:, 0, first]
        return sequence_scores(logp, batch).view(-1, len(self.labels))

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(scores, labels.to(scores.device), ignore_index=-100)

    def metrics(self, scores: torch.Tensor, examples: list[Example]) -> dict:
        gold = torch.tensor([self.label_index(ex) for ex in examples])
        pred = scores.argmax(-1)
        acc = (pred == gold).float().mean().item()
        per_label = {lab: int((pred == i).sum()) for i, lab in enumerate(self.labels)}
        majority = max((gold == i).float().mean().item() for i in range(len(self.labels)))
        return {"accuracy": acc, "score": acc, "n": len(examples), "majority_baseline": majority,
                "predicted_counts": per_label}

    def predictions(self, scores: torch.Tensor) -> list[Prediction]:
        probs = torch.softmax(scores, -1)
        return [Prediction(self.labels[int(p.argmax())], float(p.max()),
                           {lab: float(x) for lab, x in zip(self.labels, p, strict=True)}) for p in probs]
