import pytest
import torch

from tasktune.data.readers import Example
from tasktune.methods import ZeroShotConfig
from tasktune.task import build_task

from conftest import tiny_backbone

LONG = "the film was great . " * 10


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_shared_prefix_kv_reuse_matches_full_forward(kind):
    bb = tiny_backbone(kind)
    task = build_task(bb, "zero-shot", ZeroShotConfig(), LONG + "review : {text} sentiment :{answer}",
                      ["positive", "negative"])
    rows = [Example({"text": t}) for t in ["a dull film", "loved it really", "bad", "the plot is very fun and lovely"]]
    with torch.no_grad():
        batch, _ = task.batch(rows)
        plain = task.objective.scores(bb, task.module(bb, batch), batch)
    with torch.inference_mode():
        cached = task.scores(batch)  # computes the prefix KV
        again = task.scores(task.batch(rows[1:2])[0])  # one row: reuses the stored prefix
    assert task.prefix_cache.ids is not None and len(task.prefix_cache.ids) >= 32
    torch.testing.assert_close(cached, plain, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(again[0], plain[1], atol=1e-4, rtol=1e-4)
