import json
import time

import pytest
import torch

from tasktune.build import build_task, load_task
from tasktune.data.readers import Example
from tasktune.methods import PromptTuningConfig
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

TEMPLATE = "review : {text} sentiment :{answer}"


def examples(n=24):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


def make_task(kind="gpt2", seed=0, init="sampled-vocab"):
    bb = tiny_backbone(kind)
    return build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=4, init=init), TEMPLATE,
                      ["positive", "negative"], seed=seed)


def mean_loss(task, data):
    with torch.no_grad():
        batch, labels = task.batch(data)
        return task.objective.loss(task.scores(batch), labels).item()


@pytest.mark.parametrize("kind", ["gpt2", "llama", "bert", "t5", "bart"])
def test_training_lowers_the_loss_and_keeps_the_best(tmp_path, kind):
    """Frozen random tiny models barely separate classes; the loss must still fall.
    (Learning a real task is checked on the embedded model in test_integration.py.)"""
    task = make_task(kind)
    data = examples()
    before = mean_loss(task, data)
    cfg = TrainConfig(max_steps=40, batch_size=8, lr=0.3, eval_every=20, save_every=20, log_every=10)
    summary = train(task, data, data, cfg, tmp_path, quiet=True)
    assert mean_loss(task, data) < before - 1e-3
    assert summary["best_dev_score"] == pytest.approx(task.evaluate(data)["accuracy"])
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("dev_accuracy" in x for x in lines) and any("loss" in x for x in lines)


def test_target_score_ends_the_run_at_the_first_evaluation_reaching_it(tmp_path):
    task = make_task()
    data = examples()
    cfg = TrainConfig(max_steps=40, batch_size=8, lr=0.3, eval_every=5, save_every=20, log_every=5, target_score=0.01)
    summary = train(task, data, data, cfg, tmp_path, quiet=True)
    assert summary["steps"] == 5 and summary["best_step"] == 5  # any score reaches 0.01: the first evaluation stops
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    stamps = [x["time"] for x in lines]
    assert stamps == sorted(stamps) and abs(stamps[-1] - time.time()) < 600  # wall-clock stamps, in order
    out = train(make_task(), data, data, TrainConfig(max_steps=10, batch_size=8, eval_every=5, target_score=1.01),
                tmp_path / "never", quiet=True)
    assert out["steps"] == 10  # a target no score reaches: the whole schedule runs


def test_artifact_roundtrip_is_small_and_exact(tmp_path):
    task = make_task()
    data = examples()
    train(task, data, data, TrainConfig(max_steps=5, batch_size=8, eval_every=5), tmp_path, quiet=True)
    meta = json.loads((tmp_path / "tasktune.json").read_text())
    assert meta["method"] == "prompt-tuning" and meta["base_model"]["fingerprint"] == task.backbone.fingerprint
    assert (tmp_path / "weights.safetensors").stat().st_size < 4 * 32 * 4 + 1024
    loaded, _ = load_task(tmp_path, backbone=task.backbone)
    torch.testing.assert_close(loaded.predict_scores(data), task.predict_scores(data))


def test_artifact_refuses_another_base_model(tmp_path):
    from tasktune import TasktuneError

    task = make_task()
    train(task, examples(), examples(), TrainConfig(max_steps=2, batch_size=8, eval_every=2), tmp_path, quiet=True)
    other = tiny_backbone("llama")
    with pytest.raises(TasktuneError, match="--force"):
        load_task(tmp_path, backbone=other)


def test_resume_after_kill_matches_uninterrupted_run(tmp_path):
    data = examples()
    cfg = TrainConfig(max_steps=12, batch_size=8, eval_every=100, save_every=6, lr=0.1)
    full = make_task()
    train(full, data, data, cfg, tmp_path / "full", quiet=True)

    part = make_task()
    train(part, data, data, cfg, tmp_path / "part", quiet=True, stop_after=7)  # stops after step 7
    # a new process: a fresh task resumes from the checkpoint (same data order, optimizer, schedule)
    resumed = make_task()
    train(resumed, data, data, cfg, tmp_path / "part", resume=True, quiet=True)
    torch.testing.assert_close(resumed.module.prompt, full.module.prompt, atol=1e-5, rtol=1e-5)


def test_seed_makes_training_reproducible(tmp_path):
    data = examples()
    cfg = TrainConfig(max_steps=4, batch_size=8, eval_every=100)
    a, b = make_task(), make_task()
    train(a, data, data, cfg, tmp_path / "a", quiet=True)
    train(b, data, data, cfg, tmp_path / "b", quiet=True)
    torch.testing.assert_close(a.module.prompt, b.module.prompt)


