import pytest
import torch

from tasktune import TasktuneError
from tasktune.artifact import load_task, save_task
from tasktune.data.readers import Example
from tasktune.methods import PrefixTuningConfig
from tasktune.task import build_task
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

TEMPLATE = "review : {text} sentiment :{answer}"


def examples(n=16):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("reparam", [True, False])
def test_prefix_reaches_every_layer_and_trains(kind, reparam, tmp_path):
    bb = tiny_backbone(kind)
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam=reparam, reparam_hidden=16),
                      TEMPLATE, ["positive", "negative"])
    layers, kv_heads, head_dim = task.module.geometry
    assert task.module.prefix_tensor().shape == (layers, 2, kv_heads, 3, head_dim)
    if kind == "llama":
        assert kv_heads == 2  # grouped-query attention: KV heads, not query heads
    task.module.train()
    batch, labels = task.batch(examples(4))
    task.objective.loss(task.scores(batch), labels).backward()
    grads = [p.grad for p in task.module.parameters()]
    assert all(g is not None and g.abs().sum() > 0 for g in grads)
    # the prefix changes the prediction (it is seen by the real tokens)
    with torch.no_grad():
        plain = task.objective.scores(bb, {"input_ids": batch.ids, "attention_mask": batch.mask}, batch)
        assert not torch.allclose(plain, task.scores(batch))
    train(task, examples(), examples(), TrainConfig(max_steps=3, batch_size=8, eval_every=3), tmp_path, quiet=True)


def test_export_folds_the_mlp_and_reloads_for_inference_and_training(tmp_path):
    bb = tiny_backbone("llama")
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam_hidden=16), TEMPLATE,
                      ["positive", "negative"], seed=2)
    save_task(task, tmp_path)
    from safetensors.torch import load_file

    assert list(load_file(str(tmp_path / "weights.safetensors"))) == ["prefix"]
    loaded, _ = load_task(tmp_path, backbone=bb)
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()), atol=1e-5,
                               rtol=1e-5)
    assert loaded.module.direct and loaded.module.prefix.requires_grad
    train(loaded, examples(), examples(), TrainConfig(max_steps=2, batch_size=8, eval_every=2), tmp_path / "more",
          quiet=True)


def test_text_init_uses_real_activations():
    bb = tiny_backbone("gpt2")
    cfg = PrefixTuningConfig(prefix_length=2, reparam=False, prefix_init="text", prefix_init_text="table : name")
    task = build_task(bb, "prefix-tuning", cfg, TEMPLATE, ["positive", "negative"])
    ids = bb.tokenizer("table : name", add_special_tokens=False).input_ids
    out = bb.model(torch.tensor([ids]), use_cache=True)
    k_last = list(out.past_key_values)[0][0][0, :, -2:]  # layer 0 keys of the last two words, in context
    torch.testing.assert_close(task.module.prefix[0, 0], k_last.float())


def test_masked_models_get_a_clear_error():
    with pytest.raises(TasktuneError, match="causal"):
        build_task(tiny_backbone("bert"), "prefix-tuning", PrefixTuningConfig(), TEMPLATE, ["positive", "negative"])
