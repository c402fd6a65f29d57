"""PEFT adapters in and out, checked against peft itself on tiny models: tasktune -> export -> PEFT
predicts the same label log-probabilities; PEFT-trained adapter -> import -> tasktune predicts as
PEFT did. Tolerance: 1e-4 on log-probabilities (fp32; the two run the same ops in other orders)."""

import json
import warnings
from contextlib import contextmanager

import pytest
import torch

pytest.importorskip("peft")
from peft import (  # noqa: E402
    LoraConfig,
    PeftModel,
    PrefixTuningConfig,
    PromptEncoderConfig,
    PromptTuningConfig,
    get_peft_model,
)
from typer.testing import CliRunner  # noqa: E402

from tasktune import TasktuneError  # noqa: E402
from tasktune.artifact.store import save_task  # noqa: E402
from tasktune.backbone import load_backbone  # noqa: E402
from tasktune.build import build_task, load_task  # noqa: E402
from tasktune.cli.app import app  # noqa: E402
from tasktune.data.readers import Example  # noqa: E402
from tasktune.interop.peft_adapter import read_adapter, to_peft, write_adapter  # noqa: E402
from tasktune.methods import METHODS  # noqa: E402

from conftest import save_tiny, tiny_backbone, toy_rows, write_jsonl  # noqa: E402

TEMPLATE = "review : {text} sentiment :{answer}"
LABELS = ["positive", "negative"]
TEXTS = ["the movie was great", "a dull film", "really fun acting", "hated the plot"]
TOL = 1e-4
runner = CliRunner()

METHOD_CONFIGS = {
    "prompt-tuning": {"prompt_length": 4},
    "p-tuning": {"prompt_length": 4, "encoder": "mlp"},
    "prefix-tuning": {"prefix_length": 3, "reparam": True, "reparam_hidden": 16},
}


