"""SMART (Jiang et al. 2020): smoothness-inducing adversarial regularisation plus Bregman
proximal point optimisation with momentum, as a wrapper around any method whose forward
starts from input embeddings.

    F(theta) = L(theta) + lambda_s * R_s(theta) + mu * D(theta, theta~)

R_s: symmetric KL between predictions on embeddings x and on x + delta, delta found by K steps
of projected gradient ascent from Gaussian noise (variance 1e-5), step 1e-3, ball radius 1e-5
(l_inf or l2, normalised gradient). D: symmetric KL between the current predictions and
those of the teacher theta~ = EMA(theta) (beta 0.99). The teacher costs one extra forward
with the EMA values swapped into the trainable tensors: no second copy of frozen weights.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tasktune.config_ranges import check_ranges, ranged


@dataclass
class SmartConfig:
    smart: bool = False
    """Add SMART's regularisers to the training loss."""
    smart_lambda: float = ranged(1.0, min=0)
    """lambda_s: weight of the adversarial smoothness term (paper: 1, 3 or 5)."""
    smart_mu: float = ranged(1.0, min=0)
    """mu: weight of the Bregman proximal (EMA teacher) term."""
    smart_eps: float = ranged(1e-5, min=0)
    """Radius of the perturbation ball."""
    smart_step: float = ranged(1e-3, min=0)
    """Step size of the projected gradient ascent."""
    smart_noise: float = ranged(1e-5, min=0)
    """Variance of the initial Gaussian noise."""
    smart_steps: int = ranged(1, min=1)
    """Ascent steps K."""
    smart_norm: str = "linf"
    """linf | l2"""
    smart_beta: float = ranged(0.99, min=0, max=1)
    """Momentum of the EMA teacher."""

    def __post_init__(self):
        check_ranges(self)


def sym_kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> torch.Tensor:
    """KL(P||Q) + KL(Q||P), mean over the batch (classification)."""
    lp, lq = F.log_softmax(p_logits.float(), -1), F.log_softmax(q_logits.float(), -1)
    return (F.kl_div(lq, lp, log_target=True, reduction="batchmean")
            + F.kl_div(lp, lq, log_target=True, reduction="batchmean"))


def _normalise(g: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "l2":
        return g / (g.flatten(1).norm(dim=1).view(-1, *[1] * (g.dim() - 1)) + 1e-12)
    return g / (g.abs().flatten(1).amax(dim=1).view(-1, *[1] * (g.dim() - 1)) + 1e-12)


def _project(d: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "l2":
        n = d.flatten(1).norm(dim=1).clamp(min=1e-12).view(-1, *[1] * (d.dim() - 1))
        return d * torch.clamp(eps / n, max=1.0)
    return d.clamp(-eps, eps)


Scores = Callable[[dict], torch.Tensor]


class Smart:
    """The regulariser of one training run. It sees tensors and callables, never the task:
    `forward()` is the method's forward of the current batch (backbone inputs), `score(inputs)`
    the scores of backbone inputs, `criterion(scores, labels)` the task loss, `embed(ids)` the
    backbone's input embeddings."""

    def __init__(self, config: SmartConfig, params: list[torch.nn.Parameter]):
        self.cfg = config
        self.params = list(params)
        self.teacher = [p.detach().clone() for p in self.params] if config.smart_mu else []

    @staticmethod
    def _embeds(inputs: dict, embed: Callable[[torch.Tensor], torch.Tensor]) -> dict:
        if "inputs_embeds" in inputs:
            return inputs
        rest = {k: v for k, v in inputs.items() if k != "input_ids"}
        return {**rest, "inputs_embeds": embed(inputs["input_ids"])}

    @staticmethod
    def _scores(score: Scores, inputs: dict, embeds: torch.Tensor) -> torch.Tensor:
        return score({**inputs, "inputs_embeds": embeds})

    def adversarial(self, score: Scores, inputs: dict, clean: torch.Tensor) -> torch.Tensor:
        """R_s: the perturbation is searched with the clean prediction fixed; its gradient
        flows to the parameters through both the perturbed and (final) clean predictions."""
        cfg, x = self.cfg, inputs["inputs_embeds"]
        delta = torch.randn_like(x, dtype=torch.float32) * cfg.smart_noise ** 0.5
        for _ in range(cfg.smart_steps):
            delta.requires_grad_(True)
            div = sym_kl(self._scores(score, inputs, x.detach() + delta.to(x.dtype)), clean.detach())
            (grad,) = torch.autograd.grad(div, delta)
            delta = _project(delta.detach() + cfg.smart_step * _normalise(grad, cfg.smart_norm), cfg.smart_eps,
                             cfg.smart_norm)
        return sym_kl(self._scores(score, inputs, x + delta.to(x.dtype)), clean)

    @contextmanager
    def _teacher_weights(self):
        saved = [p.data for p in self.params]
        for p, t in zip(self.params, self.teacher, strict=True):
            p.data = t
        try:
            yield
        finally:
            for p, s in zip(self.params, saved, strict=True):
                p.data = s

    def loss(self, forward: Callable[[], dict], score: Scores, criterion, labels: torch.Tensor,
             embed: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        inputs = self._embeds(forward(), embed)
        clean = score(inputs)
        total = criterion(clean, labels)
        if self.cfg.smart_lambda:
            total = total + self.cfg.smart_lambda * self.adversarial(score, inputs, clean)
        if self.cfg.smart_mu:
            with torch.no_grad(), self._teacher_weights():
                teacher = score(self._embeds(forward(), embed))
            total = total + self.cfg.smart_mu * sym_kl(clean, teacher)
        return total

    @torch.no_grad()
    def after_step(self) -> None:
        """theta~ <- beta * theta~ + (1 - beta) * theta."""
        if not self.teacher:
            return
        for t, p in zip(self.teacher, self.params, strict=True):
            t.mul_(self.cfg.smart_beta).add_(p.detach(), alpha=1 - self.cfg.smart_beta)
