"""Prompt tuning (Lester, Al-Rfou, Constant 2021): a trainable soft prompt P in R^{p x e}."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasktune.methods.base import MethodConfig, TaskModule
from tasktune.methods.soft_init import init_soft


@dataclass
class PromptTuningConfig(MethodConfig):
    prompt_length: int = 20
    """Virtual tokens prepended when the template places no [P:n] slot of its own."""
    init: str = "sampled-vocab"
    """random-uniform | sampled-vocab | class-label | text"""
    init_text: str = ""
    """String whose token embeddings initialise the prompt (init=text)."""


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
            vecs = init_soft(backbone, len(self.prompt), self.config.init, gen, label_ids, self.config.init_text)
            self.prompt.copy_(vecs)

    uses_soft = True

    @classmethod
    def prefix_soft_length(cls, config: PromptTuningConfig) -> int:
        return config.prompt_length

    def soft_vectors(self) -> torch.Tensor:
        return self.prompt
