"""What every method is: a config dataclass plus an nn.Module holding only task parameters.

The module's forward turns a Batch into backbone inputs. The default places the method's
soft vectors (if any) at the template's soft slots; prefix methods add a KV cache instead.

Capabilities are declared here, with defaults, and overridden by the methods that have them;
code outside a method reads these, never an attribute probed by name:

- `uses_soft`: fills the template's [P:n] slots (prompt tuning, P-tuning);
- `provides_kv`: hands the backbone a KV prefix of its own (prefix tuning);
- `needs_fp32(config)`: trains backbone weights (held in `self.tuned`, a TunedBackbone);
- `precision(config)`: the compute precision those weights run under;
- `calibrates(config)`: predictions are contextually calibrated (in-context learning);
- `mixable(config)`: can share a forward pass with other tasks' rows (runtime/mixed.py), through
  `soft_vectors()` or `kv_prefix()`;
- `head_scores(...)`: scores from a head of the method's own instead of the LM head.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from tasktune.config_ranges import check_ranges, ranged
from tasktune.engine.batch import Batch
from tasktune.methods.tuned_backbone import TunedBackbone


@dataclass
class MethodConfig:
    """Fields shared by every method. Subclasses add their own (each becomes a CLI option)."""

    def __post_init__(self):
        check_ranges(self)


@dataclass
class SoftPromptConfig(MethodConfig):
    """The soft prompt's size and initialisation, shared by the methods that fill soft slots."""

    prompt_length: int = ranged(20, min=1)
    """Virtual tokens prepended when the template places no [P:n] slot of its own."""
    init: str = "sampled-vocab"
    """random-uniform | sampled-vocab | class-label | text | pretrained (prompt tuning: PPT, --init-from RUN)"""
    init_text: str = ""
    """String whose token embeddings initialise the soft vectors (init=text)."""


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
        nxt = getattr(super(), "__post_init__", None)
        if nxt is not None:
            nxt()


LMScores = Callable[[object, dict, Batch], torch.Tensor]


class TaskModule(nn.Module):
    name: ClassVar[str]
    config_class: ClassVar[type] = MethodConfig
    default_lr: ClassVar[float] = 1e-3
    uses_soft: ClassVar[bool] = False
    provides_kv: ClassVar[bool] = False
    folds_at_export: ClassVar[bool] = False  # export runs a reparametrisation once; empty(folded=True) loads it

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tuned: TunedBackbone | None = None  # backbone weights this task trains (not a submodule)

    # ---- declared capabilities ------------------------------------------------------
    @classmethod
    def needs_fp32(cls, config) -> bool:
        """Does this configuration train backbone weights (which want fp32)?"""
        return False

    @classmethod
    def precision(cls, config) -> str:
        """Compute precision of a tuned backbone (see BackbonePrecision)."""
        return "fp32"

    @classmethod
    def calibrates(cls, config) -> bool:
        return False

    @classmethod
    def mixable(cls, config) -> bool:
        """Task parameters that enter the shared, untouched backbone as inputs (soft vectors, or a KV
        prefix on a causal LM: runtime/mixed.py pads prefixes per row), no per-task post-processing."""
        return not cls.needs_fp32(config) and not cls.calibrates(config)

    @classmethod
    def prefix_soft_length(cls, config) -> int:
        """Virtual tokens to prepend when the template places none of its own."""
        return 0

    @classmethod
    def fit_config(cls, config, train, labels: list[str], seed: int):
        """Settle data-dependent settings before the module is built (ICL picks demonstrations)."""
        return config

    @classmethod
    def task_template(cls, config, template, verbalizer):
        """The template the task really runs (ICL prepends instruction and demonstrations)."""
        return template

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
        folded = {"folded": True} if cls.folds_at_export else {}  # no reparametrisation built to be dropped
        module = cls.empty(config, backbone, n_virtual, **folded)
        module.load_tensors(tensors)
        return module

    # ---- the forward: batch -> backbone inputs -> scores ----------------------------
    def soft_vectors(self) -> torch.Tensor | None:
        """[n_virtual, hidden] vectors for the template's soft slots, or None."""
        return None

    def kv_prefix(self) -> torch.Tensor | None:
        """[layers, 2, KV heads, L, head dim] keys and values every row attends to first, for methods
        that provide one (`provides_kv`) on a causal LM; None otherwise."""
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

    def head_scores(self, backbone, inputs: dict, batch: Batch, lm_scores: LMScores) -> torch.Tensor:
        """Scores of backbone inputs: by default the objective reads the LM head (`lm_scores`)."""
        return lm_scores(backbone, inputs, batch)

    def compute_context(self, device):
        """Context the backbone runs under for this method (autocast for mixed precision)."""
        if self.needs_fp32(self.config):
            from tasktune.backbone.dtype import compute_context

            return compute_context(self.precision(self.config), device)
        return nullcontext()

    def train(self, mode: bool = True):
        super().train(mode)
        if self.tuned is not None:
            self.tuned.train(mode)
        return self

    # ---- parameters, artifact and checkpoint ----------------------------------------
    def trainable(self) -> list[nn.Parameter]:
        """Every tensor the optimizer updates: task parameters, then tuned backbone weights."""
        own = [p for p in self.parameters() if p.requires_grad]
        return own + (self.tuned.parameters() if self.tuned is not None else [])

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer parameter groups (a method may give parts their own learning rate)."""
        return [{"params": self.trainable(), "lr": lr}]

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.trainable())

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """What the artifact stores (task parameters and tuned backbone weights, in fp32)."""
        out = {k: v.detach().float().cpu().contiguous() for k, v in self.state_dict().items()}
        if self.tuned is not None:
            out.update(self.tuned.export())
        return out

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        backbone_part, own = TunedBackbone.split(tensors)
        if self.tuned is not None:
            self.tuned.load(backbone_part)
        self.load_state_dict(own)

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """Everything training changes, as it is (no casts): a resumable checkpoint's tensors."""
        out = {k: v.detach() for k, v in self.state_dict().items()}
        if self.tuned is not None:
            out.update(self.tuned.state())
        return out

    def load_checkpoint_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """The inverse of checkpoint_state (the same split as an artifact's tensors, no casts needed)."""
        TaskModule.load_tensors(self, tensors)