def test_adafactor_grad_accumulation_and_early_stopping(tmp_path):
    data = examples()
    task = make_task()
    cfg = TrainConfig(max_steps=50, batch_size=4, grad_accum=2, optimizer="adafactor", lr=0.3, eval_every=1,
                      patience=2)
    summary = train(task, data, data, cfg, tmp_path, quiet=True)
    assert summary["steps"] < 50  # stopped early: dev accuracy stopped improving
    assert summary["tokens_per_second"] > 0


def test_grad_accumulation_equals_one_big_batch(tmp_path):
    data = examples(8)
    a, b = make_task(), make_task()
    train(a, data, data, TrainConfig(max_steps=1, batch_size=8, eval_every=100, max_grad_norm=0), tmp_path / "a",
          quiet=True)
    # two accumulated micro-batches of 4 hold the same 8 examples, and the loss is their mean either way
    train(b, data, data, TrainConfig(max_steps=1, batch_size=4, grad_accum=2, eval_every=100, max_grad_norm=0),
          tmp_path / "b", quiet=True)
    assert not torch.equal(a.module.prompt, make_task().module.prompt)
    torch.testing.assert_close(a.module.prompt, b.module.prompt, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_gradient_checkpointing_saves_less_and_gives_the_same_update(tmp_path, kind):
    from transformers.modeling_layers import GradientCheckpointingLayer

    from tasktune.train.loop import checkpointing

    data = examples(8)
    saved, prompts = {}, {}
    for ckpt in (False, True):
        task = make_task(kind)
        batch, labels = task.batch(data)
        count = [0]

        def pack(t, count=count):
            count[0] += t.numel()
            return t

        with checkpointing(task, ckpt), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            task.objective.loss(task.scores(batch), labels)
        saved[ckpt] = count[0]
        train(task, data, [], TrainConfig(max_steps=1, batch_size=8, gradient_checkpointing=ckpt),
              tmp_path / str(ckpt), quiet=True)
        prompts[ckpt] = task.module.prompt.detach()
        layer = next(m for m in task.backbone.model.modules() if isinstance(m, GradientCheckpointingLayer))
        assert not layer.training and not layer.gradient_checkpointing  # restored: the backbone is shared
    # activations of the layers are recomputed, not kept (a Llama's last layer keeps little either way: it runs at
    # the read positions only, engine/last_layer.py, and is half of this 2-layer model)
    assert saved[True] < saved[False] / (2 if kind == "llama" else 3)
    torch.testing.assert_close(prompts[False], prompts[True], atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_refuses_prefix_tuning(tmp_path):
    from tasktune import TasktuneError
    from tasktune.methods import PrefixTuningConfig

    task = build_task(tiny_backbone("llama"), "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=8),
                      TEMPLATE, ["positive", "negative"])
    with pytest.raises(TasktuneError, match="prefix"):
        train(task, examples(8), [], TrainConfig(max_steps=1, batch_size=8, gradient_checkpointing=True), tmp_path,
              quiet=True)


def test_micro_batches_are_sorted_bounded_and_complete():
    from tasktune.engine.batch import micro_batches

    lengths = [9, 3, 7, 3, 12, 5]
    pieces = micro_batches([0, 1, 2, 3, 4, 5], lengths, max_tokens=24)
    assert [[lengths[i] for i in p] for p in pieces] == [[3, 3], [5, 7], [9, 12]]  # 2 x 12 fits, 3 x 9 not
    assert micro_batches([0, 1, 2, 3, 4, 5], lengths, max_tokens=100) == [[1, 3, 5, 2, 0, 4]]
    assert micro_batches([4, 1], lengths, max_tokens=5) == [[1], [4]]  # one example may exceed it
    assert micro_batches([4, 0], lengths, 0) == [[4, 0]]  # 0: the whole batch, as given


def test_micro_batching_gives_the_same_update(tmp_path):
    data = examples(12)
    a, b = make_task(), make_task()
    cfg = dict(max_steps=3, batch_size=12, eval_every=100)
    train(a, data, data, TrainConfig(micro_batch_tokens=0, **cfg), tmp_path / "a", quiet=True)
    train(b, data, data, TrainConfig(micro_batch_tokens=24, **cfg), tmp_path / "b", quiet=True)  # ~3 rows a piece
    assert not torch.equal(a.module.prompt, make_task().module.prompt)
    torch.testing.assert_close(a.module.prompt, b.module.prompt, atol=1e-5, rtol=1e-4)
