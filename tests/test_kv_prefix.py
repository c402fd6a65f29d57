import contextlib

import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import PromptTuningConfig, ZeroShotConfig

from conftest import tiny_backbone

LONG = "the film was great . " * 10


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
def test_shared_prefix_kv_reuse_matches_full_forward(kind):
    bb = tiny_backbone(kind)
    task = build_task(bb, "zero-shot", ZeroShotConfig(), LONG + "review : {text} sentiment :{answer}",
                      ["positive", "negative"])
    rows = [Example({"text": t}) for t in ["a dull film", "loved it really", "bad", "the plot is very fun and lovely"]]
    with torch.no_grad():
        batch, _ = task.batch(rows)
        plain = task.objective.scores(bb, task.module(bb, batch), batch)
    with torch.inference_mode():
        cached = task.scores(batch)  # computes the prefix KV
        again = task.scores(task.batch(rows[1:2])[0])  # one row: reuses the stored prefix
    assert task.prefix_cache.key is not None and len(task.prefix_cache.key) >= 32
    torch.testing.assert_close(cached, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again[0], plain[1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
def test_soft_prompt_kv_is_shared_at_inference_and_never_stale(kind):
    """A soft prompt is the same in every row: its KV is computed once per batch and reused; new
    prompt values (evaluation during training) are a miss, not a stale hit."""
    bb = tiny_backbone(kind)
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=6), "review : {text} sentiment :{answer}",
                      ["positive", "negative"], seed=1)
    rows = [Example({"text": t}) for t in ["a dull film", "loved it really", "bad", "the plot is very fun and lovely"]]
    batch, _ = task.batch(rows)
    with torch.no_grad():
        plain = task.objective.scores(bb, task.module(bb, batch), batch)
    with torch.inference_mode():
        cached = task.scores(batch)
    assert task.prefix_cache.key is not None and task.prefix_cache.key.dim() == 2  # embeddings, not ids
    assert len(task.prefix_cache.key) >= 6 + 2  # soft prompt + "review :"
    torch.testing.assert_close(cached, plain, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        task.module.prompt.add_(torch.randn_like(task.module.prompt))  # not a constant: LayerNorm removes that
        moved = task.objective.scores(bb, task.module(bb, batch), batch)
    with torch.inference_mode():
        torch.testing.assert_close(task.scores(batch), moved, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(moved, plain)


@pytest.mark.parametrize("kind", ["gpt2", "llama", "gemma3"])
@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning"])
def test_training_runs_the_shared_prompt_once_with_the_same_loss_and_gradients(kind, method, monkeypatch):
    """In training the soft prompt's KV is computed once per batch, with gradients; loss and
    gradients equal those of running the prompt in every row."""
    from tasktune.engine.kv_prefix import SharedPrefixCache
    from tasktune.methods import PTuningConfig

    bb = tiny_backbone(kind)
    bb.model.double()
    cfg = PromptTuningConfig(prompt_length=6) if method == "prompt-tuning" else PTuningConfig(prompt_length=6,
                                                                                             encoder="mlp")
    task = build_task(bb, method, cfg, "review : {text} sentiment :{answer}", ["positive", "negative"], seed=1)
    task.module.double()
    rows = [Example({"text": t}, lab) for t, lab in [("a dull film", "negative"), ("loved it really", "positive"),
                                                     ("the plot is very fun and lovely", "positive")]]
    batch, labels = task.batch(rows)
    params = [p for p in task.module.parameters() if p.requires_grad]
    splits = []
    real_split = SharedPrefixCache.split
    monkeypatch.setattr(SharedPrefixCache, "split", lambda *a, **k: splits.append(real_split(*a, **k)) or splits[-1])

    def loss_and_grads():
        loss = task.objective.loss(task.scores(batch), labels)
        return loss.detach(), torch.autograd.grad(loss, params)

    shared_loss, shared_grads = loss_and_grads()  # float64, but Llama's eager softmax rounds through fp32
    assert splits and splits[-1] is not None and task.prefix_cache.key is None  # split, and nothing kept
    task.prefix_cache = None  # the plain path: the prompt runs in every row
    plain_loss, plain_grads = loss_and_grads()
    torch.testing.assert_close(shared_loss, plain_loss, atol=1e-6, rtol=1e-6)
    for a, b in zip(shared_grads, plain_grads, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("method", ["prompt-tuning", "p-tuning"])
def test_one_optimizer_step_runs_the_shared_prompt_once_for_all_pieces(method, monkeypatch):
    """Inside optimizer_step(), micro-batches reuse the step's prompt KV (leaves whose gradient is
    carried back once on leaving): the same gradients as each piece running its own prompt."""
    from tasktune.engine import kv_prefix
    from tasktune.methods import PTuningConfig

    bb = tiny_backbone("llama")
    bb.model.double()
    cfg = PromptTuningConfig(prompt_length=6) if method == "prompt-tuning" else PTuningConfig(prompt_length=6,
                                                                                             encoder="lstm")
    task = build_task(bb, method, cfg, "review : {text} sentiment :{answer}", ["positive", "negative"], seed=1)
    task.module.double()
    texts = [("a dull film", "negative"), ("loved it really", "positive"), ("the plot is fun", "positive"),
             ("bad", "negative"), ("so so so boring", "negative"), ("great", "positive")]
    pieces = [task.batch([Example({"text": t}, lab) for t, lab in texts[i:i + 2]]) for i in (0, 2, 4)]
    params = [p for p in task.module.parameters() if p.requires_grad]
    runs = []
    real = kv_prefix.kv_of
    monkeypatch.setattr(kv_prefix, "kv_of", lambda *a, **k: runs.append(1) or real(*a, **k))

    def grads(step: bool):
        for p in params:
            p.grad = None
        runs.clear()
        with task.optimizer_step() if step else contextlib.nullcontext():
            for batch, labels in pieces:
                (task.objective.loss(task.scores(batch), labels) / len(pieces)).backward()
        return [p.grad.clone() for p in params], len(runs)

    per_piece, n_plain = grads(step=False)
    once, n_step = grads(step=True)
    assert (n_plain, n_step) == (3, 1)
    for a, b in zip(once, per_piece, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    assert task.prefix_cache._step is None and not task.prefix_cache._in_step  # left clean
