"""Writing a trained task as an artifact folder: tasktune.json (the task's spec, base model,
metrics, versions) and weights.safetensors (task parameters only). Written atomically: files go
to temporary names and are renamed, the JSON last, naming the weights file's size and sha256
(checked on load). Loading is tasktune/build.py's `load_task`."""

from __future__ import annotations

import json
from pathlib import Path

from tasktune.artifact.files import (
    FORMAT,
    META,
    WEIGHTS,
    atomic_save_tensors,
    atomic_write_bytes,
    sha256_of,
    versions,
)


def save_task(task, out_dir: str | Path, extra: dict | None = None) -> Path:
    out = Path(out_dir)
    tensors = task.module.export_tensors()
    meta = {"format": FORMAT, **task.spec().to_dict(), "family": task.backbone.family,
            "base_model": {"name": task.backbone.name, "fingerprint": task.backbone.fingerprint,
                           "family": task.backbone.family},
            "trainable_parameters": task.module.trainable_parameters(),
            "versions": versions(), **(extra or {})}
    atomic_save_tensors(out / WEIGHTS, tensors, {"format": FORMAT, "method": task.method})
    meta["weights"] = {"file": WEIGHTS, "bytes": (out / WEIGHTS).stat().st_size, "sha256": sha256_of(out / WEIGHTS),
                       "tensors": {k: list(v.shape) for k, v in tensors.items()}}
    atomic_write_bytes(out / META, (json.dumps(meta, indent=2) + "\n").encode())
    return out
