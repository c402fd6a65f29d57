"""Prefix tuning (Li and Liang 2021): trainable key/value vectors prepended at every layer.

Shapes come from the backbone's config: layers x (key, value) x KV heads (grouped-query
attention aware) x L x head dim. Reparametrisation: a smaller matrix P' (L x k) through an
MLP (Linear k->h, tanh, Linear h->layers*2*kv_heads*head_dim), h = 512. At export the MLP
runs once and is dropped: the artifact holds only the prefix, and loading it gives a
directly-trainable prefix (continued training works).

Causal LMs: the prefix reaches the model as a transformers DynamicCache (engine/kv_prefix.py),
so every real token attends to it at every layer; positions of real tokens start after it.
Masked LMs and encoder-decoders: a prefix per attention module, added inside attention
(engine/attention_prefix.py): BERT's self-attention; for T5/BART the encoder self-attention,
the decoder self-attention and the cross-attention, one slot each per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.config_ranges import ranged
from tasktune.engine import attention_prefix as ap
from tasktune.engine.kv_prefix import kv_of, with_kv
from tasktune.methods.base import MethodConfig, TaskModule


@dataclass
class PrefixTuningConfig(MethodConfig):
    prefix_length: int = ranged(10, min=1)
    """Virtual tokens L at every layer."""
    reparam: bool = True
    """Train P' through an MLP (folded away at export); --no-reparam trains the prefix directly."""
    reparam_hidden: int = ranged(512, min=1)
    """Hidden width h of the reparametrisation MLP."""
    prefix_init: str = "random"
    """random | text (activations of --prefix-init-text, e.g. "table-to-text:")"""
    prefix_init_text: str = ""
    prefix_dropout: float = ranged(0.0, min=0, max=0.99)
    """Dropout on the prefix during training."""


def kv_geometry(config) -> tuple[int, int, int]:
    """(layers, KV heads, head dim) of a decoder config."""
    layers = config.num_hidden_layers
    heads = config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return layers, kv_heads, head_dim


