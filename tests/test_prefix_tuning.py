import pytest
import torch

from tasktune import TasktuneError
from tasktune.artifact import save_task
from tasktune.build import build_task, load_task
from tasktune.data.readers import Example
from tasktune.engine.cache_keyword import cache_of
from tasktune.methods import PrefixTuningConfig
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

TEMPLATE = "review : {text} sentiment :{answer}"


def examples(n=16):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


# slots: layers (causal), self-attention per layer (BERT), encoder + decoder + cross per layer (T5, BART)
SLOTS = {"gpt2": 2, "llama": 2, "bert": 2, "t5": 6, "bart": 6}
MASKED_TEMPLATE = "review : {text} sentiment : {answer} ."


@pytest.mark.parametrize("kind", list(SLOTS))
@pytest.mark.parametrize("reparam", [True, False])
def test_prefix_reaches_every_layer_and_trains(kind, reparam, tmp_path):
    bb = tiny_backbone(kind)
    template = MASKED_TEMPLATE if kind == "bert" else TEMPLATE
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam=reparam, reparam_hidden=16),
                      template, ["positive", "negative"])
    slots, kv_heads, head_dim = task.module.geometry
    assert slots == SLOTS[kind]
    assert task.module.prefix_tensor().shape == (slots, 2, kv_heads, 3, head_dim)
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
    if task.module.slots is not None:  # every attention slot is reached, each with its own prefix
        from tasktune.engine.attention_prefix import KEYWORD

        inputs = task.module(bb, batch)
        inputs[KEYWORD].shapes = {}  # records every module that looked its prefix up
        with torch.no_grad():
            task.scores_from_inputs(inputs, batch)
        assert set(inputs[KEYWORD].shapes) == set(task.module.slots) and len(set(task.module.slots)) == slots
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
    k_last = list(cache_of(out))[0][0][0, :, -2:]  # layer 0 keys of the last two words, in context
    torch.testing.assert_close(task.module.prefix[0, 0], k_last.float())


@pytest.mark.parametrize("kind", ["bert", "t5", "bart"])
def test_attention_prefix_same_in_sdpa_and_eager_and_respects_padding(kind):
    """The prefix-aware wrapper widens boolean (sdpa) and additive (eager) masks alike, and T5's
    position bias; a padded row scores as it does alone."""
    bb = tiny_backbone(kind)
    template = MASKED_TEMPLATE if kind == "bert" else TEMPLATE
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam=False), template,
                      ["positive", "negative"], seed=1)
    with torch.no_grad():
        task.module.prefix.normal_(0, 50.0)
    exs = [Example({"text": "the movie was really great and very fun"}, None, "a"),
           Example({"text": "dull"}, None, "b")]
    sdpa = task.predict_scores(exs, batch_size=2)
    alone = task.predict_scores(exs[1:], batch_size=1)
    torch.testing.assert_close(sdpa[1:], alone, atol=1e-5, rtol=1e-5)
    from tasktune.engine.attention_prefix import install

    install(bb.model, base="eager")
    assert bb.model.config._attn_implementation == "tasktune_eager"
    torch.testing.assert_close(task.predict_scores(exs, batch_size=2), sdpa, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", ["t5", "bart"])
def test_decoder_prefix_keeps_causality(kind):
    """Changing a later decoder token leaves earlier positions' logits alone (the wrapper builds the
    causal mask itself when transformers leaves it to sdpa's is_causal)."""
    bb = tiny_backbone(kind)
    task = build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam=False), TEMPLATE,
                      ["positive", "negative"], seed=1)
    with torch.no_grad():
        task.module.prefix.normal_(0, 50.0)
    batch, _ = task.batch(examples(1))
    inputs = task.module(bb, batch)
    dec = torch.tensor([[6, 9, 10, 11]])
    with torch.no_grad():
        a = bb.model(**inputs, decoder_input_ids=dec).logits
        b = bb.model(**inputs, decoder_input_ids=torch.tensor([[6, 9, 10, 20]])).logits
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_encoder_decoder_text_init_uses_real_activations():
    bb = tiny_backbone("bart")
    cfg = PrefixTuningConfig(prefix_length=2, reparam=False, prefix_init="text", prefix_init_text="table : name")
    task = build_task(bb, "prefix-tuning", cfg, TEMPLATE, ["positive", "negative"])
    ids = torch.tensor([bb.tokenizer("table : name", add_special_tokens=False).input_ids])
    enc0 = bb.model.model.encoder.layers[0].self_attn
    with torch.no_grad():
        hidden = bb.model.model.encoder.embed_positions(ids) + bb.model.model.encoder.embed_tokens(ids)
        hidden = bb.model.model.encoder.layernorm_embedding(hidden)
        k = enc0.k_proj(hidden).view(1, 3, 2, 16).transpose(1, 2)
    torch.testing.assert_close(task.module.prefix[0, 0], k[0, :, -2:])


def test_unsupported_attention_gets_a_clear_error():
    bb = tiny_backbone("bert")
    bb.model.config._attn_implementation_internal = "flash_attention_2"
    with pytest.raises(TasktuneError, match="sdpa or eager"):
        build_task(bb, "prefix-tuning", PrefixTuningConfig(), MASKED_TEMPLATE, ["positive", "negative"])


def test_reparametrised_module_takes_its_exported_prefix_by_folding():
    """The trainer loads the best step's artifact back into the task; for a reparametrised prefix that
    artifact holds the folded prefix (it raised before)."""
    import torch

    from tasktune.build import build_task
    from tasktune.methods import PrefixTuningConfig

    from conftest import tiny_backbone

    task = build_task(tiny_backbone("llama"), "prefix-tuning", PrefixTuningConfig(prefix_length=3, reparam_hidden=8),
                      "review : {text} sentiment :{answer}", ["positive", "negative"], seed=1)
    before = task.module.prefix_tensor().detach().clone()
    task.module.load_tensors(task.module.export_tensors())
    assert task.module.direct and not hasattr(task.module, "mlp")
    torch.testing.assert_close(task.module.prefix_tensor(), before)
