"""Optimizers and the warmup + linear decay schedule."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from tasktune import TasktuneError


def make_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adafactor":  # Lester et al.: Adafactor, lr 0.3, no relative step
        from transformers.optimization import Adafactor

        return Adafactor(params, lr=lr, weight_decay=weight_decay, scale_parameter=False, relative_step=False,
                         warmup_init=False)
    raise TasktuneError(f"unknown optimizer '{name}': use adamw or adafactor")


def warmup_linear(optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return LambdaLR(optimizer, factor)
