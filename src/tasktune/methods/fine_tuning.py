"""Fine-tuning baselines: the backbone's own weights are the task parameters.

With the verbalizer objective through the LM head this is PET-style cloze fine-tuning
(the pattern is the template, the verbalizer maps labels to words). `train_layers`:
`all`, `last:K` (the last K transformer blocks), `bias` (bias terms only, BitFit-style),
or a substring of parameter names. The artifact stores only the tuned tensors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.methods.base import MethodConfig, TaskModule


@dataclass
class FineTuningConfig(MethodConfig):
    train_layers: str = "all"
    """all | last:K | bias | a substring of parameter names"""


def _block_index(name: str) -> int | None:
    m = re.search(r"\.(?:layers|layer|h|block)\.(\d+)\.", name)
    return int(m.group(1)) if m else None


def selected(model: nn.Module, spec: str) -> list[str]:
    names = [n for n, _ in model.named_parameters()]
    if spec == "all":
        return names
    if spec == "bias":
        return [n for n in names if n.endswith(".bias")]
    if spec.startswith("last:"):
        k = int(spec.split(":", 1)[1])
        blocks = sorted({b for n in names if (b := _block_index(n)) is not None})
        keep = set(blocks[-k:]) if k else set()
        return [n for n in names if _block_index(n) in keep]
    chosen = [n for n in names if spec in n]
    if not chosen:
        raise TasktuneError(f"--train-layers '{spec}' matches no parameter")
    return chosen


class FineTuning(TaskModule):
    name = "fine-tuning"
    config_class = FineTuningConfig
    default_lr = 2e-5
    tunes_backbone = True

    def __init__(self, config: FineTuningConfig, model: nn.Module):
        super().__init__(config)
        self.model = model  # registered: its tuned weights are this task's parameters
        self.tuned = selected(model, config.train_layers)
        wanted = set(self.tuned)
        for n, p in model.named_parameters():
            p.requires_grad_(n in wanted)
        if not self.tuned:
            raise TasktuneError("fine-tuning selected no parameters (model has no biases?)")

    @classmethod
    def empty(cls, config: FineTuningConfig, backbone, n_virtual: int) -> FineTuning:
        if backbone.dtype != torch.float32:
            raise TasktuneError("fine-tuning needs fp32 weights: load the model with --dtype float32")
        return cls(config, backbone.model)

    def forward(self, backbone, batch) -> dict:
        self.model.train(self.training)
        return self.place_soft(backbone, batch, None)

    def export_tensors(self) -> dict[str, torch.Tensor]:
        params = dict(self.model.named_parameters())
        return {f"model.{n}": params[n].detach().float().cpu().contiguous() for n in self.tuned}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        state = {k[len("model."):]: v for k, v in tensors.items()}
        missing = self.model.load_state_dict(state, strict=False).unexpected_keys
        if missing:
            raise TasktuneError(f"artifact holds tensors the model lacks: {missing[:3]}")
