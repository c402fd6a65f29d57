"""Tiny random models of each family (GPT-2, Llama, BERT, T5, BART) and a word-level tokenizer.

No weights are downloaded: every model is built from a config here, seeded.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForMaskedLM,
    Gemma3ForCausalLM,
    Gemma3TextConfig,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from tasktune.backbone import Backbone

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

WORDS = """review sentiment positive negative neutral good bad great terrible movie film food the a an is was
it this that and or not very fun dull boring lovely awful text label answer question yes no maybe
born in paris london city table name area : . , ? ! great plot acting actor loved hated really""".split()
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]


def tiny_tokenizer(family: str = "causal") -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if family == "masked":
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    elif family == "seq2seq":
        tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", mask_token="[MASK]",
                                   cls_token="[CLS]", sep_token="[SEP]", bos_token="<s>", eos_token="</s>")


V = len(SPECIAL) + len(WORDS)


# a wider init than the default 0.02, so a 2-layer random model's output depends on its input
INIT = 0.2


def tiny_model(kind: str):
    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=32, vocab_size=V, n_positions=128,
                                          initializer_range=INIT, bos_token_id=5, eos_token_id=6)), "causal"
    if kind == "llama":
        cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=V, max_position_embeddings=128, initializer_range=INIT)
        return LlamaForCausalLM(cfg), "causal"
    if kind == "gemma3":  # sliding-window layers (window 4, shorter than most test rows) beside full ones
        cfg = Gemma3TextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=8, vocab_size=V, max_position_embeddings=128,
                               sliding_window=4, layer_types=["sliding_attention", "full_attention"],
                               initializer_range=INIT)
        return Gemma3ForCausalLM(cfg), "causal"
    if kind == "bert":
        cfg = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                         vocab_size=V, max_position_embeddings=128, initializer_range=INIT)
        return BertForMaskedLM(cfg), "masked"
    if kind == "t5":
        cfg = T5Config(d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, vocab_size=V,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=6, initializer_factor=INIT / 0.02)
        return T5ForConditionalGeneration(cfg), "seq2seq"
    if kind == "bart":
        cfg = BartConfig(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
                         decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, vocab_size=V,
                         max_position_embeddings=128, pad_token_id=0, bos_token_id=5, eos_token_id=6,
                         decoder_start_token_id=6, forced_eos_token_id=None, init_std=INIT)
        return BartForConditionalGeneration(cfg), "seq2seq"
    raise ValueError(kind)


FAMILY_KINDS = ["gpt2", "llama", "bert", "t5", "bart"]


def tiny_backbone(kind: str) -> Backbone:
    model, family = tiny_model(kind)
    return Backbone(model=model, tokenizer=tiny_tokenizer(family), name=f"tiny-{kind}", family=family)


@pytest.fixture(params=FAMILY_KINDS)
def any_backbone(request) -> Backbone:
    return tiny_backbone(request.param)


@pytest.fixture
def gpt2_backbone() -> Backbone:
    return tiny_backbone("gpt2")


def save_tiny(kind: str, folder: Path) -> Path:
    """Write a tiny model + tokenizer as a local folder (the offline stand-in for a hub id)."""
    model, family = tiny_model(kind)
    model.save_pretrained(folder)
    tiny_tokenizer(family).save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def toy_rows(n: int = 24) -> list[dict]:
    good = ["the movie was great", "a lovely film", "really fun acting", "loved the plot", "very good food"]
    bad = ["the movie was terrible", "a dull film", "really boring acting", "hated the plot", "very bad food"]
    rows = []
    for i in range(n):
        pool, label = (good, "positive") if i % 2 == 0 else (bad, "negative")
        rows.append({"text": pool[(i // 2) % len(pool)], "label": label})
    return rows
