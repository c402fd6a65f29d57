"""The artifact: a folder with tasktune.json (what the task is) and weights.safetensors
(task parameters only). Written atomically: files go to temporary names and are renamed,
the JSON last, so a reader never sees a half-written task and a crash keeps the old one."""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tasktune import TasktuneError, __version__

FORMAT = "tasktune/1"
META, WEIGHTS = "tasktune.json", "weights.safetensors"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, copying any that share storage with an earlier one (tied weights):
    safetensors refuses shared storage."""
    out, seen = {}, set()
    for k, v in tensors.items():
        v = v.contiguous()
        out[k] = v.clone() if v.data_ptr() in seen else v
        seen.add(v.data_ptr())
    return out


def atomic_save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(unshared(tensors), tmp, metadata=metadata)
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versions() -> dict:
    import transformers

    return {"tasktune": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def save_task(task, out_dir: str | Path, extra: dict | None = None) -> Path:
    out = Path(out_dir)
    tensors = task.module.export_tensors()
    meta = {"format": FORMAT, **task.spec(),
            "base_model": {"name": task.backbone.name, "fingerprint": task.backbone.fingerprint,
                           "family": task.backbone.family},
            "trainable_parameters": task.module.trainable_parameters(),
            "versions": versions(), **(extra or {})}
    atomic_save_tensors(out / WEIGHTS, tensors, {"format": FORMAT, "method": task.method})
    atomic_write_bytes(out / META, (json.dumps(meta, indent=2) + "\n").encode())
    return out


def load_artifact(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    folder = Path(path)
    meta_path = folder / META
    if not meta_path.is_file():
        raise TasktuneError(f"{folder}: not a tasktune artifact (no {META})")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise TasktuneError(f"{meta_path}: malformed JSON ({e.msg})") from None
    if meta.get("format") != FORMAT:
        raise TasktuneError(f"{meta_path}: unknown format {meta.get('format')!r} (expected {FORMAT})")
    weights = folder / WEIGHTS
    tensors = load_file(str(weights)) if weights.is_file() else {}
    return meta, tensors


def load_task(path: str | Path, backbone=None, force: bool = False, dtype: str = "auto", device=None):
    """Rebuild a Task from an artifact. Refuses another base model unless `force`."""
    from tasktune.backbone import load_backbone
    from tasktune.methods import METHODS
    from tasktune.task import Task
    from tasktune.templates import Template, Verbalizer

    meta, tensors = load_artifact(path)
    base = meta["base_model"]
    cls = METHODS.get(meta["method"])
    if cls is None:
        raise TasktuneError(f"{path}: unknown method '{meta['method']}'")
    config = cls.config_class(**meta["method_config"])
    if backbone is None:
        if dtype == "auto" and cls.needs_fp32(config):  # tuned backbone weights load in fp32
            dtype = "float32"
        backbone = load_backbone(base["name"], dtype=dtype, device=device)
    if backbone.fingerprint != base["fingerprint"] and not force:
        raise TasktuneError(
            f"{path}: trained on '{base['name']}' (fingerprint {base['fingerprint']}), but the loaded model "
            f"'{backbone.name}' has fingerprint {backbone.fingerprint}; pass --force to load anyway")
    template = Template.parse(meta["template"])
    verbalizer = Verbalizer.from_spec(meta["verbalizer"], meta["labels"]) if meta.get("verbalizer") else None
    module = cls.from_export(config, backbone, template.n_soft, tensors)
    task = Task(backbone, module, template, verbalizer, meta.get("max_length", 256), objective=meta.get("objective"),
                target_field=meta.get("target_field") or "text")
    return task, meta
