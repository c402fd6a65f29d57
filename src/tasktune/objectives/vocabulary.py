"""Open-vocabulary answers (knowledge probing, LAMA-style): the label is a word, scored
against the whole vocabulary at the answer slot; P@1 = the top token is the gold one.

Only single-token answers have a P@1 (as in LAMA); multi-token answers get label -100
and are reported as excluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tasktune.data.readers import Example
from tasktune.engine.batch import Batch, collate
from tasktune.engine.encoding import Row, TemplateEncoder
from tasktune.engine.forward import score_logprobs


@dataclass
class VocabularyObjective:
    encoder: TemplateEncoder
    kind = "vocabulary"

    def label_index(self, ex: Example) -> int:
        ids = self.encoder.tok(" " + ex.label.strip(), add_special_tokens=False).input_ids
        return ids[0] if len(ids) == 1 else -100

    def label_name(self, index: int) -> str:
        return self.encoder.tok.decode([index]).strip()

    def example_length(self, ex: Example) -> int:
        return len(self.encoder.render(ex)[0])

    def encode(self, ex: Example) -> tuple[list[Row], int]:
        label = self.label_index(ex) if ex.label is not None else -100
        return [self.encoder.answer_row(ex)], label

    def collate(self, encoded, pad_id: int) -> tuple[Batch, torch.Tensor]:
        return collate([rows[0] for rows, _ in encoded], pad_id), torch.tensor([label for _, label in encoded])

    def make_batch(self, examples: list[Example], pad_id: int) -> tuple[Batch, torch.Tensor]:
        return self.collate([self.encode(ex) for ex in examples], pad_id)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        return score_logprobs(backbone, inputs, batch)[:, 0, :]

    @staticmethod
    def loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(scores, labels.to(scores.device), ignore_index=-100)
