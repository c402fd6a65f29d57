"""Prompt tuning (Lester, Al-Rfou, Constant 2021): a trainable soft prompt P in R^{p x e}."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.artifact.files import load_artifact
from tasktune.methods.base import SoftPromptConfig, TaskModule
from tasktune.methods.soft_init import init_soft


@dataclass
class PromptTuningConfig(SoftPromptConfig):
    init_from: str = ""
    """A prompt-tuning artifact (e.g. from `tasktune pretrain-prompt`) whose prompt is the init."""


class PromptTuning(TaskModule):
    name = "prompt-tuning"
    config_class = PromptTuningConfig
    default_lr = 3e-2

    def __init__(self, config: PromptTuningConfig, n_virtual: int, hidden: int):
        super().__init__(config)
        self.prompt = nn.Parameter(torch.zeros(n_virtual, hidden))

    @classmethod
    def empty(cls, config: PromptTuningConfig, backbone, n_virtual: int) -> PromptTuning:
        return cls(config, n_virtual, backbone.hidden_size)

    def initialize(self, backbone, label_ids, gen: torch.Generator) -> None:
        with torch.no_grad():
            if self.config.init == "pretrained":
                vecs = pretrained_prompt(self.config.init_from, backbone, len(self.prompt))
            else:
                vecs = init_soft(backbone, len(self.prompt), self.config.init, gen, label_ids, self.config.init_text)
            self.prompt.copy_(vecs)

    uses_soft = True

    @classmethod
    def prefix_soft_length(cls, config: PromptTuningConfig) -> int:
        return config.prompt_length

    def soft_vectors(self) -> torch.Tensor:
        return self.prompt


def pretrained_prompt(path: str, backbone, n: int) -> torch.Tensor:
    """The prompt of an artifact trained on this backbone, cut or repeated to n vectors."""
    if not path:
        raise TasktuneError("--init pretrained needs --init-from RUN (a prompt-tuning artifact)")
    meta, tensors = load_artifact(path)
    if "prompt" not in tensors:
        raise TasktuneError(f"{path}: holds no soft prompt (method {meta.get('method')})")
    if meta["base_model"]["fingerprint"] != backbone.fingerprint:
        raise TasktuneError(f"{path}: prompt was trained on '{meta['base_model']['name']}', not this model")
    prompt = tensors["prompt"].float()
    reps = (n + len(prompt) - 1) // len(prompt)
    return prompt.repeat(reps, 1)[:n]
