"""Load a frozen backbone by alias, hub id or local folder."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from tasktune import TasktuneError
from tasktune.backbone.aliases import ALIASES, resolve_alias
from tasktune.backbone.dtype import default_device, resolve_dtype
from tasktune.backbone.family import FAMILIES, auto_class, detect_family
from tasktune.backbone.fused_projections import fuse_projections
from tasktune.backbone.lean_norm import lean_rms_norms
from tasktune.backbone.lean_swiglu import lean_swiglus
from tasktune.backbone.packing import pack_model


@dataclass
class Backbone:
    """A frozen language model with its tokenizer and what we know about it."""

    model: nn.Module
    tokenizer: object
    name: str
    family: str
    fingerprint: str = field(default="")

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise TasktuneError(f"unknown model family '{self.family}'")
        freeze(self.model)
        tok = self.tokenizer
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
        if not self.fingerprint:
            self.fingerprint = weight_fingerprint(self.model)
        lean_rms_norms(self.model)
        lean_swiglus(self.model)
        if os.environ.get("TASKTUNE_FUSE", "1") != "0":  # 0: the model's own q/k/v matmuls (A/B trials)
            fuse_projections(self.model)
        if os.environ.get("TASKTUNE_PACK", "1") != "0":  # 0: plain weights, oneDNN reorders per call (A/B)
            pack_model(self.model)
        if getattr(self.model.config, "_attn_implementation", None) == "sdpa":
            # every sdpa call goes through tasktune's wrapper (engine/attention_kernel.py says why)
            from tasktune.engine import attention_prefix

            attention_prefix.install(self.model)
        if os.environ.get("TASKTUNE_LAST_LAYER", "1") != "0":  # 0: the last layer at every position (A/B)
            from tasktune.engine.last_layer import read_positions_last_layer

            read_positions_last_layer(self.model)

    @property
    def device(self) -> torch.device:
        return self.embeddings.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embeddings.weight.dtype

    @property
    def embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    @property
    def hidden_size(self) -> int:
        return self.embeddings.weight.shape[1]

    @property
    def config(self):
        return self.model.config

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """Input embeddings as the model computes them (T5/BART scale inside, so this is exact)."""
        return self.embeddings(ids)


def freeze(model: nn.Module) -> None:
    model.requires_grad_(False)
    model.eval()


def weight_fingerprint(model: nn.Module) -> str:
    """A short hash of the architecture and the input embedding matrix, independent of dtype."""
    emb = model.get_input_embeddings().weight.detach()
    h = hashlib.sha256()
    cfg = model.config
    h.update(f"{cfg.model_type}:{tuple(emb.shape)}:{getattr(cfg, 'num_hidden_layers', '')}".encode())
    for start in range(0, emb.shape[0], 4096):  # the same bytes in row blocks: no 57 MB copy kept by the allocator
        block = emb[start:start + 4096].to(device="cpu", dtype=torch.bfloat16).contiguous()
        h.update(block.view(torch.int16).numpy())
    return h.hexdigest()[:16]


def _resolve_source(name: str, dtype: torch.dtype) -> str:
    if name in ALIASES:
        from tasktune.backbone.gguf_cache import cached_dtype_dir, cached_gguf_dir

        _, gguf = resolve_alias(name)
        return str(cached_dtype_dir(cached_gguf_dir(name, gguf), dtype))
    return name


def load_backbone(
    name: str,
    dtype: str = "auto",
    device: str | None = None,
    family: str | None = None,
    trust_remote_code: bool = False,
) -> Backbone:
    """Load `name` (alias, local folder or hub id), frozen, weights in the chosen dtype.

    Weights load from safetensors only (never pickle); remote code runs only if asked for.
    """
    from transformers import AutoConfig, AutoTokenizer

    if name not in ALIASES and not Path(name).exists() and name.count("/") > 1:
        raise TasktuneError(f"model '{name}' is neither an alias ({', '.join(ALIASES)}), a folder nor a hub id")
    dev = torch.device(device) if device else default_device()
    torch_dtype = resolve_dtype(dtype, dev)
    source = _resolve_source(name, torch_dtype)
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as e:
        raise TasktuneError(f"cannot load model '{name}': {str(e).splitlines()[0]}") from None
    fam = family or detect_family(config)
    try:
        model = auto_class(fam).from_pretrained(
            source, config=config, dtype=torch_dtype, use_safetensors=True, trust_remote_code=trust_remote_code
        )
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise TasktuneError(f"cannot load model '{name}': {str(e).splitlines()[0]}") from None
    model.to(dev)
    return Backbone(model=model, tokenizer=tokenizer, name=name, family=fam)
