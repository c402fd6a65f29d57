import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.engine.encoding import TemplateEncoder
from tasktune.methods import PromptTuningConfig, ZeroShotConfig
from tasktune.templates import Template, Verbalizer


def ex(text, label=None):
    return Example({"text": text}, label, "test:1")


def test_backbone_is_frozen(any_backbone):
    assert not any(p.requires_grad for p in any_backbone.model.parameters())


@pytest.mark.parametrize("init", ["random-uniform", "sampled-vocab", "class-label", "text"])
def test_prompt_tuning_gets_gradients_on_every_family(any_backbone, init):
    cfg = PromptTuningConfig(prompt_length=4, init=init, init_text="a great film")
    task = build_task(any_backbone, "prompt-tuning", cfg, "review : {text} sentiment :{answer}",
                      ["positive", "negative"])
    batch, labels = task.batch([ex("the movie was great", "positive"), ex("a dull film", "negative")])
    scores = task.scores(batch)
    assert scores.shape == (2, 2)
    task.objective.loss(scores, labels).backward()
    assert task.module.prompt.grad is not None and task.module.prompt.grad.abs().sum() > 0
    assert not any(p.grad is not None for p in any_backbone.model.parameters())


def test_multi_token_verbalizer_scores_every_label(any_backbone):
    task = build_task(any_backbone, "prompt-tuning", PromptTuningConfig(prompt_length=2),
                      "review : {text} sentiment :{answer}", ["pos", "neg"],
                      verbalizer={"pos": " very good", "neg": " bad"})
    assert not task.encoder.single_token
    batch, labels = task.batch([ex("great plot", "pos"), ex("awful food", "neg")])
    assert len(batch) == 4  # one row per label
    assert task.scores(batch).shape == (2, 2)


def test_single_token_scores_match_full_forward(gpt2_backbone):
    """The answer-position-only path equals reading the full logits (plain reference path)."""
    task = build_task(gpt2_backbone, "zero-shot", ZeroShotConfig(), "review : {text} sentiment :{answer}",
                      ["positive", "negative"])
    examples = [ex("the movie was great"), ex("a really dull and boring film that i hated")]
    batch, _ = task.batch(examples)
    fast = task.scores(batch)
    tok = gpt2_backbone.tokenizer
    for i, e in enumerate(examples):
        ids = tok("review : " + e.fields["text"] + " sentiment :", return_tensors="pt").input_ids
        logits = gpt2_backbone.model(ids).logits[0, -1].float().log_softmax(-1)
        ref = logits[[tok.convert_tokens_to_ids("positive"), tok.convert_tokens_to_ids("negative")]]
        torch.testing.assert_close(fast[i], ref, atol=1e-4, rtol=1e-4)


def test_soft_slots_anywhere_in_template(gpt2_backbone):
    tmpl = Template.parse("[P:2] review : {text} [P:3] sentiment :{answer}")
    enc = TemplateEncoder(tmpl, Verbalizer.default(["positive", "negative"]), gpt2_backbone.tokenizer, "causal")
    row = enc.classification_rows(ex("great film"))[0]
    assert row.soft[:2] == [0, 1] and sorted(s for s in row.soft if s >= 0) == [0, 1, 2, 3, 4]
    assert row.score_pos == [len(row.ids) - 1]


def test_masked_answer_slot_is_mask_token():
    from conftest import tiny_backbone

    bb = tiny_backbone("bert")
    enc = TemplateEncoder(Template.parse("{text} it was{answer} ."), Verbalizer.default(["good", "bad"]),
                          bb.tokenizer, "masked")
    row = enc.classification_rows(ex("great film"))[0]
    assert row.ids[row.score_pos[0]] == bb.tokenizer.mask_token_id
    assert row.ids[0] == bb.tokenizer.cls_token_id and row.ids[-1] == bb.tokenizer.sep_token_id


def test_truncation_cuts_the_input_not_the_template(gpt2_backbone):
    tmpl = Template.parse("review : {text} sentiment :{answer}")
    enc = TemplateEncoder(tmpl, Verbalizer.default(["positive", "negative"]), gpt2_backbone.tokenizer, "causal",
                          max_length=10)
    row = enc.classification_rows(ex(" ".join(["great"] * 50)))[0]
    tok = gpt2_backbone.tokenizer
    assert len(row.ids) <= 10
    assert tok.convert_ids_to_tokens(row.ids[-2:]) == ["sentiment", ":"]
