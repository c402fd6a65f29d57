import pytest
import torch

from tasktune.build import build_task
from tasktune.data.readers import Example
from tasktune.methods import PrefixTuningConfig, PromptTuningConfig, PTuningConfig, ZeroShotConfig
from tasktune.runtime import ensemble_predict, mixed_scores

from conftest import tiny_backbone, toy_rows

T = "review : {text} sentiment :{answer}"


def examples(n=6):
    return [Example({"text": r["text"]}, r["label"], f"toy:{i}") for i, r in enumerate(toy_rows(n))]


def test_a_mixed_batch_equals_each_task_alone():
    bb = tiny_backbone("llama")
    tasks = [build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), T, ["positive", "negative"], seed=1),
             build_task(bb, "p-tuning", PTuningConfig(encoder="mlp"), "[P:2] {text} [P:1] is it good ?{answer}",
                        ["yes", "no"], seed=2),
             build_task(bb, "zero-shot", ZeroShotConfig(), T, ["good", "bad", "neutral"])]
    exs = examples()
    items = [(i % 3, ex) for i, ex in enumerate(exs)]
    mixed = mixed_scores(tasks, items)
    for (ti, ex), got in zip(items, mixed, strict=True):
        alone = tasks[ti].predict_scores([ex])[0]
        torch.testing.assert_close(got, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma3"])  # rotary and learned positions
def test_prefix_tasks_of_different_lengths_share_a_pass_with_soft_prompt_tasks(kind):
    """Each row attends to its own task's prefix (left-padded to the longest, masked) with positions
    from its own prefix length: the scores equal each task run alone."""
    bb = tiny_backbone(kind)
    labels = ["positive", "negative"]
    tasks = [build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=8), T, labels, seed=1),
             build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=5, reparam=False), T, ["yes", "no"],
                        seed=2),
             build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), T, labels, seed=3),
             build_task(bb, "zero-shot", ZeroShotConfig(), "{text} ? it is{answer}", ["good", "bad"])]
    items = [(i % 4, ex) for i, ex in enumerate(examples(10))]
    mixed = mixed_scores(tasks, items)
    for (ti, ex), got in zip(items, mixed, strict=True):
        alone = tasks[ti].predict_scores([ex])[0]
        torch.testing.assert_close(got, alone, atol=1e-4, rtol=1e-4)
    # prefix ensembles ride on the same path
    assert len(ensemble_predict(tasks[:1] * 2, examples(2))) == 2


def test_prefix_tasks_on_encoder_decoders_do_not_mix():
    from tasktune.runtime.mixed import can_mix

    t5 = build_task(tiny_backbone("t5"), "prefix-tuning", PrefixTuningConfig(prefix_length=2, reparam_hidden=8), T,
                    ["positive", "negative"])
    assert not can_mix(t5)


def test_ensemble_votes():
    bb = tiny_backbone("gpt2")
    tasks = [build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=2), T, ["positive", "negative"],
                        seed=s) for s in range(3)]
    preds = ensemble_predict(tasks, examples(4))
    assert len(preds) == 4 and all(sum(p["votes"].values()) == 3 for p in preds)


@pytest.mark.parametrize("kind", ["llama", "gpt2", "gemma3"])
@pytest.mark.parametrize("beams", [1, 3])
def test_generation_tasks_decode_together_as_each_alone(kind, beams):
    from tasktune.runtime.mixed import mixed_generate

    bb = tiny_backbone(kind)
    gen = "table : {table} text :{answer}"
    tasks = [build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=3), gen, None, objective="generation",
                        seed=1),
             build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=4, reparam=False), gen, None,
                        objective="generation", seed=2),
             build_task(bb, "prefix-tuning", PrefixTuningConfig(prefix_length=1, reparam_hidden=8), gen, None,
                        objective="generation", seed=3),
             build_task(bb, "zero-shot", ZeroShotConfig(), "{table} :{answer}", None, objective="generation")]
    sources = ["name paris area city", "name london", "the food is good", "a city that is paris area"]
    items = [(i % 4, Example({"table": s})) for i, s in enumerate(sources + sources[::-1])]
    together = mixed_generate(tasks, items, beams=beams, max_new_tokens=5)
    alone = [tasks[ti].generate([ex], beams=beams, max_new_tokens=5)[0] for ti, ex in items]
    assert together == alone
    assert len(set(together)) > 1  # the tasks really decode differently