class PrefixTuning(TaskModule):
    name = "prefix-tuning"
    config_class = PrefixTuningConfig
    default_lr = 1e-2
    provides_kv = True
    folds_at_export = True

    def __init__(self, config: PrefixTuningConfig, geometry: tuple[int, int, int], width: int, folded: bool = False,
                 slots: list[int] | None = None):
        """geometry: (slots, KV heads, head dim); a slot is a layer (causal) or an attention module
        (`slots` holds their ids, for the attention-level path)."""
        super().__init__(config)
        self.geometry = geometry
        self.slots = slots
        layers, kv_heads, head_dim = geometry
        L = config.prefix_length
        self.direct = folded or not config.reparam
        if self.direct:
            self.prefix = nn.Parameter(torch.zeros(layers, 2, kv_heads, L, head_dim))
        else:
            self.embedding = nn.Parameter(torch.zeros(L, width))
            self.mlp = nn.Sequential(nn.Linear(width, config.reparam_hidden), nn.Tanh(),
                                     nn.Linear(config.reparam_hidden, layers * 2 * kv_heads * head_dim))
        self.dropout = nn.Dropout(config.prefix_dropout)

    @classmethod
    def empty(cls, config: PrefixTuningConfig, backbone, n_virtual: int, folded: bool = False) -> PrefixTuning:
        if backbone.family == "causal":
            return cls(config, kv_geometry(backbone.config), backbone.hidden_size, folded)
        slots, heads, head_dim = attention_geometry(backbone)
        return cls(config, (len(slots), heads, head_dim), backbone.hidden_size, folded, slots)

    def initialize(self, backbone, label_ids, gen: torch.Generator) -> None:
        cfg, L = self.config, self.config.prefix_length
        with torch.no_grad():
            if cfg.prefix_init == "text":
                ids = backbone.tokenizer(cfg.prefix_init_text, add_special_tokens=False).input_ids
                if not ids:
                    raise TasktuneError("--prefix-init text needs --prefix-init-text")
                ids = ids * ((L + len(ids) - 1) // len(ids))  # repeat a text shorter than L
                if self.direct:  # the real words' activations at every layer (last L positions)
                    words = torch.tensor([ids], device=backbone.device)
                    kv = kv_of(backbone, words) if self.slots is None else words_kv(backbone, words, self.slots)
                    self.prefix.copy_(torch.stack([torch.stack([k[0, :, -L:], v[0, :, -L:]]) for k, v in kv]).float())
                else:  # reparametrised: P' starts from the words' embeddings
                    self.embedding.copy_(backbone.embed(torch.tensor(ids[-L:], device=backbone.device)).float())
            elif cfg.prefix_init == "random":
                if self.direct:
                    self.prefix.normal_(0.0, 0.02, generator=gen)
                else:
                    self.embedding.normal_(0.0, 0.02, generator=gen)
            else:
                raise TasktuneError(f"unknown prefix init '{cfg.prefix_init}': random or text")

    def prefix_tensor(self) -> torch.Tensor:
        """[layers, 2, kv_heads, L, head_dim]"""
        if self.direct:
            return self.prefix
        layers, kv_heads, head_dim = self.geometry
        out = self.mlp(self.embedding)  # [L, layers*2*kv_heads*head_dim]
        return out.view(-1, layers, 2, kv_heads, head_dim).permute(1, 2, 3, 0, 4)

    def kv_prefix(self) -> torch.Tensor | None:
        return self.prefix_tensor() if self.slots is None else None

    def forward(self, backbone, batch) -> dict:
        prefix = self.dropout(self.prefix_tensor()).to(backbone.dtype)
        kv = [(prefix[i, 0][None], prefix[i, 1][None]) for i in range(prefix.shape[0])]
        inputs = self.place_soft(backbone, batch, None)
        if self.slots is None:
            return with_kv(inputs, kv, backbone.model.config)
        return {**inputs, ap.KEYWORD: ap.AttentionPrefix(kv=dict(zip(self.slots, kv, strict=True)))}

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """Only the prefix: the reparametrisation MLP is run once and dropped."""
        with torch.no_grad():
            return {"prefix": self.prefix_tensor().detach().float().cpu().contiguous()}

    def load_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """An exported (folded) prefix. A reparametrised module takes it by folding itself: the MLP is
        dropped and the prefix becomes the parameter (the trainer leaves the best step's weights in
        the task this way)."""
        if not self.direct:
            device = self.embedding.device
            layers, kv_heads, head_dim = self.geometry
            del self.embedding, self.mlp
            self.prefix = nn.Parameter(torch.zeros(layers, 2, kv_heads, self.config.prefix_length, head_dim,
                                                   device=device))
            self.direct = True
        expected = tuple(self.prefix.shape)
        if tuple(tensors["prefix"].shape) != expected:
            raise TasktuneError(f"prefix of shape {tuple(tensors['prefix'].shape)} does not fit this model {expected}")
        self.prefix.data.copy_(tensors["prefix"])


def _probe_inputs(backbone, ids: torch.Tensor) -> dict:
    extra = {}
    if backbone.family == "seq2seq":
        extra["decoder_input_ids"] = ids
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), **extra}


@torch.no_grad()
def attention_geometry(backbone) -> tuple[list[int], int, int]:
    """Install the attention-level prefix on a masked / encoder-decoder model and find, by one tiny
    forward, the attention modules it calls and their (KV heads, head dim)."""
    model = backbone.model
    ap.install(model)
    probe = ap.AttentionPrefix(shapes={})
    ids = torch.tensor([[backbone.tokenizer.pad_token_id or 0] * 2], device=backbone.device)
    model(**_probe_inputs(backbone, ids), **{ap.KEYWORD: probe})
    slots = [id(m) for _, m in ap.attention_modules(model) if id(m) in probe.shapes]
    shapes = {probe.shapes[s] for s in slots}
    if not slots or len(shapes) != 1:
        raise TasktuneError(f"{type(model).__name__}: attention modules with differing shapes {sorted(shapes)}; "
                            "prefix tuning needs one (heads, head dim)")
    heads, head_dim = shapes.pop()
    return slots, heads, head_dim


@torch.no_grad()
def words_kv(backbone, ids: torch.Tensor, slots: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Keys/values of real words at every attention slot: the encoder reads them, and the decoder
    (encoder-decoder) reads them too, so its self- and cross-attention see their activations."""
    probe = ap.AttentionPrefix(captured={})
    backbone.model(**_probe_inputs(backbone, ids), **{ap.KEYWORD: probe})
    return [probe.captured[s] for s in slots]
