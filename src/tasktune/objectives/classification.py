"""Verbalizer classification: scores of each label's word(s) at the answer slot."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tasktune.data.readers import Example
from tasktune.engine.batch import Batch, collate
from tasktune.engine.encoding import Row, TemplateEncoder
from tasktune.engine.forward import score_logprobs, sequence_scores


@dataclass
class ClassificationObjective:
    encoder: TemplateEncoder
    length_norm: bool = False
    kind = "classification"

    def label_index(self, ex: Example) -> int:
        return self.encoder.verbalizer.index(ex.label, ex.where)

    def label_name(self, index: int) -> str:
        return self.labels[index]

    @property
    def labels(self) -> tuple[str, ...]:
        return self.encoder.verbalizer.labels

    @property
    def rows_per_example(self) -> int:
        return 1 if self.encoder.single_token else len(self.labels)

    def example_length(self, ex: Example) -> int:
        return len(self.encoder.render(ex)[0])

    def encode(self, ex: Example) -> tuple[list[Row], int]:
        """The rows of one example and its label index (-100 when unlabelled)."""
        label = self.label_index(ex) if ex.label is not None else -100
        return self.encoder.classification_rows(ex), label

    def collate(self, encoded: list[tuple[list[Row], int]], pad_id: int) -> tuple[Batch, torch.Tensor]:
        rows = [r for ex_rows, _ in encoded for r in ex_rows]
        return collate(rows, pad_id), torch.tensor([label for _, label in encoded])

    def make_batch(self, examples: list[Example], pad_id: int) -> tuple[Batch, torch.Tensor]:
        return self.collate([self.encode(ex) for ex in examples], pad_id)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        """[B, C] log-likelihood of each label."""
        logp = score_logprobs(backbone, inputs, batch)
        if self.encoder.single_token:
            first = torch.tensor([t[0] for t in self.encoder.label_ids], device=logp.device)
            return logp[:, 0, first]
        return sequence_scores(logp, batch, self.length_norm).view(-1, len(self.labels))

    @staticmethod
    def loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(scores, labels.to(scores.device), ignore_index=-100)
