"""Backbone weights that a method trains (fine-tuning; P-tuning with --tune-backbone).

The backbone is shared by every task on it, so it is never a submodule of a task module: a
method that tunes some of its weights holds a TunedBackbone, which names them and is the one
rule for saving ("model.<parameter name>", fp32) and loading them.
"""

from __future__ import annotations

import torch
from torch import nn

from tasktune import TasktuneError

PREFIX = "model."


class TunedBackbone:
    def __init__(self, model: nn.Module, names: list[str]):
        if not names:
            raise TasktuneError("the method selected no backbone parameters to train")
        self.model, self.names = model, list(names)
        wanted = set(self.names)
        for n, p in model.named_parameters():
            p.requires_grad_(n in wanted)

    def parameters(self) -> list[nn.Parameter]:
        params = dict(self.model.named_parameters())
        return [params[n] for n in self.names]

    def numel(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def train(self, mode: bool) -> None:
        """Dropout of the tuned backbone follows the task module's mode."""
        self.model.train(mode)

    def state(self) -> dict[str, torch.Tensor]:
        """The tuned tensors as they are (checkpoints)."""
        params = dict(self.model.named_parameters())
        return {PREFIX + n: params[n].detach() for n in self.names}

    def export(self) -> dict[str, torch.Tensor]:
        """The tuned tensors for an artifact: fp32, on the CPU."""
        return {k: v.float().cpu().contiguous() for k, v in self.state().items()}

    @staticmethod
    def split(tensors: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(the backbone's tensors, the rest) of an artifact or checkpoint."""
        ours = {k: v for k, v in tensors.items() if k.startswith(PREFIX)}
        return ours, {k: v for k, v in tensors.items() if not k.startswith(PREFIX)}

    def load(self, tensors: dict[str, torch.Tensor]) -> None:
        state = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        params = dict(self.model.named_parameters())
        unknown = [k for k in state if k not in params]
        if unknown:
            raise TasktuneError(f"artifact holds tensors the model lacks: {unknown[:3]}")
        for k, v in state.items():
            if tuple(v.shape) != tuple(params[k].shape):
                raise TasktuneError(f"tensor '{PREFIX}{k}' has shape {tuple(v.shape)}, the model's is "
                                    f"{tuple(params[k].shape)}")
        self.model.load_state_dict(state, strict=False)
