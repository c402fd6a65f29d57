"""A crash at any write point of a run (artifact, checkpoint, the final swap) leaves the old
complete run or the new complete run, never a mix; the failure is injected, not timed."""

import os
import shutil

import pytest
import torch
from safetensors.torch import load_file

from tasktune.artifact import folders
from tasktune.build import build_task, load_task
from tasktune.data.readers import Example
from tasktune.methods import PromptTuningConfig
from tasktune.train import TrainConfig, train
from tasktune.train.checkpoint import STATE, TENSORS
from tasktune.train.run_folder import work_folder

from conftest import tiny_backbone, toy_rows

T = "review : {text} sentiment :{answer}"
CFG = TrainConfig(max_steps=4, batch_size=4, lr=0.3, eval_every=2, save_every=2, log_every=2)


class Crash(Exception):
    pass


def data():
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(12))]


def run(out, seed, steps=None):
    task = build_task(tiny_backbone("llama"), "prompt-tuning", PromptTuningConfig(prompt_length=2), T,
                      ["positive", "negative"], seed=seed)
    cfg = TrainConfig(**{**CFG.__dict__, **({"max_steps": steps} if steps else {})})
    train(task, data(), data()[:4], cfg, out, quiet=True)


def weights(folder):
    return load_file(str(folder / "weights.safetensors"))["prompt"]


class WritePoints:
    """Counts the calls that change what is on disk (renames, the folder exchange, deletions,
    tensor files) and raises at the k-th."""

    def __init__(self, monkeypatch, fail_at: int | None):
        self.n, self.fail_at = 0, fail_at
        for owner, name in ((os, "replace"), (os, "rename"), (folders, "_exchange"), (shutil, "rmtree")):
            real = getattr(owner, name)
            monkeypatch.setattr(owner, name, self.wrap(real))
        import tasktune.artifact.files as files

        monkeypatch.setattr(files, "save_file", self.wrap(files.save_file))

    def wrap(self, real):
        def call(*args, **kwargs):
            self.n += 1
            if self.n == self.fail_at:
                raise Crash(f"injected at write point {self.n}")
            return real(*args, **kwargs)

        return call


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "rename-aside"])
def test_every_write_point_leaves_old_or_new(tmp_path, monkeypatch, exchange):
    if not exchange:  # a kernel without RENAME_EXCHANGE: the old run is renamed aside, then recovered
        monkeypatch.setattr(folders, "_exchange", lambda a, b: False)
    reference = tmp_path / "reference"
    run(reference, seed=1)  # what the new run writes when nothing fails
    new_weights = weights(reference)
    run(tmp_path / "count", seed=0)
    with monkeypatch.context() as m:  # count the write points of an overwrite, as the loop below does
        counter = WritePoints(m, None)
        run(tmp_path / "count", seed=1)
        total = counter.n
    outcomes = []
    assert total >= 10  # best artifact twice, checkpoint twice, the final swap

    for k in range(1, total + 1):
        out = tmp_path / f"run{k}"
        run(out, seed=0)  # the old, complete run
        old_weights, old_meta = weights(out), (out / "tasktune.json").read_bytes()
        with monkeypatch.context() as m:
            WritePoints(m, k)
            with pytest.raises(Crash):
                run(out, seed=1)
        task, meta = load_task(out, backbone=tiny_backbone("llama"))  # loads: JSON and weights agree
        got = weights(out)
        is_old = torch.equal(got, old_weights) and (out / "tasktune.json").read_bytes() == old_meta
        is_new = torch.equal(got, new_weights) and meta["metrics"]["step"] == reference_step(reference)
        assert is_old or is_new, f"write point {k}: a mix of old and new"
        outcomes.append(is_new)
        ckpt = work_folder(out) / "checkpoint"
        if ckpt.exists():  # the work folder's checkpoint is complete too: both files parse
            assert (ckpt / STATE).read_text().startswith("{") and load_file(str(ckpt / TENSORS))
    assert not outcomes[0] and outcomes[-1]  # the first failure keeps the old run; one at the very end, the new


def reference_step(folder):
    import json

    return json.loads((folder / "tasktune.json").read_text())["metrics"]["step"]
