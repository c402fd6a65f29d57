"""`tasktune export RUN --format peft` and `tasktune import PEFT_DIR`: adapters that PEFT loads,
and PEFT's adapters as tasktune artifacts (interop/peft_adapter.py holds the format)."""

from __future__ import annotations

import inspect
import shutil
from pathlib import Path

import typer

from tasktune import TasktuneError
from tasktune.cli import common
from tasktune.cli.options import MODEL_OPTIONS, with_signature
from tasktune.cli.options import option as _opt

FORMATS = ("peft",)


def register(app, data_options: list) -> None:
    @app.command("export")
    def export_cmd(
        artifact: Path = typer.Argument(..., help="Run folder written by `tasktune train`."),
        output: Path = typer.Option(..., "--output", help="Folder to write the adapter into."),
        fmt: str = typer.Option("peft", "--format", help="peft: adapter_config.json + adapter_model.safetensors "
                                "for peft.PeftModel.from_pretrained."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace what --output holds."),
    ):
        """Write a trained task in another tool's format (PEFT prompt tuning, prefix tuning, P-tuning)."""
        from tasktune.build import load_task
        from tasktune.interop.peft_adapter import to_peft, write_adapter

        if fmt not in FORMATS:
            raise TasktuneError(f"unknown --format '{fmt}': {', '.join(FORMATS)}")
        _check_target(output, overwrite)
        common.quiet_libraries()
        task, _ = load_task(artifact)
        adapter = to_peft(task)  # every refusal comes before anything is written
        write_adapter(adapter, output)
        common.print_json({"output": str(output), "peft_type": adapter.config["peft_type"],
                           "num_virtual_tokens": adapter.config["num_virtual_tokens"],
                           "base_model_name_or_path": adapter.config["base_model_name_or_path"],
                           "bytes": sum(f.stat().st_size for f in output.iterdir())})

    params = ([_opt("output", ..., "Artifact folder to write.", Path),
               _opt("data", None, "Labelled file or folder: the labels, the default template and the dev rows the "
                    "imported task is evaluated on (not needed for an adapter tasktune exported).", str | None),
               _opt("objective", "classification", "classification, facts or generation.", str, "--objective",
                    "--task"),
               _opt("target_field", "text", "Generation: the field holding the text to produce.", str),
               _opt("max_length", 256, "Longest sequence in tokens.", int, min=8),
               _opt("force", False, "Import onto a base model other than the one the adapter names.", bool),
               _opt("overwrite", False, "Replace what --output holds.", bool)]
              + [p.replace(default=typer.Option(None, "--model", help="Backbone (default: the one the adapter "
                                                "names)")) if p.name == "model" else p for p in MODEL_OPTIONS]
              + data_options)
    params.insert(0, inspect.Parameter("adapter", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Path,
                                       default=typer.Argument(..., help="PEFT adapter folder (adapter_config.json + "
                                                              "adapter_model.safetensors).")))
    app.command("import", help="Make a PEFT prompt-tuning, prefix-tuning or P-tuning adapter a tasktune artifact.")(
        with_signature(_import, params))


def _check_target(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise TasktuneError(f"{out} exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise TasktuneError(f"{out} is not empty: pass --overwrite to replace it")


def _import(**kw) -> None:
    from tasktune.artifact.folders import commit_folder
    from tasktune.artifact.store import save_task
    from tasktune.backbone import load_backbone
    from tasktune.build import assemble, fresh_spec
    from tasktune.interop import peft_adapter as pa
    from tasktune.methods import METHODS
    from tasktune.spec import TaskSpec
    from tasktune.templates import Template

    common.quiet_libraries()
    folder, out = Path(kw["adapter"]), Path(kw["output"])
    _check_target(out, kw["overwrite"])
    adapter = pa.read_adapter(folder)
    carried = pa.exported_spec(adapter)
    model = kw["model"] or adapter.metadata.get(pa.BASE_NAME) or adapter.config.get("base_model_name_or_path")
    if not model:
        raise TasktuneError(f"{folder / pa.CONFIG}: names no base model: pass --model")
    backbone = load_backbone(model, kw["dtype"], kw["device"], trust_remote_code=kw["trust_remote_code"])
    pa.check_base(adapter, backbone, str(folder / pa.CONFIG), kw["force"])
    method, values, tensors = pa.task_tensors(adapter, backbone)
    config = METHODS[method].config_class(**values)
    rows, split = [], "none"
    if kw["data"] is None and carried is not None:  # an adapter tasktune exported: its own template and labels
        spec = TaskSpec(**{**carried, "method": method, "method_config": vars(config)})
    elif kw["data"] is None:
        raise TasktuneError("--data FILE is needed: a PEFT adapter holds no labels or template")
    else:
        source = common.read_task_source(kw, method)
        template = Template.parse(source.template)
        if template.n_soft:
            raise TasktuneError(f"--template {source.template!r} places soft tokens; a PEFT adapter's sit before the "
                                "input: leave [P:n] out")
        spec = fresh_spec(method, config, source.template, source.labels, source.verbalizer, kw["max_length"],
                          source.objective, kw["target_field"])
        data = source.data
        split, rows = next(((name, r) for name, r in (("dev", data.dev), ("test", data.test), ("train", data.train))
                            if r), ("none", []))
    where = str(folder / pa.CONFIG)
    task = assemble(spec, backbone, tensors, where=where)
    metrics = {}
    if rows and not task.objective.decodes:
        task.validate(rows)
        metrics = task.evaluate(rows)
    staged = out.parent / f".{out.name}.partial"
    shutil.rmtree(staged, ignore_errors=True)
    origin = {"format": "peft", "peft_type": adapter.config["peft_type"], "folder": str(folder),
              "base_model_name_or_path": adapter.config.get("base_model_name_or_path")}
    save_task(task, staged, {"imported_from": origin, "metrics": {split: metrics} if metrics else {}})
    commit_folder(staged, out)
    common.print_json({"output": str(out), "method": method, "template": task.template.source,
                       **({split: {k: metrics[k] for k in ("accuracy", "p_at_1", "n", "majority_baseline")
                                   if k in metrics}} if metrics else {})})
