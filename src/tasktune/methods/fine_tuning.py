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
from tasktune.methods.base import BackbonePrecision, MethodConfig, TaskModule
from tasktune.methods.tuned_backbone import TunedBackbone


@dataclass
class FineTuningConfig(BackbonePrecision, MethodConfig):
    train_layers: str = "all"
    """all | last:K | bias | a substring of parameter names"""
    head: str = "lm"
    """lm: verbalizer words through the LM head (PET-style cloze) | linear: a new classifier on the
    answer-position hidden state (causal), [CLS] (masked) or the mean encoder state (seq2seq)"""


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

    def __init__(self, config: FineTuningConfig, model: nn.Module, n_labels: int = 0, family: str = "causal"):
        super().__init__(config)
        self.family = family
        if config.head not in ("lm", "linear"):
            raise TasktuneError(f"--head '{config.head}': lm or linear")
        if config.head == "linear":
            if n_labels < 2:
                raise TasktuneError("--head linear needs a classification task with labels")
            self.classifier = nn.Linear(model.get_input_embeddings().weight.shape[1], n_labels)
        names = selected(model, config.train_layers)
        if not names:
            raise TasktuneError("fine-tuning selected no parameters (model has no biases?)")
        self.tuned = TunedBackbone(model, names)

    @classmethod
    def needs_fp32(cls, config: FineTuningConfig) -> bool:
        return True

    @classmethod
    def precision(cls, config: FineTuningConfig) -> str:
        return config.precision

    @classmethod
    def empty(cls, config: FineTuningConfig, backbone, n_virtual: int, n_labels: int = 0) -> FineTuning:
        if backbone.dtype != torch.float32:
            raise TasktuneError("fine-tuning needs fp32 weights: load the model with --dtype float32")
        return cls(config, backbone.model, n_labels, backbone.family)

    @classmethod
    def build(cls, config, backbone, n_virtual: int, label_ids=None, seed: int = 0) -> FineTuning:
        torch.manual_seed(seed)  # the linear head's initialisation
        return cls.empty(config, backbone, n_virtual, len(label_ids or []))

    @classmethod
    def from_export(cls, config, backbone, n_virtual: int, tensors: dict[str, torch.Tensor]) -> FineTuning:
        n = tensors["classifier.weight"].shape[0] if "classifier.weight" in tensors else 0
        module = cls.empty(config, backbone, n_virtual, n)
        module.load_tensors(tensors)
        return module

    def head_scores(self, backbone, inputs: dict, batch, lm_scores) -> torch.Tensor:
        """The linear head's scores, or the objective's through the LM head (PET-style cloze)."""
        if self.config.head != "linear":
            return lm_scores(backbone, inputs, batch)
        model = backbone.model
        if self.family == "seq2seq":
            enc = model.get_encoder()(inputs_embeds=inputs.get("inputs_embeds"), input_ids=inputs.get("input_ids"),
                                      attention_mask=inputs["attention_mask"]).last_hidden_state
            m = inputs["attention_mask"][..., None].to(enc.dtype)
            pooled = (enc * m).sum(1) / m.sum(1)
        else:
            hidden = model.base_model(**inputs).last_hidden_state
            pos = batch.score_pos[:, :1] if self.family == "causal" else torch.zeros_like(batch.score_pos[:, :1])
            pooled = torch.take_along_dim(hidden, pos[..., None], dim=1)[:, 0]  # answer position / [CLS]
        return self.classifier(pooled.float())

    def forward(self, backbone, batch) -> dict:
        return self.place_soft(backbone, batch, None)
