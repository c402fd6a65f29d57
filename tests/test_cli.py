"""The CLI contract and its errors, on a tiny local model folder (the offline stand-in for a hub id)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from tasktune import TasktuneError
from tasktune.cli.app import app

from conftest import save_tiny, toy_rows, write_jsonl

runner = CliRunner()
TEMPLATE = "review : {text} sentiment :{answer}"


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny("gpt2", tmp_path_factory.mktemp("model") / "tiny-gpt2")


@pytest.fixture
def data_dir(tmp_path):
    write_jsonl(tmp_path / "data" / "train.jsonl", toy_rows(24))
    write_jsonl(tmp_path / "data" / "dev.jsonl", toy_rows(8))
    return tmp_path / "data"


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    if isinstance(result.exception, TasktuneError):
        return result, str(result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result, None


def train_args(tiny_dir, data_dir, out, *extra):
    return ["train", "--model", tiny_dir, "--data", data_dir, "--output", out, "--template", TEMPLATE,
            "--max-steps", 4, "--batch-size", 8, "--prompt-length", 3, "--dtype", "float32", "--quiet", *extra]


def test_train_eval_predict(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    result, err = run(*train_args(tiny_dir, data_dir, out))
    assert err is None and result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4 and summary["trainable_parameters"] == 3 * 32
    meta = json.loads((out / "tasktune.json").read_text())
    assert meta["base_model"]["name"] == str(tiny_dir) and meta["template"].startswith("[P:3]")

    result, err = run("eval", out, "--data", data_dir / "dev.jsonl", "--json")
    metrics = json.loads(result.stdout)
    assert {"accuracy", "n", "examples_per_second"} <= set(metrics) and metrics["n"] == 8

    result, _ = run("predict", out, "--text", "a lovely film")
    label, score = result.stdout.split()
    assert label in ("positive", "negative") and 0.5 <= float(score) <= 1

    result, _ = run("predict", out, "--data", data_dir / "dev.jsonl", "--json")
    assert len(result.stdout.strip().splitlines()) == 8


def test_target_score_from_the_command_line_ends_the_run_early(tiny_dir, data_dir, tmp_path):
    """The README's `--eval-every 25 --target-score 0.88` line: the run ends at the first evaluation reaching it."""
    result, err = run(*train_args(tiny_dir, data_dir, tmp_path / "run", "--max-steps", 20, "--eval-every", 2,
                                  "--target-score", 0.01))
    assert err is None and result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (tmp_path / "run" / "tasktune.json").is_file()


def test_existing_run_is_never_replaced_by_accident(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    run(*train_args(tiny_dir, data_dir, out))
    before = (out / "weights.safetensors").read_bytes()
    _, err = run(*train_args(tiny_dir, data_dir, out))
    assert err and "--overwrite" in err
    assert (out / "weights.safetensors").read_bytes() == before
    _, err = run(*train_args(tiny_dir, data_dir, out, "--overwrite", "--seed", 3))
    assert err is None


def test_zero_shot_json(tiny_dir, data_dir):
    result, err = run("zero-shot", "--model", tiny_dir, "--data", data_dir, "--template", TEMPLATE, "--json",
                      "--dtype", "float32")
    assert err is None and json.loads(result.stdout)["n"] == 8


@pytest.mark.parametrize("rows,needle", [
    ('{"text": "good", "label": "positive"}\n{"text": "bad", "label": \n', "train.jsonl:2: malformed JSON"),
    ('{"text": "good", "label": "positive"}\n{"text": "  ", "label": "negative"}\n', "train.jsonl:2: field 'text'"),
    ('{"text": "good", "label": "positive"}\n{"label": "negative"}\n', "train.jsonl:2: missing field 'text'"),
])
def test_bad_training_rows_name_file_and_line(tiny_dir, tmp_path, rows, needle):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").write_text(rows)
    _, err = run(*train_args(tiny_dir, tmp_path / "d", tmp_path / "out"))
    assert err and needle in err


def test_unknown_label_in_eval_names_the_row(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    run(*train_args(tiny_dir, data_dir, out))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "good", "label": "positive"},
                                               {"text": "meh", "label": "mixed"}])
    _, err = run("eval", out, "--data", bad, "--json")
    assert err and "bad.jsonl:2" in err and "'mixed'" in err


