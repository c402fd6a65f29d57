"""On CPU under autograd, sdpa calls run the eager (math) attention: same loss and gradients."""

import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.engine import attention_kernel
from tasktune.methods import PrefixTuningConfig, PromptTuningConfig

from conftest import FAMILY_KINDS, tiny_backbone

TEMPLATE = "review : {text} sentiment :{answer}"
MASKED_TEMPLATE = "review : {text} sentiment : {answer} ."
EXAMPLES = [Example({"text": "the movie was really great and very fun"}, "positive", "a"),
            Example({"text": "dull"}, "negative", "b"), Example({"text": "a lovely film"}, "positive", "c")]


def loss_and_grad(task) -> tuple[torch.Tensor, list[torch.Tensor]]:
    batch, labels = task.batch(EXAMPLES)  # rows of different lengths: padding is in play
    loss = task.objective.loss(task.scores(batch), labels)
    params = [p for p in task.module.parameters() if p.requires_grad]
    return loss.detach(), [g.detach() for g in torch.autograd.grad(loss, params)]


@pytest.mark.parametrize("kind", FAMILY_KINDS)
@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning"])
def test_math_path_under_autograd_equals_sdpa(kind, method, monkeypatch):
    bb = tiny_backbone(kind)
    assert bb.model.config._attn_implementation == "tasktune_sdpa"
    # float64: the paths agree to fp32 rounding (Llama's eager softmax runs in fp32), not worse
    # (in fp32 this random T5 is ill-conditioned enough to differ by 1e-3)
    bb.model.double()
    cfg = PromptTuningConfig(prompt_length=3) if method == "prompt-tuning" else PrefixTuningConfig(prefix_length=3,
                                                                                                  reparam=False)
    task = build_task(bb, method, cfg, MASKED_TEMPLATE if kind == "bert" else TEMPLATE, ["positive", "negative"],
                      seed=1)
    task.module.double()
    used = []
    real = attention_kernel.use_math
    monkeypatch.setattr(attention_kernel, "use_math", lambda *a: used.append(real(*a)) or used[-1])
    math_loss, math_grads = loss_and_grad(task)
    assert used and all(used)  # every attention call took the math path
    monkeypatch.setattr(attention_kernel, "MATH_FOR_CPU_TRAINING", False)
    used.clear()
    sdpa_loss, sdpa_grads = loss_and_grad(task)
    assert used and not any(used)
    torch.testing.assert_close(math_loss, sdpa_loss, atol=1e-6, rtol=1e-6)
    for a, b in zip(math_grads, sdpa_grads, strict=True):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)


def test_inference_takes_the_math_path_only_where_lean_and_small(monkeypatch):
    q, k = torch.zeros(2, 3, 4, 8), torch.zeros(2, 1, 5, 8)
    assert attention_kernel.use_math(q, k, lean=False)  # training: always
    with torch.no_grad():
        assert attention_kernel.use_math(q, k, lean=True)
        assert not attention_kernel.use_math(q, k, lean=False)  # another family's eager: sdpa
        monkeypatch.setattr(attention_kernel, "MATH_INFERENCE_MAX_SCORES", 2 * 3 * 4 * 5 - 1)
        assert not attention_kernel.use_math(q, k, lean=True)  # scores too big: sdpa's tiled kernel
        assert not attention_kernel.use_math(q.to("meta"), k.to("meta"), lean=True)  # not a CPU


@pytest.mark.parametrize("method", ["prompt-tuning", "prefix-tuning"])
def test_inference_on_the_lean_path_equals_sdpa(method, monkeypatch):
    bb = tiny_backbone("llama")
    bb.model.double()
    cfg = PromptTuningConfig(prompt_length=3) if method == "prompt-tuning" else PrefixTuningConfig(prefix_length=3,
                                                                                                  reparam=False)
    task = build_task(bb, method, cfg, TEMPLATE, ["positive", "negative"], seed=1)
    task.module.double()
    batch, _ = task.batch(EXAMPLES)
    used = []
    real = attention_kernel.use_math
    monkeypatch.setattr(attention_kernel, "use_math", lambda *a: used.append(real(*a)) or used[-1])
    with torch.no_grad():
        lean = task.scores(batch)
        assert used and all(used)
        monkeypatch.setattr(attention_kernel, "MATH_FOR_CPU_INFERENCE", False)
        used.clear()
        sdpa = task.scores(batch)
        assert used and not any(used)
    torch.testing.assert_close(lean, sdpa, atol=1e-6, rtol=1e-6)
