"""`--compile`: the compiled backbone gives eager's update, and the backbone comes back as it was.

One compile of a 2-layer model (tens of seconds on a 2-core CPU), shared by the tests below through
a module fixture: fp32, so compiled and eager must agree to rounding.
"""

import json

import pytest
import torch

from tasktune import TasktuneError
from tasktune.backbone.compiled import compiled
from tasktune.backbone.fused_projections import is_fused
from tasktune.backbone.lean_norm import is_lean
from tasktune.build import build_task
from tasktune.methods import PromptTuningConfig
from tasktune.train import TrainConfig, train
from test_cli import TEMPLATE, run
from test_train import examples

from conftest import save_tiny, tiny_backbone, toy_rows, write_jsonl


def lean_norms(model) -> int:
    return sum(is_lean(m) for m in model.modules())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The same 2 steps (3-row pieces, a dev evaluation at each step) eager and compiled."""
    out = {}
    for compile_ in (False, True):
        bb = tiny_backbone("llama")
        task = build_task(bb, "prompt-tuning", PromptTuningConfig(prompt_length=4), TEMPLATE,
                          ["positive", "negative"], seed=0)
        norms = lean_norms(bb.model)
        result = train(task, examples(12), examples(6), TrainConfig(max_steps=2, batch_size=12, eval_every=1,
                                                                      micro_batch_tokens=30, compile=compile_),
                       tmp_path_factory.mktemp(f"run-{compile_}"), quiet=True)
        out[compile_] = (task, result, norms)
    return out


def test_compiled_training_gives_the_eager_update(trained):
    (eager, r_eager, _), (comp, r_comp, _) = trained[False], trained[True]
    assert not torch.equal(eager.module.prompt, tiny_prompt())  # it trained
    torch.testing.assert_close(comp.module.prompt, eager.module.prompt, atol=1e-5, rtol=1e-4)
    assert r_comp["best_dev_score"] == r_eager["best_dev_score"]


def test_the_backbone_is_eager_again_after_a_compiled_run(trained):
    task, _, norms = trained[True]
    model = task.backbone.model
    assert norms > 0 and lean_norms(model) == norms  # the lean RMSNorms are back
    assert "forward" not in model.base_model.__dict__  # the class's own forward, not the compiled one
    fused = sum(is_fused(m) for m in model.modules())
    assert fused == 2 * 3  # 2 layers x q, k, v: the eager backbone runs fused q/k/v
    with compiled(model):  # the model's own graph is what inductor compiles (and caches)
        assert lean_norms(model) == 0 and "forward" in model.base_model.__dict__
        assert not any(is_fused(m) for m in model.modules())
        assert torch._dynamo.config.specialize_float  # floats as constants: no restarted analysis
    assert not torch._dynamo.config.specialize_float
    assert lean_norms(model) == norms and sum(is_fused(m) for m in model.modules()) == fused


def tiny_prompt():
    task = build_task(tiny_backbone("llama"), "prompt-tuning", PromptTuningConfig(prompt_length=4), TEMPLATE,
                      ["positive", "negative"], seed=0)
    return task.module.prompt


def test_compile_refuses_gradient_checkpointing():
    with pytest.raises(TasktuneError, match="--compile with --gradient-checkpointing"):
        TrainConfig(compile=True, gradient_checkpointing=True)


def test_compile_flag_from_the_command_line(tmp_path):
    """The README's `--compile` line, on a tiny model folder (one step, no evaluation: one graph)."""
    model = save_tiny("llama", tmp_path / "tiny-llama")
    write_jsonl(tmp_path / "data" / "train.jsonl", toy_rows(8))
    result, err = run("train", "--model", model, "--data", tmp_path / "data", "--output", tmp_path / "run",
                      "--template", TEMPLATE, "--max-steps", 1, "--batch-size", 8, "--prompt-length", 3,
                      "--dtype", "float32", "--dev-size", 0, "--quiet", "--compile")
    assert err is None and result.exit_code == 0
    meta = json.loads((tmp_path / "run" / "tasktune.json").read_text())
    assert meta["train_config"]["compile"] is True
