"""Contextual calibration (Zhao et al. 2021): divide the label probabilities by those the
model gives to content-free inputs ("N/A", "", "[MASK]") in the same context."""

from __future__ import annotations

import torch

from tasktune.data.readers import Example

CONTENT_FREE = ("N/A", "", "[MASK]")


@torch.inference_mode()
def content_free_log_prior(task) -> torch.Tensor:
    """[C] log of the mean label distribution over content-free inputs."""
    rows = [Example({name: cf for name in task.template.fields}, None, "content-free") for cf in CONTENT_FREE]
    batch, _ = task.batch(rows)
    probs = torch.softmax(task.scores(batch).float(), -1).mean(0)
    return probs.log().cpu()


def calibrate(scores: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """Calibrated log-probabilities: log p(y|x) - log p_cf(y), renormalised."""
    return torch.log_softmax(torch.log_softmax(scores, -1) - log_prior, -1)
