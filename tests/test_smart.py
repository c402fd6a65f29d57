import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import FineTuningConfig, PromptTuningConfig
from tasktune.regularizers.smart import Smart, SmartConfig, sym_kl
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

TEMPLATE = "review : {text} sentiment :{answer}"


def examples(n=16):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


def prompt_task(seed=0):
    return build_task(tiny_backbone("llama"), "prompt-tuning", PromptTuningConfig(prompt_length=4), TEMPLATE,
                      ["positive", "negative"], seed=seed)


def test_adversarial_step_increases_the_divergence():
    task = prompt_task()
    batch, _ = task.batch(examples(8))
    reg = Smart(SmartConfig(smart=True, smart_eps=1e-2, smart_step=1e-2, smart_noise=1e-6), task.module.trainable())
    inputs = reg._embeds(task.module(task.backbone, batch), task.backbone.embed)
    score = lambda inp: task.scores_from_inputs(inp, batch)  # noqa: E731
    clean = task.objective.scores(task.backbone, inputs, batch).detach()
    torch.manual_seed(0)
    x = inputs["inputs_embeds"]
    noise = torch.randn_like(x) * 1e-3
    random_div = sym_kl(reg._scores(score, inputs, x + noise), clean)
    torch.manual_seed(0)
    adv_div = reg.adversarial(score, inputs, clean)
    assert adv_div > random_div


def test_teacher_is_an_ema_and_swaps_back():
    task = prompt_task()
    reg = Smart(SmartConfig(smart=True, smart_beta=0.9), task.module.trainable())
    before = task.module.prompt.detach().clone()
    with torch.no_grad():
        task.module.prompt.add_(1.0)
    reg.after_step()
    torch.testing.assert_close(reg.teacher[0], before + 0.1)
    with reg._teacher_weights():
        torch.testing.assert_close(task.module.prompt.detach(), before + 0.1)
    torch.testing.assert_close(task.module.prompt.detach(), before + 1.0)


def test_zero_coefficients_train_exactly_like_the_plain_method(tmp_path):
    data = examples()
    cfg = TrainConfig(max_steps=5, batch_size=8, eval_every=100)
    plain, wrapped = prompt_task(), prompt_task()
    train(plain, data, data, cfg, tmp_path / "a", quiet=True)
    train(wrapped, data, data, cfg, tmp_path / "b", quiet=True,
          smart=SmartConfig(smart=True, smart_lambda=0.0, smart_mu=0.0))
    torch.testing.assert_close(plain.module.prompt, wrapped.module.prompt)


@pytest.mark.parametrize("layers,expect", [("all", None), ("last:1", "layers.1."), ("bias", ".bias")])
def test_fine_tuning_trains_only_the_selected_weights_with_smart(tmp_path, layers, expect):
    bb = tiny_backbone("gpt2" if layers == "bias" else "llama")
    task = build_task(bb, "fine-tuning", FineTuningConfig(train_layers=layers), TEMPLATE, ["positive", "negative"])
    tuned = [n for n, p in bb.model.named_parameters() if p.requires_grad]
    assert tuned and (expect is None or all(expect in n for n in tuned))
    frozen_before = {n: p.detach().clone() for n, p in bb.model.named_parameters() if not p.requires_grad}
    train(task, examples(), examples(), TrainConfig(max_steps=3, batch_size=8, eval_every=3, lr=1e-3), tmp_path,
          quiet=True, smart=SmartConfig(smart=True))
    for n, p in bb.model.named_parameters():
        if n in frozen_before:
            torch.testing.assert_close(p, frozen_before[n])
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "weights.safetensors"))
    assert sorted(stored) == sorted(f"model.{n}" for n in tuned)


@pytest.mark.parametrize("kind", ["llama", "bert", "t5"])
def test_linear_head_fine_tuning_trains_and_reloads(tmp_path, kind):
    from tasktune.build import load_task

    bb = tiny_backbone(kind)
    task = build_task(bb, "fine-tuning", FineTuningConfig(head="linear", train_layers="last:1"), TEMPLATE,
                      ["positive", "negative"])
    batch, labels = task.batch(examples(4))
    assert task.scores(batch).shape == (4, 2)
    train(task, examples(), examples(), TrainConfig(max_steps=3, batch_size=8, eval_every=3, lr=1e-2), tmp_path,
          quiet=True, smart=SmartConfig(smart=True))
    from safetensors.torch import load_file

    stored = load_file(str(tmp_path / "weights.safetensors"))
    assert "classifier.weight" in stored and stored["classifier.weight"].shape[0] == 2
    fresh = tiny_backbone(kind)
    loaded, _ = load_task(tmp_path, backbone=fresh)
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()), atol=1e-4,
                               rtol=1e-4)


def test_mixed_precision_fine_tuning_runs_bf16_matmuls_over_fp32_weights():
    from tasktune import TasktuneError

    bb = tiny_backbone("llama")
    exact = build_task(bb, "fine-tuning", FineTuningConfig(precision="fp32"), TEMPLATE, ["positive", "negative"])
    batch, _ = exact.batch(examples(4))
    with torch.no_grad():
        ref = exact.scores(batch)
        mixed = build_task(bb, "fine-tuning", FineTuningConfig(precision="bf16-mixed"), TEMPLATE,
                           ["positive", "negative"]).scores(batch)
    assert all(p.dtype == torch.float32 for p in bb.model.parameters())  # master weights stay fp32
    assert not torch.equal(ref, mixed)  # bf16 rounding shows ...
    torch.testing.assert_close(mixed, ref, atol=0.5, rtol=0.05)  # ... and is all that differs
    with pytest.raises(TasktuneError, match="precision"):
        FineTuningConfig(precision="fp8")
