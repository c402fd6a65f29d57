"""What every objective is: how an example becomes rows, and how the rows' scores become a loss,
metrics and predictions.

The Task never asks which objective it holds. It encodes through `encode` / `collate`, reads
scores through `scores`, trains on `loss`, and hands the scores of a whole evaluation set to
`metrics` or of a request to `predictions`. Two capabilities are declared, not probed:

- `decodes`: predictions are decoded text (generation), not an argmax over label scores;
- `reads_target_field`: the target is a field of the example, not its label;
- `mixable`: rows of this objective can share a forward pass with other tasks' rows
  (runtime/mixed.py); the encoder must also give single-token answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import ClassVar, NamedTuple

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.engine.batch import Batch, collate
from tasktune.engine.encoding import Row, TemplateEncoder


class Encoded(NamedTuple):
    """One example as rows, and its target index (-100: unlabelled or not scorable)."""

    rows: list[Row]
    label: int


@dataclass(frozen=True)
class Prediction:
    """A scored answer: the best label, its probability, and every label's (or the top few)."""

    label: str
    score: float
    scores: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Generated:
    """A decoded text."""

    output: str

    def to_dict(self) -> dict:
        return asdict(self)


class Objective(ABC):
    kind: ClassVar[str]
    decodes: ClassVar[bool] = False
    mixable: ClassVar[bool] = False
    reads_target_field: ClassVar[bool] = False  # the target is a field of the example (generation)
    reads_facts: ClassVar[bool] = False  # its data is a facts file (relation, subject, object), split by subject

    def __init__(self, encoder: TemplateEncoder):
        self.encoder = encoder

    @classmethod
    def create(cls, encoder: TemplateEncoder, target_field: str | None = None) -> Objective:
        """Build from the spec's fields (only generation reads `target_field`)."""
        return cls(encoder)

    # ---- encoding -------------------------------------------------------------------
    @abstractmethod
    def encode(self, ex: Example) -> Encoded:
        """The rows of one example and its target index."""

    def example_length(self, ex: Example) -> int:
        return len(self.encoder.render(ex)[0])

    def collate(self, encoded: list[Encoded], pad_id: int) -> tuple[Batch, torch.Tensor]:
        rows = [r for e in encoded for r in e.rows]
        return collate(rows, pad_id), torch.tensor([e.label for e in encoded], dtype=torch.long)

    def make_batch(self, examples: list[Example], pad_id: int) -> tuple[Batch, torch.Tensor]:
        return self.collate([self.encode(ex) for ex in examples], pad_id)

    def check(self, ex: Example, require_label: bool = False) -> None:
        """One-line error naming ex.where when its label (or target) cannot be used."""
        if ex.label is None and require_label:
            raise TasktuneError(f"{ex.where}: missing label")

    # ---- scores -> loss, metrics, predictions ---------------------------------------
    @abstractmethod
    def scores(self, backbone, inputs: dict, batch: Batch) -> torch.Tensor:
        """Per-example scores of backbone inputs (their meaning is the objective's own)."""

    @abstractmethod
    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The training loss of a batch's scores."""

    def evaluation_set(self, examples: list[Example]) -> list[Example]:
        """The examples `metrics` can score: by default the labelled ones (none is an error)."""
        labeled = [ex for ex in examples if ex.label is not None]
        if not labeled:
            raise TasktuneError("evaluation data has no labels")
        return labeled

    @abstractmethod
    def metrics(self, scores: torch.Tensor, examples: list[Example]) -> dict:
        """Metrics of a scored evaluation set; `score` is what checkpoint selection maximises."""

    def predictions(self, scores: torch.Tensor) -> list[Prediction]:
        raise TasktuneError(f"{self.kind} predictions are decoded, not scored")

    @property
    def target_field(self) -> str | None:
        """The field holding the text to produce (None unless reads_target_field)."""
        return None