@contextmanager
def peft_calls():
    """PEFT's prefix tuning still passes `past_key_values=` to the model (deprecated in transformers 5.24);
    the suite turns that warning into an error for tasktune's own code, not for PEFT's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`past_key_values` is deprecated", FutureWarning)
        yield


def label_logprobs(model, tokenizer, texts, label_ids) -> torch.Tensor:
    """[N, labels] log-probabilities of each label word after the rendered prompt, one row per forward."""
    out = []
    for text in texts:
        ids = tokenizer(f"review : {text} sentiment :", return_tensors="pt").input_ids
        with torch.no_grad(), peft_calls():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0, -1].float()
        out.append(torch.log_softmax(logits, -1)[label_ids])
    return torch.stack(out)


def tasktune_logprobs(task, texts) -> torch.Tensor:
    return task.predict_scores([Example({"text": t}, None, f"row {i}") for i, t in enumerate(texts)], batch_size=2)


def label_ids(tokenizer) -> list[int]:
    return [tokenizer(w, add_special_tokens=False).input_ids[0] for w in LABELS]


def peft_base(kind, folder=None):
    from transformers import AutoModelForCausalLM

    if folder is not None:
        return AutoModelForCausalLM.from_pretrained(folder)
    from conftest import tiny_model

    return tiny_model(kind)[0]


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("method", list(METHOD_CONFIGS))
def test_export_then_peft_predicts_the_same(kind, method, tmp_path):
    backbone = tiny_backbone(kind)
    config = METHODS[method].config_class(**METHOD_CONFIGS[method])
    task = build_task(backbone, method, config, TEMPLATE, LABELS, seed=3)
    ours = tasktune_logprobs(task, TEXTS)

    adapter = to_peft(task)
    write_adapter(adapter, tmp_path / "adapter")
    peft_model = PeftModel.from_pretrained(peft_base(kind), tmp_path / "adapter").eval()
    theirs = label_logprobs(peft_model, backbone.tokenizer, TEXTS, label_ids(backbone.tokenizer))
    assert torch.allclose(ours, theirs, atol=TOL), (ours - theirs).abs().max()
    assert ours.argmax(-1).tolist() == theirs.argmax(-1).tolist()
    # and the prompt mattered: PEFT's base model alone scores differently
    base = label_logprobs(peft_base(kind), backbone.tokenizer, TEXTS, label_ids(backbone.tokenizer))
    assert (base - theirs).abs().max() > 1e-3


def train_peft(model, cfg, tokenizer, steps=3):
    """A few real optimizer steps on the toy sentences, so the adapter is not its init."""
    model = get_peft_model(model, cfg)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    ids = tokenizer("review : the movie was great sentiment : positive", return_tensors="pt").input_ids
    for _ in range(steps):
        with peft_calls():
            loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


PEFT_CONFIGS = {
    "prompt-tuning": lambda: PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4),
    "p-tuning": lambda: PromptEncoderConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, encoder_hidden_size=16),
    "prefix-tuning": lambda: PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=3, prefix_projection=True,
                                                encoder_hidden_size=16),
}


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
@pytest.mark.parametrize("method", list(PEFT_CONFIGS))
def test_peft_trained_adapter_imports_and_predicts_as_peft(kind, method, tmp_path):
    folder = save_tiny(kind, tmp_path / f"tiny-{kind}")
    backbone = load_backbone(str(folder), dtype="float32")
    tok = backbone.tokenizer
    peft_model = train_peft(peft_base(kind, folder), PEFT_CONFIGS[method](), tok)
    peft_model.save_pretrained(tmp_path / "peft")
    theirs = label_logprobs(PeftModel.from_pretrained(peft_base(kind, folder), tmp_path / "peft").eval(), tok,
                            TEXTS, label_ids(tok))
    data = write_jsonl(tmp_path / "dev.jsonl", toy_rows(8))
    result = runner.invoke(app, ["import", str(tmp_path / "peft"), "--output", str(tmp_path / "run"),
                                 "--data", str(data), "--template", TEMPLATE, "--dtype", "float32"])
    assert result.exit_code == 0, result.exception
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["method"] == method and summary["train"]["n"] == 8
    task, meta = load_task(tmp_path / "run", backbone=backbone)
    assert meta["imported_from"]["peft_type"] == PEFT_CONFIGS[method]().peft_type.value
    assert meta["base_model"]["fingerprint"] == backbone.fingerprint
    ours = tasktune_logprobs(task, TEXTS)
    assert torch.allclose(ours, theirs, atol=TOL), (ours - theirs).abs().max()


def test_cli_round_trip_carries_fingerprint_and_template(tmp_path):
    folder = save_tiny("llama", tmp_path / "tiny-llama")
    backbone = load_backbone(str(folder), dtype="float32")
    task = build_task(backbone, "prompt-tuning", METHODS["prompt-tuning"].config_class(prompt_length=5), TEMPLATE,
                      LABELS, seed=1)
    save_task(task, tmp_path / "run")
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "peft", "--output",
                                 str(tmp_path / "peft")])
    assert result.exit_code == 0, result.exception
    cfg = json.loads((tmp_path / "peft" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == "PROMPT_TUNING" and cfg["base_model_name_or_path"] == str(folder)
    assert read_adapter(tmp_path / "peft").metadata["tasktune_base_fingerprint"] == backbone.fingerprint
    # back in with no --data: the template and labels travelled with it
    result = runner.invoke(app, ["import", str(tmp_path / "peft"), "--output", str(tmp_path / "back")])
    assert result.exit_code == 0, result.exception
    again, meta = load_task(tmp_path / "back", backbone=backbone)
    assert again.template.source == task.template.source and meta["labels"] == LABELS
    assert torch.allclose(tasktune_logprobs(again, TEXTS), tasktune_logprobs(task, TEXTS), atol=1e-6)


# ---- refusals: one line, nothing written ---------------------------------------------
def refused(args, tmp_path) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert isinstance(result.exception, TasktuneError), result.exception
    return str(result.exception)


def test_export_refuses_what_peft_cannot_express(tmp_path):
    gpt2 = load_backbone(str(save_tiny("gpt2", tmp_path / "tiny-gpt2")), dtype="float32")
    anchors = build_task(gpt2, "p-tuning", METHODS["p-tuning"].config_class(), "[P:2] {text} [P:2] sentiment :{answer}",
                         LABELS)
    with pytest.raises(TasktuneError, match="soft tokens inside the text"):
        to_peft(anchors)
    ft = build_task(gpt2, "fine-tuning", METHODS["fine-tuning"].config_class(), TEMPLATE, LABELS)
    with pytest.raises(TasktuneError, match="PEFT has no adapter for fine-tuning"):
        to_peft(ft)
    t5 = build_task(tiny_backbone("t5"), "prompt-tuning", METHODS["prompt-tuning"].config_class(prompt_length=2),
                    TEMPLATE, LABELS)
    with pytest.raises(TasktuneError, match="causal LMs"):
        to_peft(t5)
    save_task(anchors, tmp_path / "run")
    msg = refused(["export", tmp_path / "run", "--output", tmp_path / "out"], tmp_path)
    assert "anchors" in msg and not (tmp_path / "out").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    msg = refused(["export", tmp_path / "run", "--output", tmp_path / "full"], tmp_path)
    assert "not empty" in msg and (tmp_path / "full" / "keep.txt").read_text() == "mine"
    assert "unknown --format" in refused(["export", tmp_path / "run", "--output", tmp_path / "o2", "--format", "x"],
                                         tmp_path)


def test_import_refuses_bad_adapters(tmp_path):
    folder = save_tiny("gpt2", tmp_path / "tiny-gpt2")
    other = save_tiny("llama", tmp_path / "tiny-llama")
    data = write_jsonl(tmp_path / "dev.jsonl", toy_rows(8))
    tok = load_backbone(str(folder), dtype="float32").tokenizer

    lora = get_peft_model(peft_base("gpt2", folder), LoraConfig(r=2, target_modules=["c_attn"]))
    lora.save_pretrained(tmp_path / "lora")
    base = ["--output", tmp_path / "run", "--data", data, "--template", TEMPLATE, "--dtype", "float32"]
    assert "'peft_type' is 'LORA'" in refused(["import", tmp_path / "lora", *base], tmp_path)

    prompt = train_peft(peft_base("gpt2", folder), PEFT_CONFIGS["prompt-tuning"](), tok, steps=1)
    prompt.save_pretrained(tmp_path / "prompt")
    msg = refused(["import", tmp_path / "prompt", *base, "--model", other], tmp_path)
    assert "base_model_name_or_path" in msg and "--force" in msg
    from safetensors.torch import save_file

    wide = tmp_path / "wide"  # an adapter from a model 48 wide, named for none
    wide.mkdir()
    cfg = json.loads((tmp_path / "prompt" / "adapter_config.json").read_text())
    (wide / "adapter_config.json").write_text(json.dumps({**cfg, "base_model_name_or_path": None, "token_dim": 48}))
    save_file({"prompt_embeddings": torch.zeros(4, 48)}, str(wide / "adapter_model.safetensors"))
    assert "hidden size 32" in refused(["import", wide, *base, "--model", folder, "--force"], tmp_path)
    weights = tmp_path / "prompt" / "adapter_model.safetensors"
    weights.rename(tmp_path / "prompt" / "adapter_model.bin")
    assert "pickle" in refused(["import", tmp_path / "prompt", *base, "--model", folder], tmp_path)
    assert "no adapter_config.json" in refused(["import", tmp_path, *base, "--model", folder], tmp_path)
    (tmp_path / "prompt" / "adapter_model.bin").rename(weights)
    assert "--data FILE is needed" in refused(["import", tmp_path / "prompt", "--output", tmp_path / "run",
                                               "--model", folder], tmp_path)
    bad_template = ["--output", tmp_path / "run", "--data", data, "--template", "[P:2] " + TEMPLATE]
    assert "leave [P:n] out" in refused(["import", tmp_path / "prompt", *bad_template, "--model", folder], tmp_path)
    assert not (tmp_path / "run").exists()