def test_missing_file_unknown_model_and_wrong_family(tmp_path, data_dir):
    _, err = run("zero-shot", "--model", tmp_path / "nope", "--data", data_dir)
    assert err and "nope" in err
    _, err = run("eval", tmp_path, "--data", data_dir / "dev.jsonl")
    assert err and "not a tasktune artifact" in err
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "vit")
    _, err = run("zero-shot", "--model", tmp_path / "vit", "--data", data_dir)
    assert err and "not a supported language model" in err


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tasktune.cli", "eval", str(tmp_path), "--data", "x.jsonl"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:")


def test_fewglue_presets_render_every_pattern():
    from tasktune.build import build_task
    from tasktune.data.readers import Example
    from tasktune.methods import ZeroShotConfig
    from tasktune.templates.fewglue import FEWGLUE_PRESETS

    from conftest import tiny_backbone

    bb = tiny_backbone("gpt2")
    fields = {"passage": "the film", "question": "is it good", "premise": "a film", "hypothesis": "it is good",
              "sentence1": "a film", "sentence2": "the film", "word": "film", "choice1": "a", "choice2": "b"}
    for preset in FEWGLUE_PRESETS.values():
        for pattern in preset.patterns:
            task = build_task(bb, "zero-shot", ZeroShotConfig(), pattern, list(preset.verbalizer), preset.verbalizer)
            batch, _ = task.batch([Example(fields, list(preset.verbalizer)[0], "x:1")])
            assert task.scores(batch).shape == (1, len(preset.verbalizer))


def test_preset_option_sets_template_and_verbalizer(tiny_dir, tmp_path):
    rows = [{"premise": "a film", "hypothesis": "it is good", "label": lab}
            for lab in ["entailment", "not_entailment"] * 4]
    write_jsonl(tmp_path / "rte" / "train.jsonl", rows)
    result, err = run("zero-shot", "--model", tiny_dir, "--data", tmp_path / "rte", "--preset", "rte",
                      "--pattern", 1, "--json", "--dtype", "float32")
    assert err is None, err
    assert json.loads(result.stdout)["template"].startswith('"{premise}"')


def test_copa_scores_each_choice_as_the_answer():
    import torch

    from tasktune.build import build_task
    from tasktune.data.readers import Example
    from tasktune.methods import ZeroShotConfig
    from tasktune.templates.fewglue import FEWGLUE_PRESETS

    from conftest import tiny_backbone

    bb = tiny_backbone("llama")
    preset = FEWGLUE_PRESETS["copa"]
    task = build_task(bb, "zero-shot", ZeroShotConfig(), preset.patterns[0], ["0", "1"], preset.verbalizer)
    ex = Example({"premise": "the film was dull", "question": "effect", "choice1": "i loved it",
                  "choice2": "i hated the film"}, "1", "copa:1")
    batch, labels = task.batch([ex])
    assert len(batch) == 2 and labels.tolist() == [1]  # one row per choice
    tok = bb.tokenizer
    assert batch.targets[1, : len(tok(" i hated the film").input_ids)].tolist() == tok(" i hated the film").input_ids
    scores = task.scores(batch)
    assert scores.shape == (1, 2) and torch.isfinite(scores).all()


@pytest.mark.parametrize("kind", ["t5", "bert"])
def test_prefix_tuning_on_encoder_models_trains_and_reloads(kind, data_dir, tmp_path):
    model = save_tiny(kind, tmp_path / f"tiny-{kind}")
    out = tmp_path / "run"
    template = "review : {text} sentiment : {answer} ." if kind == "bert" else TEMPLATE
    result, err = run("train", "--model", model, "--data", data_dir, "--output", out, "--template", template,
                      "--method", "prefix-tuning", "--prefix-length", 2, "--max-steps", 3, "--batch-size", 8,
                      "--quiet")
    assert err is None and result.exit_code == 0
    trained = json.loads(result.stdout.strip().splitlines()[-1])
    result, err = run("eval", out, "--data", data_dir / "dev.jsonl", "--json")
    assert err is None and json.loads(result.stdout)["accuracy"] == pytest.approx(trained["best_dev_score"])


