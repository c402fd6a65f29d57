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


@pytest.mark.parametrize("encoder", ["lstm", "mlp", "identity"])
def test_artifact_folds_the_encoder_away_and_predicts_identically(tmp_path, encoder):
    from safetensors.torch import load_file

    bb = tiny_backbone("gpt2")
    task = build_task(bb, "p-tuning", PTuningConfig(encoder=encoder), TEMPLATE, ["positive", "negative"], seed=1)
    save_task(task, tmp_path)
    stored = load_file(str(tmp_path / "weights.safetensors"))
    assert set(stored) == {"prompt"} and stored["prompt"].shape == (5, 32)  # the encoder's output only
    loaded, _ = load_task(tmp_path, backbone=bb)
    assert loaded.module.folded and loaded.module.trainable_parameters() == 5 * 32
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()))
    torch.testing.assert_close(loaded.module._frozen, stored["prompt"])  # inference used the stored output


def test_artifact_written_with_its_encoder_still_loads(tmp_path):
    """Artifacts from before the fold carry embedding + encoder.* beside the prompt."""
    import json

    from safetensors.torch import save_file

    from tasktune.artifact.files import sha256_of

    bb = tiny_backbone("gpt2")
    task = build_task(bb, "p-tuning", PTuningConfig(encoder="lstm"), TEMPLATE, ["positive", "negative"], seed=1)
    save_task(task, tmp_path)
    old = {k: v.detach().float().contiguous() for k, v in task.module.state_dict().items()}
    weights, meta = tmp_path / "weights.safetensors", tmp_path / "tasktune.json"
    save_file({**old, "prompt": task.module.export_tensors()["prompt"]}, str(weights),
              {"format": "1", "method": "p-tuning"})
    m = json.loads(meta.read_text())
    m["weights"].update(bytes=weights.stat().st_size, sha256=sha256_of(weights))
    meta.write_text(json.dumps(m))
    loaded, _ = load_task(tmp_path, backbone=bb)
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()))


def test_a_prompt_of_the_wrong_shape_is_one_clear_error():
    from tasktune import TasktuneError

    task = build_task(tiny_backbone("gpt2"), "p-tuning", PTuningConfig(encoder="mlp"), TEMPLATE,
                      ["positive", "negative"])
    with pytest.raises(TasktuneError, match=r"prompt of shape \(4, 32\) does not fit .* \(5, 32\)"):
        task.module.load_tensors({"prompt": torch.zeros(4, 32)})
    with pytest.raises(TasktuneError, match="no 'prompt' tensor"):
        task.module.load_tensors({"embedding": torch.zeros(5, 32)})


def test_training_leaves_the_folded_best_step_and_a_small_artifact(tmp_path):
    from safetensors.torch import load_file

    from tasktune.train import TrainConfig, train

    bb = tiny_backbone("gpt2")
    task = build_task(bb, "p-tuning", PTuningConfig(encoder="lstm"), TEMPLATE, ["positive", "negative"], seed=2)
    train(task, examples(), examples(), TrainConfig(max_steps=4, batch_size=4, eval_every=2, lr=1e-2), tmp_path,
          quiet=True)
    assert set(load_file(str(tmp_path / "weights.safetensors"))) == {"prompt"}
    loaded, _ = load_task(tmp_path, backbone=bb)
    torch.testing.assert_close(loaded.predict_scores(examples()), task.predict_scores(examples()))


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
