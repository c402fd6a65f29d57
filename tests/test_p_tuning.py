import pytest
import torch

from tasktune.artifact import save_task
from tasktune.build import build_task, load_task
from tasktune.data.readers import Example
from tasktune.methods import PTuningConfig

from conftest import tiny_backbone, toy_rows

TEMPLATE = "[P:2] review : {text} [P:2] sentiment [P:1]:{answer}"


def examples():
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(8))]


@pytest.mark.parametrize("encoder", ["lstm", "mlp", "identity"])
@pytest.mark.parametrize("kind", ["llama", "bert", "bart"])
def test_encoder_gets_gradients_and_backbone_none(kind, encoder):
    bb = tiny_backbone(kind)
    task = build_task(bb, "p-tuning", PTuningConfig(encoder=encoder), TEMPLATE, ["positive", "negative"])
    assert task.template.n_soft == 5  # the template's own slots, nothing prepended
    task.module.train()
    batch, labels = task.batch(examples())
    task.objective.loss(task.scores(batch), labels).backward()
    assert task.module.embedding.grad.abs().sum() > 0
    if encoder != "identity":
        assert all(p.grad is not None for p in task.module.encoder.parameters())
    assert not any(p.grad is not None for p in bb.model.parameters())


def test_artifact_holds_encoder_output_and_predicts_identically(tmp_path):
    bb = tiny_backbone("gpt2")
    task = build_task(bb, "p-tuning", PTuningConfig(encoder="lstm"), TEMPLATE, ["positive", "negative"], seed=1)
    save_task(task, tmp_path)
    loaded, _ = load_task(tmp_path, backbone=bb)
    assert loaded.module._frozen.shape == (5, 32)
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()))
    assert loaded.module._frozen is not None  # inference used the stored output, not the encoder
    loaded.module.train()
    assert loaded.module._frozen is None


def test_tune_backbone_trains_lm_with_its_own_learning_rate(tmp_path):
    from tasktune.train import TrainConfig, train

    bb = tiny_backbone("gpt2")
    cfg = PTuningConfig(encoder="mlp", tune_backbone=True, backbone_lr=1e-4)
    task = build_task(bb, "p-tuning", cfg, TEMPLATE, ["positive", "negative"])
    groups = task.module.param_groups(1e-3)
    assert [g["lr"] for g in groups] == [1e-3, 1e-4]
    before = bb.model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    train(task, examples(), examples(), TrainConfig(max_steps=2, batch_size=4, eval_every=2), tmp_path, quiet=True)
    assert not torch.allclose(before, bb.model.transformer.h[0].mlp.c_fc.weight)
    assert (tmp_path / "weights.safetensors").exists()  # tied weights saved without error
    assert type(task.module).needs_fp32(cfg)
    assert not type(task.module).needs_fp32(PTuningConfig())


@pytest.mark.parametrize("encoder", ["identity", "mlp"])
def test_evaluating_then_training_again_keeps_the_state_dict_clean(encoder):
    """The identity encoder returns its Parameter itself: the cached eval output must not become a
    registered parameter (it did: "_frozen" in the state_dict broke loading the best checkpoint)."""
    task = build_task(tiny_backbone("gpt2"), "p-tuning", PTuningConfig(encoder=encoder), TEMPLATE,
                      ["positive", "negative"])
    names = set(task.module.state_dict())
    task.predict_scores(examples())
    assert set(task.module.state_dict()) == names
    assert len(task.module.trainable()) == len(list(task.module.encoder.parameters())) + 1
    task.module.train()
    task.module.load_tensors(task.module.export_tensors())
