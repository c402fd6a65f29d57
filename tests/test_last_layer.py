"""The last layer at the read positions computes what the full forward reads there, logits and
input gradients, with padding and with a KV cache in front; it steps aside where it must."""

import copy

import pytest
import torch
from transformers import DynamicCache, Qwen3Config, Qwen3ForCausalLM

from tasktune.engine.cache_keyword import CACHE
from tasktune.engine.last_layer import (
    KEYWORD,
    at_read_positions,
    plain_last_layer,
    read_positions_last_layer,
)

from conftest import INIT, V, tiny_backbone, tiny_model

IDS = torch.tensor([[7, 8, 9, 10, 11, 12], [12, 13, 14, 15, 16, 0]])
MASK = torch.tensor([[1] * 6, [1] * 5 + [0]])
POS = torch.tensor([[5, 3], [4, 0]])


def _qwen3():
    torch.manual_seed(0)
    cfg = Qwen3Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, head_dim=8, vocab_size=V, max_position_embeddings=128,
                      initializer_range=INIT)
    return Qwen3ForCausalLM(cfg)


def _model(kind):
    return _qwen3() if kind == "qwen3" else tiny_model(kind)[0]


def _read(model, pruned: bool, cache_len: int = 0):
    """Logits at POS and the input-embedding gradient of their squared sum."""
    extra = {}
    ids, mask = IDS, MASK
    if cache_len:
        cache = DynamicCache(config=model.config)
        with torch.no_grad():
            model(input_ids=IDS[:, :cache_len], use_cache=True, **{CACHE: cache})
        ids, extra = IDS[:, cache_len:], {CACHE: cache}
        mask = torch.ones(2, IDS.shape[1], dtype=torch.long)
    emb = model.get_input_embeddings()(ids).detach().requires_grad_()
    pos = POS.clamp(max=ids.shape[1] - 1)
    keep = {"logits_to_keep": 0, KEYWORD: pos} if pruned else {"logits_to_keep": pos}
    logits = model(inputs_embeds=emb, attention_mask=mask, use_cache=False, **keep, **extra).logits
    logits.double().square().sum().backward()
    return logits.detach(), emb.grad


@pytest.mark.parametrize("kind", ["llama", "qwen3"])
@pytest.mark.parametrize("cache_len", [0, 2])
def test_the_read_rows_match_the_full_forward_logits_and_gradients(kind, cache_len):
    reference = _model(kind).double().requires_grad_(False)
    model = copy.deepcopy(reference)
    assert read_positions_last_layer(model) and at_read_positions(model)
    for a, b in zip(_read(reference, False, cache_len), _read(model, True, cache_len), strict=True):
        assert a.abs().sum() > 0
        torch.testing.assert_close(b, a, atol=1e-10, rtol=1e-8)


def test_without_the_keyword_the_layer_is_the_models_own():
    reference = tiny_model("llama")[0].requires_grad_(False)
    model = copy.deepcopy(reference)
    read_positions_last_layer(model)
    torch.testing.assert_close(model(input_ids=IDS, attention_mask=MASK).logits,
                               reference(input_ids=IDS, attention_mask=MASK).logits)


def test_the_last_layer_really_runs_on_the_read_rows_only():
    model = tiny_model("llama")[0].requires_grad_(False)
    read_positions_last_layer(model)
    seen = []
    hook = model.model.layers[-1].mlp.register_forward_hook(lambda m, i, o: seen.append(i[0].shape[1]))
    model(input_ids=IDS, attention_mask=MASK, logits_to_keep=0, **{KEYWORD: POS})
    hook.remove()
    assert seen == [POS.shape[1]]


def test_other_models_and_plain_are_left_alone():
    for kind in ("gpt2", "bert", "t5", "gemma3"):
        model = tiny_model(kind)[0]
        assert not read_positions_last_layer(model) and not at_read_positions(model)
    model = tiny_model("llama")[0].requires_grad_(False)
    read_positions_last_layer(model)
    assert plain_last_layer(model) and not at_read_positions(model)
    assert "forward" not in model.model.layers[-1].__dict__


def test_a_loaded_llama_backbone_scores_through_it():
    backbone = tiny_backbone("llama")
    assert at_read_positions(backbone.model)
    assert not at_read_positions(tiny_backbone("gpt2").model)


def test_tasktune_last_layer_0_keeps_the_whole_last_layer(monkeypatch):
    monkeypatch.setenv("TASKTUNE_LAST_LAYER", "0")
    assert not at_read_positions(tiny_backbone("llama").model)
