"""What every method is: a config dataclass plus an nn.Module holding only task parameters.

The module's forward turns a Batch into backbone inputs. The default places the method's
soft vectors (if any) at the template's soft slots; prefix methods add a KV cache instead.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tasktune.engine.batch import Batch


@dataclass
class MethodConfig:
    """Fields shared by every method. Subclasses add their own (each becomes a CLI option)."""


@dataclass
class BackbonePrecision:
    """For methods that train backbone weights (fp32 master weights)."""

    precision: str = "auto"
    """Compute precision of the tuned backbone: auto (bf16-mixed where the hardware has bf16), fp32,
    bf16-mixed (bf16 matmuls over fp32 weights; about 2x faster fine-tuning on an AVX512-BF16 CPU)"""

    def __post_init__(self):
        from tasktune.backbone.dtype import PRECISIONS

        if self.precision not in PRECISIONS:
            from tasktune import TasktuneError

            raise TasktuneError(f"unknown --precision '{self.precision}': use {', '.join(PRECISIONS)}")


class TaskModule(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type] = MethodConfig
    default_lr: ClassVar[float] = 1e-3

    def __init__(self, config):
        super().__init__()
        self.config = config

    # ---- construction: empty() allocates, initialize() fills; build/from_export use both ----
    @classmethod
    def empty(cls, config, backbone, n_virtual: int) -> TaskModule:
        return cls(config)

    def initialize(self, backbone, label_ids: list[list[int]] | None, gen: torch.Generator) -> None:
        """Set initial values of the task parameters (nothing to do for parameter-free methods)."""

    @classmethod
    def build(cls, config, backbone, n_virtual: int, label_ids=None, seed: int = 0) -> TaskModule:
        module = cls.empty(config, backbone, n_virtual)
        module.initialize(backbone, label_ids, torch.Generator().manual_seed(seed))
        return module

    @classmethod
    def from_export(cls, config, backbone, n_virtual: int, tensors: dict[str, torch.Tensor]) -> TaskModule:
        module = cls.empty(config, backbone, n_virtual)
        module.load_tensors(tensors)
        return module

    @classmethod
    def prefix_soft_length(cls, config) -> int:
        """Virtual tokens to prepend when the template places none of its own."""
        return 0

    uses_soft: ClassVar[bool] = False  # does the method fill the template's [P:n] slots?
    tunes_backbone: ClassVar[bool] = False  # fine-tuning: needs fp32 weights, changes the backbone
    provides_kv: ClassVar[bool] = False  # hands the backbone a KV prefix of its own (prefix tuning)

    @classmethod
    def fit_config(cls, config, train, labels: list[str], seed: int):
        """Settle data-dependent settings before the module is built (ICL picks demonstrations)."""
        return config

    @classmethod
    def task_template(cls, config, template, verbalizer):
        """The template the task really runs (ICL prepends instruction and demonstrations)."""
        return template

    def soft_vectors(self) -> torch.Tensor | None:
        """[n_virtual, hidden] vectors for the template's soft slots, or None."""
        return None

    def forward(self, backbone, batch: Batch) -> dict:
        return self.place_soft(backbone, batch, self.soft_vectors())

    @staticmethod
    def place_soft(backbone, batch: Batch, vectors: torch.Tensor | None) -> dict:
        """Backbone inputs with `vectors[k]` at every position whose soft index is k."""
        if vectors is None:
            if bool((batch.soft >= 0).any()):
                raise ValueError("template has soft slots but the method supplies no soft vectors")
            return {"input_ids": batch.ids, "attention_mask": batch.mask}
        embeds = backbone.embed(batch.ids)
        placed = vectors.to(embeds.dtype)[batch.soft.clamp(min=0)]
        embeds = torch.where((batch.soft >= 0)[..., None], placed, embeds)
        return {"inputs_embeds": embeds, "attention_mask": batch.mask}

    # ---- artifact -----------------------------------------------------------------
    def export_tensors(self) -> dict[str, torch.Tensor]:
        """What the artifact stores (task parameters only, in fp32)."""
        return {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(tensors)

    def compute_context(self, device):
        """Context the backbone runs under for this method (autocast for mixed precision)."""
        if self.needs_fp32(self.config):
            from tasktune.backbone.dtype import compute_context

            return compute_context(getattr(self.config, "precision", "fp32"), device)
        return nullcontext()

    @classmethod
    def needs_fp32(cls, config) -> bool:
        """Does this configuration train backbone weights (which want fp32)?"""
        return cls.tunes_backbone

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups (a method may give parts their own learning rate)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
