"""Text generation: teacher-forced loss on the target tokens only (the source is context),
for causal LMs (source + target in one sequence) and encoder-decoders (target on the decoder).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import Batch, collate
from tasktune.engine.encoding import Row, TemplateEncoder
from tasktune.engine.forward import score_logprobs


@dataclass
class GenerationObjective:
    encoder: TemplateEncoder
    target_field: str = "text"
    kind = "generation"

    def __post_init__(self):
        if self.encoder.family == "masked":
            raise TasktuneError("generation needs a causal or encoder-decoder model, not a masked LM")

    def target_ids(self, ex: Example) -> list[int]:
        text = ex.fields.get(self.target_field)
        if text is None or not text.strip():
            raise TasktuneError(f"{ex.where}: target field '{self.target_field}' is missing or empty")
        tok = self.encoder.tok
        return tok(" " + text.strip(), add_special_tokens=False).input_ids + [tok.eos_token_id]

    def example_length(self, ex: Example) -> int:
        return len(self.encoder.render(ex)[0])

    def encode(self, ex: Example) -> tuple[list[Row], int]:
        return [self.encoder.target_row(ex, self.target_ids(ex))], 0

    def collate(self, encoded, pad_id: int) -> tuple[Batch, torch.Tensor]:
        return collate([rows[0] for rows, _ in encoded], pad_id), torch.zeros(len(encoded), dtype=torch.long)

    def make_batch(self, examples: list[Example], pad_id: int) -> tuple[Batch, torch.Tensor]:
        return self.collate([self.encode(ex) for ex in examples], pad_id)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        """[R, 2]: summed log-prob of each row's target tokens, and their count."""
        logp = score_logprobs(backbone, inputs, batch)
        tok = logp.gather(-1, batch.targets[..., None]).squeeze(-1) * batch.score_mask
        return torch.stack([tok.sum(-1), batch.score_mask.sum(-1).to(tok.dtype)], dim=-1)

    @staticmethod
    def loss(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per target token."""
        return -scores[:, 0].sum() / scores[:, 1].sum().clamp(min=1)
