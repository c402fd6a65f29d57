"""P-tuning (Liu et al. 2021, "GPT Understands, Too").

Pseudo tokens sit anywhere in the template between discrete anchors
("[P:3] {premise} ? [P:3] {hypothesis} [P:3]{answer}"). Their inputs are not free vectors:
a prompt encoder maps trainable embeddings to them, modelling dependencies between the
pseudo tokens. Encoders: `lstm` (bidirectional 2-layer LSTM + 2-layer ReLU MLP, the paper's),
`mlp`, `identity` (EMB). The encoder runs once per batch, not per example.

At export the encoder is run once and folded away, as prefix tuning's MLP is: the artifact
holds only its output (`prompt`, [n pseudo tokens, width]), which is all inference needs (an
LSTM encoder is 4.7M parameters, its output 6 x 576 values). A loaded task is the identity
encoder over that output. Artifacts written before the fold, which also carry the encoder,
load the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.config_ranges import ranged
from tasktune.methods.base import BackbonePrecision, SoftPromptConfig, TaskModule
from tasktune.methods.soft_init import init_soft
from tasktune.methods.tuned_backbone import TunedBackbone

ENCODERS = ("lstm", "mlp", "identity")


@dataclass
class PTuningConfig(BackbonePrecision, SoftPromptConfig):
    """P-tuning's soft vectors are the prompt encoder's inputs: `init` sets those."""

    encoder: str = "lstm"
    """Prompt encoder: lstm | mlp | identity"""
    encoder_hidden: int = ranged(0, min=0)
    """Hidden width of the prompt encoder (0 = the backbone's width)."""
    tune_backbone: bool = False
    """Also train every backbone weight (fp32 master weights, see --precision), as P-tuning does on SuperGLUE."""
    backbone_lr: float = ranged(1e-5, min=0)
    """Learning rate of the backbone weights when --tune-backbone."""


class PromptEncoder(nn.Module):
    def __init__(self, kind: str, width: int, hidden: int):
        super().__init__()
        if kind not in ENCODERS:
            raise TasktuneError(f"unknown prompt encoder '{kind}': choose from {', '.join(ENCODERS)}")
        self.kind = kind
        if kind == "lstm":
            self.lstm = nn.LSTM(width, hidden // 2, num_layers=2, bidirectional=True, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, width))
        elif kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "identity":
            return x
        if self.kind == "lstm":
            x = self.lstm(x[None])[0][0]
        return self.mlp(x)


class PTuning(TaskModule):
    name = "p-tuning"
    config_class = PTuningConfig
    default_lr = 1e-3
    uses_soft = True
    folds_at_export = True

    def __init__(self, config: PTuningConfig, n_virtual: int, width: int, model: nn.Module | None = None,
                 folded: bool = False):
        """folded: the encoder's output is the parameter (an exported task), no encoder."""
        super().__init__(config)
        self.embedding = nn.Parameter(torch.zeros(n_virtual, width))
        self.folded = folded
        self.encoder = PromptEncoder("identity" if folded else config.encoder, width, config.encoder_hidden or width)
        self._frozen: torch.Tensor | None = None  # encoder output, reused while not training
        if config.tune_backbone:  # every backbone weight is trained too
            self.tuned = TunedBackbone(model, [n for n, _ in model.named_parameters()])

    @classmethod
    def prefix_soft_length(cls, config: PTuningConfig) -> int:
        return config.prompt_length

    @classmethod
    def empty(cls, config: PTuningConfig, backbone, n_virtual: int, folded: bool = False) -> PTuning:
        if config.tune_backbone and backbone.dtype != torch.float32:
            raise TasktuneError("--tune-backbone needs fp32 weights: load the model with --dtype float32")
        return cls(config, n_virtual, backbone.hidden_size, backbone.model if config.tune_backbone else None, folded)

    @classmethod
    def needs_fp32(cls, config: PTuningConfig) -> bool:
        return config.tune_backbone

    @classmethod
    def precision(cls, config: PTuningConfig) -> str:
        return config.precision

    def param_groups(self, lr: float) -> list[dict]:
        groups = [{"params": [self.embedding, *self.encoder.parameters()], "lr": lr}]
        if self.tuned is not None:
            groups.append({"params": self.tuned.parameters(), "lr": self.config.backbone_lr})
        return groups

    def initialize(self, backbone, label_ids, gen: torch.Generator) -> None:
        with torch.no_grad():
            n = len(self.embedding)
            self.embedding.copy_(init_soft(backbone, n, self.config.init, gen, label_ids, self.config.init_text))

    def train(self, mode: bool = True):
        if mode:  # parameters may change: the cached encoder output is stale
            self._frozen = None
        return super().train(mode)

    def soft_vectors(self) -> torch.Tensor:
        if self.training:
            return self.encoder(self.embedding)
        if self._frozen is None:
            with torch.no_grad():  # detached: the identity encoder returns the Parameter itself, and a
                self._frozen = self.encoder(self.embedding).detach()  # Parameter attribute would register
        return self._frozen

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """The encoder's output (`prompt`) and any tuned backbone weights: the encoder is dropped."""
        with torch.no_grad():
            out = {"prompt": self.encoder(self.embedding).detach().float().cpu().contiguous()}
        if self.tuned is not None:
            out.update(self.tuned.export())
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """An exported prompt. A module with an encoder takes it by folding itself (the encoder is
        dropped and the output becomes the parameter: the trainer leaves the best step's weights in
        the task this way). Encoder weights in older artifacts are ignored."""
        if "prompt" not in tensors:
            raise TasktuneError("p-tuning weights have no 'prompt' tensor (the prompt encoder's output)")
        backbone_part, own = TunedBackbone.split(tensors)
        prompt = own["prompt"]
        if tuple(prompt.shape) != tuple(self.embedding.shape):
            raise TasktuneError(f"prompt of shape {tuple(prompt.shape)} does not fit this template and model "
                                f"{tuple(self.embedding.shape)}")
        if not self.folded:
            self.encoder = PromptEncoder("identity", self.embedding.shape[1], self.embedding.shape[1])
            self.folded = True
        if self.tuned is not None:
            self.tuned.load(backbone_part)
        self.embedding.data.copy_(prompt)
        self._frozen = None
