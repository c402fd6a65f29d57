"""Contextual calibration (Zhao et al. 2021): divide the label probabilities by those the
model gives to content-free inputs ("N/A", "", "[MASK]") in the same context."""

from __future__ import annotations

import torch

from tasktune.data.readers import Example

CONTENT_FREE = ("N/A", "", "[MASK]")


def content_free_examples(fields: list[str]) -> list[Example]:
    """One example per content-free input, every template field set to it."""
    return [Example({name: cf for name in fields}, None, "content-free") for cf in CONTENT_FREE]


def log_prior(scores: torch.Tensor) -> torch.Tensor:
    """[C] log of the mean label distribution of the content-free examples' scores [N, C]."""
    return torch.softmax(scores.float(), -1).mean(0).log().cpu()


def calibrate(scores: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Calibrated log-probabilities: log p(y|x) - log p_cf(y), renormalised."""
    return torch.log_softmax(torch.log_softmax(scores, -1) - log_prior, -1)
