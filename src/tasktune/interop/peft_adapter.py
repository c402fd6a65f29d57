"""PEFT adapters in and out: a tasktune task as `adapter_config.json` + `adapter_model.safetensors`
that `peft.PeftModel.from_pretrained(base, DIR)` loads, and the reverse.

PEFT keeps every prompt-learning adapter as one tensor, `prompt_embeddings`:

- PROMPT_TUNING: [n virtual, hidden], placed before the input's first token;
- P_TUNING: the prompt encoder's output, [n virtual, hidden], used as it is in inference mode
  (so an imported P-tuning task is tasktune's p-tuning with the identity encoder);
- PREFIX_TUNING (no projection): [L, layers * 2 * KV heads * head dim], viewed as
  (L, layers * 2, KV heads, head dim), keys at even and values at odd rows; tasktune's prefix is
  [layers, 2, KV heads, L, head dim], so the two are one permute apart.

What PEFT cannot express is refused with the reason: soft tokens anywhere but before the input
(P-tuning's anchors inside a template), a soft prompt after the tokenizer's own leading special
token (PEFT puts virtual tokens before it), a tuned backbone, masked and encoder-decoder models
(PEFT's layouts for them differ from tasktune's attention-level prefix), and methods with no PEFT
adapter. The base model travels both ways: `base_model_name_or_path` in the config, and tasktune's
weight fingerprint (plus the task's template and verbalizer) in the safetensors metadata, which
PEFT ignores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tasktune import TasktuneError

CONFIG, WEIGHTS, KEY = "adapter_config.json", "adapter_model.safetensors", "prompt_embeddings"
FINGERPRINT, BASE_NAME, SPEC = "tasktune_base_fingerprint", "tasktune_base_model", "tasktune_spec"
PEFT_TYPES = {"prompt-tuning": "PROMPT_TUNING", "p-tuning": "P_TUNING", "prefix-tuning": "PREFIX_TUNING"}
IMPORTED_METHOD = {v: k for k, v in PEFT_TYPES.items()}


@dataclass
class PeftAdapter:
    """An adapter as PEFT stores it: its config, its one tensor, and the metadata beside it."""

    config: dict
    prompt_embeddings: torch.Tensor
    metadata: dict[str, str]


def hub_name(name: str) -> str:
    """The name PEFT should record as the base: an alias's hub id, else the name as given."""
    from tasktune.backbone.aliases import ALIASES

    alias = ALIASES.get(name)
    return alias.hub_id if alias is not None and alias.hub_id else name


def base_names(backbone) -> set[str]:
    """Names a PEFT config may use for this backbone."""
    return {backbone.name, hub_name(backbone.name), Path(backbone.name).name}


# ---- export ---------------------------------------------------------------------------
def _check_exportable(task) -> None:
    from tasktune.engine.encoding import special_wrapping
    from tasktune.templates import Soft

    method = task.method
    if method not in PEFT_TYPES:
        raise TasktuneError(f"PEFT has no adapter for {method}: --format peft exports "
                            f"{', '.join(PEFT_TYPES)}")
    if task.backbone.family != "causal":
        raise TasktuneError(f"--format peft exports tasks on causal LMs; this task's backbone is "
                            f"{task.backbone.family} (PEFT's encoder-decoder and masked-LM prompt layouts differ from "
                            "tasktune's)")
    if task.module.tuned is not None:
        raise TasktuneError(f"this {method} task also tunes backbone weights, which a PEFT prompt adapter "
                            "cannot hold")
    if not task.module.uses_soft:
        return
    soft = [i for i, p in enumerate(task.template.parts) if isinstance(p, Soft)]
    if soft != [0]:
        raise TasktuneError(f"template {task.template.source!r} places soft tokens inside the text (anchors between "
                            "them); PEFT puts virtual tokens only before the input")
    before, _ = special_wrapping(task.backbone.tokenizer)
    if before:
        raise TasktuneError("the tokenizer starts every input with a special token that tasktune puts before the "
                            "soft prompt and PEFT after it; the adapter would predict differently")


def _prefix_to_peft(prefix: torch.Tensor) -> torch.Tensor:
    """[layers, 2, kv, L, hd] -> [L, layers * 2 * kv * hd]"""
    return prefix.permute(3, 0, 1, 2, 4).reshape(prefix.shape[3], -1).contiguous()


