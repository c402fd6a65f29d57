"""Text generation: teacher-forced loss on the target tokens only (the source is context),
for causal LMs (source + target in one sequence) and encoder-decoders (target on the decoder).

Scores are per row [sum of the target tokens' log-probs, their count]; the loss and the dev
metric are the mean negative log-likelihood per target token. Predictions are decoded
(engine/decode.py), and `text_metrics` scores them against references grouped per source.
"""

from __future__ import annotations

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import Batch
from tasktune.engine.encoding import TemplateEncoder
from tasktune.engine.forward import score_logprobs
from tasktune.objectives.base import Encoded, Objective


class GenerationObjective(Objective):
    kind = "generation"
    decodes = True
    reads_target_field = True

    def __init__(self, encoder: TemplateEncoder, target_field: str = "text"):
        super().__init__(encoder)
        self._target_field = target_field
        if encoder.family == "masked":
            raise TasktuneError("generation needs a causal or encoder-decoder model, not a masked LM")

    @property
    def target_field(self) -> str:
        return self._target_field

    @classmethod
    def create(cls, encoder: TemplateEncoder, target_field: str | None = None) -> GenerationObjective:
        return cls(encoder, target_field or "text")

    def target_ids(self, ex: Example) -> list[int]:
        text = ex.fields.get(self.target_field)
        if text is None or not text.strip():
            raise TasktuneError(f"{ex.where}: target field '{self.target_field}' is missing or empty")
        tok = self.encoder.tok
        return tok(" " + text.strip(), add_special_tokens=False).input_ids + [tok.eos_token_id]

    def check(self, ex: Example, require_label: bool = False) -> None:
        """A generation example's 'label' is its target field."""
        if require_label:
            self.target_ids(ex)

    def encode(self, ex: Example) -> Encoded:
        return Encoded([self.encoder.target_row(ex, self.target_ids(ex))], 0)

    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        """[R, 2]: summed log-prob of each row's target tokens, and their count."""
        logp = score_logprobs(backbone, inputs, batch)
        tok = logp.gather(-1, batch.targets[..., None]).squeeze(-1) * batch.score_mask
        return torch.stack([tok.sum(-1), batch.score_mask.sum(-1).to(tok.dtype)], dim=-1)

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per target token."""
        return -scores[:, 0].sum() / scores[:, 1].sum().clamp(min=1)

    def evaluation_set(self, examples: list[Example]) -> list[Example]:
        """Every example: the target is a field, not a label."""
        return examples

    def metrics(self, scores: torch.Tensor, examples: list[Example]) -> dict:
        nll = float(-scores[:, 0].sum()) / max(float(scores[:, 1].sum()), 1.0)
        return {"loss": nll, "score": -nll, "n": len(examples)}

    def sources(self, examples: list[Example]) -> tuple[list[Example], list[list[str]]]:
        """One example per distinct source (all fields but the target) and its references."""
        groups: dict[tuple, list[str]] = {}
        first: dict[tuple, Example] = {}
        for ex in examples:
            key = tuple(sorted((k, v) for k, v in ex.fields.items() if k != self.target_field))
            groups.setdefault(key, []).append(ex.fields[self.target_field])
            first.setdefault(key, ex)
        return list(first.values()), list(groups.values())
