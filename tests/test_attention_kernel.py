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
    monkeypatch.setattr(attention_kernel, "use_math", lambda q: used.append(real(q)) or used[-1])
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


def test_inference_keeps_sdpa():
    q = torch.zeros(1, 1, 2, 4)
    assert attention_kernel.use_math(q)
    with torch.no_grad():
        assert not attention_kernel.use_math(q)