def _prefix_from_peft(emb: torch.Tensor, layers: int, kv_heads: int, head_dim: int) -> torch.Tensor:
    """[L, layers * 2 * kv * hd] -> [layers, 2, kv, L, hd]"""
    return emb.view(len(emb), layers, 2, kv_heads, head_dim).permute(1, 2, 3, 0, 4).contiguous()


def to_peft(task) -> PeftAdapter:
    """The task as a PEFT adapter (validated before anything is written)."""
    from tasktune.methods.prefix_tuning import kv_geometry

    _check_exportable(task)
    backbone, peft_type = task.backbone, PEFT_TYPES[task.method]
    tensors = task.module.export_tensors()
    cfg = backbone.config
    config = {"peft_type": peft_type, "task_type": "CAUSAL_LM", "base_model_name_or_path": hub_name(backbone.name),
              "inference_mode": True, "num_transformer_submodules": 1, "num_layers": cfg.num_hidden_layers,
              "revision": None, "auto_mapping": None, "modules_to_save": None}
    if peft_type == "PREFIX_TUNING":
        layers, kv_heads, head_dim = kv_geometry(cfg)
        emb = _prefix_to_peft(tensors["prefix"])
        config.update(num_virtual_tokens=len(emb), token_dim=kv_heads * head_dim, num_attention_heads=kv_heads,
                      encoder_hidden_size=kv_heads * head_dim, prefix_projection=False)
    else:
        emb = tensors["prompt"]
        config.update(num_virtual_tokens=len(emb), token_dim=backbone.hidden_size,
                      num_attention_heads=cfg.num_attention_heads)
        if peft_type == "PROMPT_TUNING":
            config.update(prompt_tuning_init="RANDOM", prompt_tuning_init_text=None, tokenizer_name_or_path=None,
                          tokenizer_kwargs=None)
        else:
            config.update(encoder_reparameterization_type="MLP", encoder_hidden_size=backbone.hidden_size,
                          encoder_num_layers=2, encoder_dropout=0.0)
    spec = task.spec().to_dict()
    metadata = {"format": "pt", FINGERPRINT: backbone.fingerprint, BASE_NAME: backbone.name, SPEC: json.dumps(spec)}
    return PeftAdapter(config, emb.float().contiguous(), metadata)


def write_adapter(adapter: PeftAdapter, out: Path) -> None:
    """Write the adapter folder; it becomes visible as `out` in one step."""
    import shutil

    from safetensors.torch import save_file

    from tasktune.artifact.files import atomic_write_bytes
    from tasktune.artifact.folders import commit_folder

    staged = out.parent / f".{out.name}.partial"
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    save_file({KEY: adapter.prompt_embeddings}, str(staged / WEIGHTS), metadata=adapter.metadata)
    atomic_write_bytes(staged / CONFIG, (json.dumps(adapter.config, indent=2) + "\n").encode())
    commit_folder(staged, out)