@pytest.mark.parametrize("method", ["prefix-tuning", "prompt-tuning"])
def test_generation_commands_of_the_readme(tiny_dir, tmp_path, method):
    """train --objective generation, eval --beams, predict --text: the README's table-to-text lines."""
    rows = [{"table": f"name : {n} area : city", "text": f"the {n} is in the city"} for n in ("paris", "london")] * 6
    write_jsonl(tmp_path / "e2e" / "train.jsonl", rows)
    write_jsonl(tmp_path / "e2e" / "valid.jsonl", rows[:4])
    out = tmp_path / "gen"
    result, err = run("train", "--method", method, "--objective", "generation", "--data", tmp_path / "e2e",
                      "--output", out, "--model", tiny_dir, "--dtype", "float32", "--max-steps", 3, "--batch-size", 4,
                      "--prompt-length", 2, "--prefix-length", 2, "--quiet")
    assert err is None and result.exit_code == 0, result.stdout
    assert json.loads((out / "tasktune.json").read_text())["objective"] == "generation"
    result, err = run("eval", out, "--data", tmp_path / "e2e" / "valid.jsonl", "--json", "--beams", 2,
                      "--max-new-tokens", 4)
    assert err is None
    metrics = json.loads(result.stdout)
    assert {"bleu", "rouge_l", "tokens_per_second"} <= set(metrics) and metrics["n"] == 2  # grouped per source
    result, err = run("predict", out, "--text", "name : paris area : city", "--max-new-tokens", 4, "--beams", 1)
    assert err is None and result.exit_code == 0 and isinstance(result.stdout, str)


def test_zero_shot_generation_from_the_cli(tiny_dir, tmp_path):
    rows = [{"table": f"name : {n}", "text": f"the {n}"} for n in ("paris", "london")] * 3
    write_jsonl(tmp_path / "e2e" / "train.jsonl", rows)
    write_jsonl(tmp_path / "e2e" / "valid.jsonl", rows[:2])
    result, err = run("zero-shot", "--objective", "generation", "--data", tmp_path / "e2e", "--model", tiny_dir,
                      "--dtype", "float32", "--beams", 1, "--max-new-tokens", 3, "--json")
    assert err is None, err
    metrics = json.loads(result.stdout)
    assert {"bleu", "rouge_l"} <= set(metrics) and metrics["n"] == 2


def test_eval_ensemble_of_runs(tiny_dir, data_dir, tmp_path):
    runs = [tmp_path / f"run{s}" for s in range(3)]
    for s, out in enumerate(runs):
        result, err = run(*train_args(tiny_dir, data_dir, out, "--seed", s))
        assert err is None
    result, err = run("eval", *runs, "--ensemble", "--data", data_dir / "dev.jsonl", "--json")
    assert err is None, err
    metrics = json.loads(result.stdout)
    assert metrics["members"] == 3 and len(metrics["member_accuracy"]) == 3 and 0 <= metrics["accuracy"] <= 1
    assert "majority_baseline" in metrics
    _, err = run("eval", *runs, "--data", data_dir / "dev.jsonl")
    assert err and "--ensemble" in err


def test_packed_and_plain_weights_train_the_same_prompt(data_dir, tmp_path):
    """The README's `--no-packed-weights`: plain bf16 weights give the packed run's update, bit for bit."""
    import torch
    from safetensors.torch import load_file

    from tasktune.backbone.packed_weights import packing_available

    if not packing_available(torch.zeros(2, 2, dtype=torch.bfloat16)):
        pytest.skip("this torch/CPU packs no bf16 weights for oneDNN")
    llama = save_tiny("llama", tmp_path / "tiny-llama")
    weights = []
    for name, extra in (("packed", []), ("plain", ["--no-packed-weights"])):
        args = train_args(llama, data_dir, tmp_path / name, *extra)
        args[args.index("--dtype") + 1] = "bfloat16"
        result, err = run(*args)
        assert err is None and result.exit_code == 0
        weights.append(load_file(str(tmp_path / name / "weights.safetensors")))
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
