"""The fast path trains to what a plain reference path trains to, from the same seed and data.

Fast: tasktune's trainer (length-bucketed batches, the prompt run once per batch, answer-only logits, fused AdamW, the
CPU attention kernel). Reference: tasktune.reference (transformers' plain forward, full logits,
one example at a time, torch's default AdamW). Same tiny model in fp32, same batches.
"""

import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import PromptTuningConfig
from tasktune.reference import ReferencePromptTuning, trainer_batches
from tasktune.train import TrainConfig, train

from conftest import tiny_backbone, toy_rows

LABELS = ["positive", "negative"]


def text(ex: Example) -> str:
    return f"review : {ex.fields['text']} sentiment :"


def test_fast_path_trains_like_the_reference(tmp_path):
    bb = tiny_backbone("llama")
    examples = [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(24))]
    task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=8), "review : {text} sentiment :{answer}",
                      LABELS, seed=3)
    ref = ReferencePromptTuning(bb.model, bb.tokenizer, task.module.prompt, [" " + w for w in LABELS])
    labels = [LABELS.index(ex.label) for ex in examples]
    # before training: the same label distribution for every example (padding, batching and the
    # answer-only head change nothing)
    with torch.no_grad():
        torch.testing.assert_close(torch.log_softmax(task.predict_scores(examples, batch_size=8), -1),
                                   torch.log_softmax(ref.scores([text(ex) for ex in examples]), -1),
                                   atol=1e-5, rtol=1e-5)
    cfg = TrainConfig(max_steps=12, batch_size=6, lr=0.3, eval_every=0, seed=5)
    init = task.module.prompt.detach().clone()
    steps = trainer_batches(task, examples, cfg.batch_size, cfg.seed, cfg.max_steps)
    train(task, examples, examples, cfg, tmp_path / "run", quiet=True)
    losses = ref.train([([text(ex) for ex in b], [LABELS.index(ex.label) for ex in b]) for b in steps], cfg.lr,
                       cfg.weight_decay, cfg.warmup_ratio, cfg.max_grad_norm)
    assert losses[-1] < losses[0] and (ref.prompt - init).abs().max() > 0.1  # not a trivial comparison
    torch.testing.assert_close(task.module.prompt.detach(), ref.prompt.detach(), atol=1e-4, rtol=1e-4)
    fast_acc = task.evaluate(examples)["accuracy"]
    assert fast_acc == ref.accuracy([text(ex) for ex in examples], labels)