# ---- import ---------------------------------------------------------------------------
def read_adapter(folder: Path) -> PeftAdapter:
    """A PEFT prompt-learning adapter folder, every problem one line naming the file and field."""
    from safetensors import safe_open

    cfg_path, weights = folder / CONFIG, folder / WEIGHTS
    if not cfg_path.is_file():
        raise TasktuneError(f"{folder}: not a PEFT adapter (no {CONFIG})")
    try:
        config = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TasktuneError(f"{cfg_path}: malformed JSON ({str(e).splitlines()[0][:120]})") from None
    if not isinstance(config, dict):
        raise TasktuneError(f"{cfg_path}: expected a JSON object")
    peft_type = config.get("peft_type")
    if peft_type not in IMPORTED_METHOD:
        raise TasktuneError(f"{cfg_path}: field 'peft_type' is {peft_type!r}; tasktune imports "
                            f"{', '.join(IMPORTED_METHOD)}")
    if config.get("task_type") not in ("CAUSAL_LM", None):
        raise TasktuneError(f"{cfg_path}: field 'task_type' is {config.get('task_type')!r}; tasktune imports "
                            "CAUSAL_LM adapters")
    if config.get("num_transformer_submodules", 1) != 1:
        raise TasktuneError(f"{cfg_path}: field 'num_transformer_submodules' is "
                            f"{config['num_transformer_submodules']} (an encoder-decoder adapter); tasktune imports "
                            "causal-LM adapters")
    if not weights.is_file():
        other = " (adapter_model.bin is a pickle, which tasktune never loads: save with safetensors)" \
            if (folder / "adapter_model.bin").exists() else ""
        raise TasktuneError(f"{weights}: missing{other}")
    try:
        with safe_open(str(weights), "pt") as f:
            metadata = f.metadata() or {}
            if KEY not in f.keys():
                raise TasktuneError(f"{weights}: no tensor '{KEY}' (holds {sorted(f.keys())[:5]})")
            emb = f.get_tensor(KEY).float()
    except TasktuneError:
        raise
    except Exception as e:  # noqa: BLE001 - safetensors has its own error types for bad files
        raise TasktuneError(f"{weights}: unreadable safetensors file ({str(e).splitlines()[0][:120]})") from None
    if emb.dim() != 2:
        raise TasktuneError(f"{weights}: '{KEY}' has shape {tuple(emb.shape)}, expected 2 dimensions")
    return PeftAdapter(config, emb, metadata)


def check_base(adapter: PeftAdapter, backbone, where: str, force: bool) -> None:
    """Refuse an adapter made for another base model: by fingerprint where tasktune wrote it, by name
    otherwise (`force` skips both), and always by shape."""
    from tasktune.methods.prefix_tuning import kv_geometry

    fp, named = adapter.metadata.get(FINGERPRINT), adapter.config.get("base_model_name_or_path")
    if not force and fp and fp != backbone.fingerprint:
        raise TasktuneError(f"{where}: made for '{adapter.metadata.get(BASE_NAME, named)}' (fingerprint {fp}), not the "
                            f"loaded model '{backbone.name}' ({backbone.fingerprint}); pass --force to import anyway")
    if not force and not fp and named and named not in base_names(backbone):
        raise TasktuneError(f"{where}: field 'base_model_name_or_path' is '{named}', not the loaded model "
                            f"'{backbone.name}'; pass --force if they are the same model")
    emb, cfg = adapter.prompt_embeddings, backbone.config
    if adapter.config["peft_type"] == "PREFIX_TUNING":
        layers, kv_heads, head_dim = kv_geometry(cfg)
        width = layers * 2 * kv_heads * head_dim
        if emb.shape[1] != width:
            raise TasktuneError(f"{where}: a prefix {emb.shape[1]} wide does not fit '{backbone.name}' ({layers} layers"
                                f" x 2 x {kv_heads} KV heads x {head_dim} = {width})")
    elif emb.shape[1] != backbone.hidden_size:
        raise TasktuneError(f"{where}: prompt vectors {emb.shape[1]} wide do not fit '{backbone.name}' "
                            f"(hidden size {backbone.hidden_size})")


def task_tensors(adapter: PeftAdapter, backbone) -> tuple[str, dict, dict[str, torch.Tensor]]:
    """(method, method config values, tensors) of the tasktune task this adapter is."""
    from tasktune.methods.prefix_tuning import kv_geometry

    emb, peft_type = adapter.prompt_embeddings, adapter.config["peft_type"]
    n = len(emb)
    if peft_type == "PREFIX_TUNING":
        layers, kv_heads, head_dim = kv_geometry(backbone.config)
        return ("prefix-tuning", {"prefix_length": n, "reparam": False},
                {"prefix": _prefix_from_peft(emb, layers, kv_heads, head_dim)})
    if peft_type == "P_TUNING":
        return "p-tuning", {"prompt_length": n, "encoder": "identity"}, {"embedding": emb, "prompt": emb}
    return "prompt-tuning", {"prompt_length": n, "init": "random-uniform"}, {"prompt": emb}


def exported_spec(adapter: PeftAdapter) -> dict | None:
    """The task spec tasktune wrote beside an adapter it exported (None for PEFT's own adapters)."""
    raw = adapter.metadata.get(SPEC)
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return spec if isinstance(spec, dict) else None
