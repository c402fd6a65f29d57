"""Resumable training state, without pickle: tensors in safetensors, the rest in JSON.

Written into a sibling folder and swapped in whole (artifact/folders.py), so a kill at any
moment leaves the previous complete checkpoint or the new one, never one file of each.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from tasktune.artifact.files import atomic_save_tensors, atomic_write_bytes
from tasktune.artifact.folders import commit_folder

TENSORS, STATE = "state.safetensors", "state.json"


def save_checkpoint(folder: Path, module, optimizer, scheduler, progress: dict, run: dict | None = None) -> None:
    """`run`: what the checkpoint belongs to (spec, settings), checked on resume."""
    tensors = {f"module.{k}": v.detach().cpu() for k, v in module.checkpoint_state().items()}
    opt = optimizer.state_dict()
    scalars: dict = {}
    for idx, state in opt["state"].items():
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{name}"] = value
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"progress": progress, "param_groups": opt["param_groups"], "optim_scalars": scalars,
            "scheduler": {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}, "run": run}
    staged = folder.parent / f".{folder.name}.new"
    shutil.rmtree(staged, ignore_errors=True)
    atomic_save_tensors(staged / TENSORS, tensors)
    atomic_write_bytes(staged / STATE, json.dumps(meta, indent=1).encode())
    commit_folder(staged, folder)


def load_checkpoint(folder: Path, module, optimizer, scheduler) -> dict:
    meta = json.loads((folder / STATE).read_text())
    tensors = load_file(str(folder / TENSORS))
    module.load_checkpoint_state({k[len("module."):]: v for k, v in tensors.items() if k.startswith("module.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for key, value in meta["optim_scalars"].items():
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched = scheduler.state_dict()
    sched.update(meta["scheduler"])
    scheduler.load_state_dict(sched)
    torch.set_rng_state(tensors["rng.torch"])
    return meta["progress"]


def has_checkpoint(folder: Path) -> bool:
    return (folder / STATE).is_file() and (folder / TENSORS).is_file()
