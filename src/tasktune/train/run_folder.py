"""A training run as a transaction: everything is written into a sibling work folder
(`.NAME.partial`) and made visible as NAME in one step when the run ends.

Until then NAME keeps whatever it held (the previous run, under --overwrite, or nothing), so
bad input, a crash or a kill never costs the old run. Inside the work folder the checkpoint and
the best artifact each change in one step too (artifact/folders.py), so `--resume` continues
from a complete checkpoint. A killed run resumes from its work folder; `--resume` of a finished
run copies it into a work folder first.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tasktune import TasktuneError
from tasktune.artifact.files import META, WEIGHTS
from tasktune.artifact.folders import commit_folder, recover
from tasktune.artifact.store import save_task
from tasktune.train.checkpoint import STATE, has_checkpoint

BEST = "best"
# settings that change what a resumed run computes; the rest (how often to log, save, evaluate) may change
IGNORED_ON_RESUME = {"eval_every", "save_every", "log_every", "eval_batch_size", "patience"}


def work_folder(out: Path) -> Path:
    return out.parent / f".{out.name}.partial"


def holds_run(out: Path) -> bool:
    return (out / META).exists() or (out / "checkpoint").exists() or work_folder(out).exists()


def run_record(task, cfg, n_train: int) -> dict:
    """What a checkpoint belongs to: the task spec, the training settings and the data size."""
    return {"spec": task.spec().to_dict(), "train_config": dict(cfg.__dict__), "train_examples": n_train}


class RunFolder:
    def __init__(self, out: str | Path, main_process: bool = True):
        self.out, self.main = Path(out), main_process
        self.work = work_folder(self.out)
        self.checkpoint = self.work / "checkpoint"
        self.metrics = self.work / "metrics.jsonl"

    def open(self, resume: bool) -> bool:
        """Prepare the work folder; True when a checkpoint is there to resume from."""
        recover(self.out)
        if not self.main:
            return resume and has_checkpoint(self.checkpoint)
        if resume:
            if self.resumable_checkpoint() != self.checkpoint:
                shutil.rmtree(self.work, ignore_errors=True)
                shutil.copytree(self.out, self.work)
            return True
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        return False

    @staticmethod
    def check_resumable(state: dict, run: dict) -> None:
        """A checkpoint resumes only the run that wrote it: same task spec, data size and settings."""
        saved = state.get("run")
        if saved is None:
            return  # checkpoints from before runs were recorded
        for key in sorted(set(saved) | set(run)):
            a, b = saved.get(key), run.get(key)
            if isinstance(a, dict) and isinstance(b, dict):
                for k in sorted(set(a) | set(b)):
                    if k not in IGNORED_ON_RESUME and a.get(k) != b.get(k):
                        raise TasktuneError(f"--resume: the checkpoint was written with {key}.{k}={a.get(k)!r}, "
                                            f"this run has {b.get(k)!r}; start a new run with --overwrite instead")
            elif a != b:
                raise TasktuneError(f"--resume: the checkpoint was written with {key}={a!r}, this run has {b!r}")

    def read_state(self) -> dict:
        return json.loads((self.checkpoint / STATE).read_text())

    def resumable_checkpoint(self) -> Path:
        """The checkpoint --resume would continue from (the work folder's, else the finished run's)."""
        for folder in (self.checkpoint, self.out / "checkpoint"):
            if has_checkpoint(folder):
                return folder
        raise TasktuneError(f"--resume: {self.out} has no checkpoint to resume from")

    def check_resume(self, run: dict) -> None:
        """Before anything is written: a checkpoint exists and belongs to this run."""
        state = json.loads((self.resumable_checkpoint() / STATE).read_text())
        self.check_resumable(state, run)

    def save_best(self, task, meta: dict) -> None:
        staged = self.work / f".{BEST}.new"
        shutil.rmtree(staged, ignore_errors=True)
        save_task(task, staged, meta)
        commit_folder(staged, self.work / BEST)

    def best_weights(self) -> Path:
        return self.work / BEST / WEIGHTS

    def commit(self) -> None:
        """The finished run becomes OUT in one step."""
        best = self.work / BEST
        if best.is_dir():
            for f in best.iterdir():
                os.replace(f, self.work / f.name)
            best.rmdir()
        commit_folder(self.work, self.out)
