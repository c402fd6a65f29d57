"""The `tasktune` command line. Options of train come from the config dataclasses."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import typer

from tasktune import TasktuneError
from tasktune.cli import common, experiment_commands, interop_commands, research_commands
from tasktune.cli.options import MODEL_OPTIONS, build_config, dataclass_parameters, with_signature
from tasktune.cli.options import option as _opt
from tasktune.engine.batch import EVAL_BATCH_SIZE
from tasktune.methods import METHODS
from tasktune.regularizers.smart import SmartConfig
from tasktune.serve.limits import SHUTDOWN_GRACE_S
from tasktune.train.config import TrainConfig

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, no_args_is_help=True,
                  help="Adapt one frozen language model to many tasks with tiny task parameters.")

MODEL_OPTS = MODEL_OPTIONS
DATA_OPTS = [
    _opt("preset", None, "Task preset with patterns and verbalizer: boolq, cb, rte, copa, wic.", str | None),
    _opt("pattern", 0, "Which of the preset's patterns (PET-style pattern-verbalizer pairs).", int),
    _opt("template", None, "Template, e.g. \"[P:10] Review: {text}\\nSentiment:{answer}\" (default: from the data).",
         str | None),
    _opt("verbalizer", None, "label=word,... or a JSON object (default: each label's own name).", str | None),
    _opt("text_field", None, "Source column to use as {text}.", str | None),
    _opt("field", None, "Rename a source column: SOURCE=NAME (repeatable).", list[str] | None),
    _opt("label_field", "label", "Source column holding the label.", str),
    _opt("subset", None, "Hub or `datasets`-folder data: the configuration (e.g. sst2 of nyu-mll/glue).", str | None),
    _opt("split", None, "Hub or `datasets`-folder data: load one split only (slices allowed on the hub: "
         "train[:2000]); validation counts as dev.", str | None),
]


def _train(**kw) -> None:
    from tasktune.backbone import load_backbone
    from tasktune.build import backbone_dtype, build_task
    from tasktune.train import train

    common.quiet_libraries()
    method = kw["method"]
    if method not in TRAINABLE:
        raise TasktuneError(f"unknown method '{method}' for train: choose from {', '.join(TRAINABLE)}")
    cfg = build_config(TrainConfig, kw)
    method_cfg = build_config(METHODS[method].config_class, kw)
    out = Path(kw["output"] or f"runs/{method}")
    common.check_output_dir(out, kw["overwrite"], kw["resume"])
    source = common.read_task_source(kw, method)
    data, labels = source.data, source.labels
    train_set, dev_set, dev_note = common.hold_out_dev(data, cfg.dev_size, cfg.seed)
    if not train_set:
        raise TasktuneError(f"{data.source}: no training examples")
    method_cfg = METHODS[method].fit_config(method_cfg, train_set, labels, cfg.seed)
    dtype = backbone_dtype(METHODS[method], method_cfg, kw["dtype"])
    backbone = load_backbone(kw["model"], dtype, kw["device"], trust_remote_code=kw["trust_remote_code"])
    task = build_task(backbone, method, method_cfg, source.template, labels, source.verbalizer, cfg.max_length,
                      cfg.seed, objective=source.objective, target_field=kw["target_field"])
    task.validate(train_set + dev_set, require_label=True)
    if kw["resume"]:  # before anything is printed or written: the checkpoint exists and is this run's
        from tasktune.train.run_folder import RunFolder, run_record

        RunFolder(out).check_resume(run_record(task, cfg, len(train_set)))
    common.console.print(
        f"[bold]{method}[/] on [bold]{backbone.name}[/] ({backbone.family}, {str(backbone.dtype).split('.')[-1]}) | "
        f"template {task.template.source!r} | {len(train_set)} train, {len(dev_set)} dev ({dev_note}) | "
        f"{task.module.trainable_parameters():,} trainable parameters")
    smart = build_config(SmartConfig, kw)
    summary = train(task, train_set, dev_set, cfg, out, resume=kw["resume"], quiet=kw["quiet"],
                    extra_meta={"data": data.source, "dev_source": dev_note,
                                **({"smart": smart.__dict__} if smart.smart else {})}, smart=smart)
    summary["output"] = str(out)
    meta_path = out / "tasktune.json"
    if meta_path.exists():
        import json

        dev = json.loads(meta_path.read_text()).get("metrics", {}).get("dev", {})
        summary["dev"] = {k: v for k, v in dev.items() if k in ("accuracy", "p_at_1", "loss", "n",
                                                                 "majority_baseline")}
    summary["artifact_bytes"] = sum(f.stat().st_size for f in (out / "tasktune.json", out / "weights.safetensors")
                                    if f.exists())
    common.print_json(summary)


TRAINABLE = [name for name in METHODS if name != "zero-shot"]
train_params = ([_opt("method", "prompt-tuning", f"One of: {', '.join(TRAINABLE)}.", str),
                 _opt("objective", "classification", "classification (verbalizer), facts (open-vocabulary answer, "
                      "P@1; data: relation/subject/object rows, split by subject) or generation.", str,
                      "--objective", "--task"),
                 _opt("target_field", "text", "Generation: the field holding the text to produce.", str),
                 _opt("data", None, "Folder with train/dev files (JSONL, CSV, TSV, Parquet), one file, a "
                      "`datasets` folder (save_to_disk or a dataset repository), or a hub dataset name (see --subset, "
                      "--split; default: the bundled demo).", str | None),
                 _opt("output", None, "Run folder (artifact, metrics, checkpoint); default runs/METHOD.",
                      str | None),
                 _opt("overwrite", False, "Replace a previous run in --output.", bool),
                 _opt("resume", False, "Continue the run in --output from its last checkpoint.", bool),
                 _opt("quiet", False, "No progress bar.", bool)]
                + MODEL_OPTS + DATA_OPTS
                + dataclass_parameters(TrainConfig, SmartConfig, *(m.config_class for m in METHODS.values())))
app.command("train", help="Train a task module; writes OUTPUT/tasktune.json + weights.safetensors.")(
    with_signature(_train, train_params))


@app.command("eval")
def eval_cmd(
    artifacts: list[Path] = typer.Argument(..., help="Run folder(s) written by `tasktune train`; several with "
                                           "--ensemble."),
    data: str = typer.Option(..., "--data", help="Labelled file (or folder: its dev split)."),
    json_out: bool = typer.Option(False, "--json", help="Print one JSON object."),
    force: bool = typer.Option(False, "--force", help="Load even onto a different base model."),
    model: str | None = typer.Option(None, "--model", help="Override the artifact's base model."),
    dtype: str = typer.Option("auto", "--dtype"),
    batch_size: int = typer.Option(EVAL_BATCH_SIZE, "--batch-size", min=1),
    text_field: str | None = typer.Option(None, "--text-field"),
    label_field: str = typer.Option("label", "--label-field"),
    split: str = typer.Option("test", "--split", help="Facts files: train, dev, test or all."),
    beams: int = typer.Option(5, "--beams", min=1, help="Generation: beam size (1 = greedy)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1, help="Generation: longest output."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Majority vote of several runs of one task, in one "
                                  "batched pass (Lester et al. section 6)."),
):
    """Evaluate a trained task on labelled data (facts: P@1 on the file's test split)."""
    if len(artifacts) > 1 and not ensemble:
        raise TasktuneError("several runs need --ensemble (or evaluate them one at a time)")
    task = _load(artifacts[0], model, dtype, force)
    rows = common.evaluation_rows(task.objective, data, common.parse_field_map(text_field, None), label_field, split)
    if ensemble:
        members = [task] + [_load(a, None, dtype, force, backbone=task.backbone) for a in artifacts[1:]]
        for m in members:
            m.validate(rows, require_label=True)
        _report(common.ensemble_metrics(members, rows, batch_size), json_out)
        return
    task.validate(rows, require_label=not task.objective.reads_target_field)
    if task.objective.decodes:
        metrics = task.evaluate_generation(rows, beams, max_new_tokens)
    else:
        metrics = task.evaluate(rows, batch_size)
    if task.objective.reads_facts:  # the trivial row of knowledge probing, beside P@1
        from tasktune.data.facts import load_facts, majority_object_p_at_1

        metrics.update(majority_object_p_at_1(load_facts(data)[0].train, rows, task.objective))
    _report(metrics, json_out)


@app.command("predict")
def predict_cmd(
    artifact: Path = typer.Argument(...),
    text: str | None = typer.Option(None, "--text", help="One input text (single-field templates)."),
    data: str | None = typer.Option(None, "--data", help="A file of inputs, one prediction per row."),
    json_out: bool = typer.Option(False, "--json"),
    force: bool = typer.Option(False, "--force"),
    model: str | None = typer.Option(None, "--model"),
    dtype: str = typer.Option("auto", "--dtype"),
    beams: int = typer.Option(5, "--beams", min=1, help="Generation: beam size (1 = greedy)."),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
):
    """Predict labels (or generate text) for --text or every row of --data."""
    from tasktune.data.readers import Example

    if (text is None) == (data is None):
        raise TasktuneError("give exactly one of --text or --data")
    task = _load(artifact, model, dtype, force)
    fields = task.template.fields
    if text is not None:
        if len(fields) != 1:
            raise TasktuneError(f"template needs fields {fields}: use --data with a file")
        if not text.strip():
            raise TasktuneError("--text is empty")
        rows = [Example({fields[0]: text}, None, "--text")]
    else:
        rows = common.eval_examples(data, {}, "label", require_label=False)
        task.validate(rows)
    for ex, pred in zip(rows, task.predict(rows, beams=beams, max_new_tokens=max_new_tokens), strict=True):
        if json_out:
            common.print_json({"input": ex.fields, **pred.to_dict()} if task.objective.decodes else pred.to_dict())
        else:
            print(pred.output if task.objective.decodes else f"{pred.label}\t{pred.score:.4f}")


def _zero_shot(**kw) -> None:
    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.methods import ZeroShotConfig

    common.quiet_libraries()
    source = common.read_task_source(kw, "zero-shot")
    data = source.data
    backbone = load_backbone(kw["model"], kw["dtype"], kw["device"], trust_remote_code=kw["trust_remote_code"])
    task = build_task(backbone, "zero-shot", ZeroShotConfig(), source.template, source.labels, source.verbalizer,
                      kw["max_length"], objective=source.objective, target_field=kw["target_field"])
    if task.objective.reads_facts:  # knowledge probing: the held-out test split, beside the majority object
        from tasktune.data.facts import majority_object_p_at_1

        rows = data.test
        metrics = {**task.evaluate(rows, kw["batch_size"]), **majority_object_p_at_1(data.train, rows, task.objective)}
    elif task.objective.decodes:
        rows = data.dev or data.test or data.train
        metrics = task.evaluate_generation(rows, kw["beams"], kw["max_new_tokens"])
    else:
        rows = data.dev or data.test or data.train
        metrics = task.evaluate(rows, kw["batch_size"])
    _report({**metrics, "template": task.template.source}, kw["json_out"])


app.command("zero-shot", help="Evaluate a template and verbalizer with no training (the baseline).")(
    with_signature(_zero_shot, [_opt("data", None, "Labelled file or folder (its dev split; facts: the test split).",
                                     str | None),
                                _opt("objective", "classification", "classification, facts (P@1 beside the majority "
                                     "object) or generation (BLEU / ROUGE-L).", str, "--objective", "--task"),
                                _opt("target_field", "text", "Generation: the field holding the text to produce.",
                                     str),
                                _opt("beams", 5, "Generation: beam size (1 = greedy).", int, min=1),
                                _opt("max_new_tokens", 64, "Generation: longest output.", int, min=1)]
                   + MODEL_OPTS + DATA_OPTS
                   + [_opt("max_length", 256, "Longest sequence in tokens.", int, min=8),
                      _opt("batch_size", EVAL_BATCH_SIZE, "Evaluation batch size.", int, min=1),
                      _opt("json_out", False, "Print one JSON object.", bool, "--json")]))


def _serve(**kw) -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise TasktuneError("serving needs its extra: pip install 'tasktune[serve]'") from None
    from tasktune.serve import TaskServer, create_app
    from tasktune.serve.limits import ServeLimits

    common.quiet_libraries()
    server = TaskServer(kw["artifacts"] or [], dtype=kw["dtype"], max_batch=kw["max_batch"],
                        max_wait_ms=kw["max_wait_ms"], limits=build_config(ServeLimits, kw), task_root=kw["task_root"],
                        model=kw["model"])
    uvicorn.run(create_app(server), host=kw["host"], port=kw["port"], log_level="warning",
                timeout_graceful_shutdown=int(SHUTDOWN_GRACE_S) + 1)


def _serve_params():
    from tasktune.serve.limits import ServeLimits

    artifacts = inspect.Parameter("artifacts", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=list[Path] | None,
                                  default=typer.Argument(None, help="Artifact folders (one task each, one base model), "
                                                         "always loaded."))
    return ([artifacts, _opt("task_root", None, "Folder of artifact folders that POST /tasks/NAME (or the first "
                             "request naming NAME) loads at run time and DELETE /tasks/NAME unloads; least recently "
                             "used idle tasks are evicted past --max-tasks.", Path | None),
             _opt("model", None, "Backbone (default: the base model of the first artifact).", str | None),
             _opt("host", "127.0.0.1", "Address to listen on.", str),
             _opt("port", 8000, "Port to listen on.", int, min=1, max=65535),
             _opt("dtype", "auto", "Backbone weights: auto, float32, bfloat16.", str),
             _opt("max_batch", 32, "Most inputs in one dynamic batch.", int, min=1),
             _opt("max_wait_ms", 5.0, "How long a request waits for company.", float, min=0.0)]
            + dataclass_parameters(ServeLimits))


app.command("serve", help="Serve many tasks on one backbone over HTTP (POST /predict {task, inputs}, "
            "OpenAI-style POST /v1/completions {model: TASK, prompt}); every limit has a flag.")(
    with_signature(_serve, _serve_params()))


@app.command("models")
def models_cmd():
    """List the model aliases and whether they are installed and cached."""
    from tasktune.backbone.aliases import ALIASES, locate_gguf
    from tasktune.backbone.gguf_cache import cache_root

    for name, alias in ALIASES.items():
        path = locate_gguf(alias)
        cached = any((cache_root() / "models").glob(f"{name}-*/model.safetensors"))
        state = "installed" if path else f"not installed ({alias.install})"
        print(f"{name:14s} {state}{', cached' if cached else ''} | {alias.description} | {alias.license}")
    print("any Hugging Face hub id or local folder also works (causal, masked or encoder-decoder LM)")


@app.command("inspect")
def inspect_cmd(artifact: Path = typer.Argument(...), top: int = typer.Option(5, "--top", help="Nearest tokens"),
                nearest: bool = typer.Option(False, "--nearest", help="Nearest vocabulary tokens per soft vector")):
    """Show what an artifact holds; --nearest loads the base model to name each soft vector's neighbours."""
    from tasktune.artifact.files import load_artifact

    meta, tensors = load_artifact(artifact)
    size = sum(f.stat().st_size for f in Path(artifact).iterdir() if f.is_file())
    common.print_json({k: meta.get(k) for k in ("method", "template", "verbalizer", "base_model",
                                                 "trainable_parameters", "metrics", "p_over_n")}
                      | {"tensors": {k: list(v.shape) for k, v in tensors.items()}, "bytes": size})
    if nearest and "prompt" in tensors:
        from tasktune.methods.interpret import nearest_tokens
        task = _load(artifact, None, "auto", False)
        for i, words in enumerate(nearest_tokens(task.backbone, tensors["prompt"], top)):
            print(f"P{i}: {' | '.join(words)}")


def _load(artifact: Path, model: str | None, dtype: str, force: bool, backbone=None):
    from tasktune.build import load_task

    common.quiet_libraries()
    if model:
        from tasktune.backbone import load_backbone

        backbone = load_backbone(model, dtype)
    task, _ = load_task(artifact, backbone=backbone, force=force, dtype=dtype)
    return task


def _report(metrics: dict, json_out: bool) -> None:
    if json_out:
        common.print_json(metrics)
        return
    for k, v in metrics.items():
        print(f"{k:22s} {v:.4f}" if isinstance(v, float) else f"{k:22s} {v}")


research_commands.register(app)
interop_commands.register(app, DATA_OPTS)


def train_option_names() -> set[str]:
    """The names `tasktune train` takes as options (experiment configs are checked against them)."""
    return {p.name for p in train_params if p.kind == inspect.Parameter.KEYWORD_ONLY}


experiment_commands.register(app, train_option_names())


def _click_errors() -> tuple[type, type]:
    """(UsageError, NoArgsIsHelpError) of the click typer runs on (typer 0.29 vendors its own)."""
    try:
        from typer._click.exceptions import NoArgsIsHelpError, UsageError
    except ImportError:
        from click.exceptions import NoArgsIsHelpError, UsageError
    return UsageError, NoArgsIsHelpError


def main() -> None:
    """Only a TasktuneError reaches the user as text; anything else is one line too, and `--debug`
    (anywhere on the command line) shows its traceback."""
    debug = "--debug" in sys.argv
    if debug:
        sys.argv.remove("--debug")
    usage_error, no_args = _click_errors()
    try:
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except no_args:  # `tasktune` alone: the help, as typer prints it
        app()
    except usage_error as e:  # a bad flag or value, named by click, in one line
        sub = e.ctx.command_path.split(" ")[1:] if e.ctx is not None else []
        hint = f" (see {' '.join(['tasktune', *sub])} --help)"
        print(f"error: {e.format_message()}{hint}", file=sys.stderr)
        sys.exit(2)
    except (typer.Exit, typer.Abort) as e:
        if isinstance(e, typer.Abort):
            print("interrupted", file=sys.stderr)
        sys.exit(getattr(e, "exit_code", 130))
    except TasktuneError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if debug:
            raise
        first = (str(e).strip().splitlines() or [""])[0][:300]
        print(f"error: unexpected {type(e).__name__}: {first} (run again with --debug for the traceback)",
              file=sys.stderr)
        sys.exit(1)
