"""Artifact files: tasktune.json (what the task is) and weights.safetensors (task parameters),
written atomically (temporary name, fsync, rename) and read back with file-naming errors.

This module knows files, not tasks: methods read a pretrained prompt through it, and
artifact/store.py (writing) and tasktune/build.py (loading a Task) sit above it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from tasktune import TasktuneError, __version__
from tasktune.artifact.folders import recover

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


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_artifact(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(tasktune.json, tensors) of an artifact folder, after checking that the weights file is the
    one the JSON names (size and sha256) and that it parses; every failure is one line naming the file."""
    folder = Path(path)
    recover(folder)  # a run swap that crashed between its two renames (kernels without the exchange)
    meta_path = folder / META
    if not meta_path.is_file():
        raise TasktuneError(f"{folder}: not a tasktune artifact (no {META})")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise TasktuneError(f"{meta_path}: not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise TasktuneError(f"{meta_path}: malformed JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(meta, dict):
        raise TasktuneError(f"{meta_path}: expected a JSON object")
    if meta.get("format") != FORMAT:
        raise TasktuneError(f"{meta_path}: unknown format {meta.get('format')!r} (expected {FORMAT})")
    weights = folder / WEIGHTS
    record = meta.get("weights")
    if record is not None:
        if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
            raise TasktuneError(f"{meta_path}: field 'weights' must name the weights file's sha256")
        if not weights.is_file():
            raise TasktuneError(f"{weights}: missing (tasktune.json names it)")
        if weights.stat().st_size != record.get("bytes") or sha256_of(weights) != record["sha256"]:
            raise TasktuneError(f"{weights}: does not match tasktune.json (size or sha256): the artifact is "
                                "incomplete or was changed")
    if not weights.is_file():
        return meta, {}
    try:
        tensors = load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for truncated or bad files
        raise TasktuneError(f"{weights}: unreadable safetensors file ({str(e).splitlines()[0][:120]})") from None
    return meta, tensors
