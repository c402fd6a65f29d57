"""Research commands: the in-context bias probe and PPT prompt pre-training."""

from __future__ import annotations

from pathlib import Path

from tasktune import TasktuneError
from tasktune.cli import common
from tasktune.cli.options import MODEL_OPTIONS as MODEL_OPTS
from tasktune.cli.options import build_config, dataclass_parameters, with_signature
from tasktune.cli.options import option as _opt
from tasktune.train.config import TrainConfig


def register(app) -> None:
    """Add probe and pretrain-prompt to the typer app."""
    app.command("probe", help="Measure which feature in-context learning prefers under underspecified "
                "demonstrations.")(with_signature(_probe, _probe_params()))
    app.command("pretrain-prompt", help="PPT: pre-train a soft prompt on self-supervised tasks from unlabeled text; "
                "use it with `train --init pretrained --init-from RUN`.")(
        with_signature(_pretrain_prompt, _pretrain_params()))


def _probe(**kw) -> None:
    from tasktune.backbone import load_backbone
    from tasktune.data.readers import read_examples
    from tasktune.icl.features import make_feature
    from tasktune.icl.probe import INTERVENTIONS, ProbeConfig, plot, run_probe
    from tasktune.icl.probe_set import build_from_examples, load_released

    common.quiet_libraries()
    chosen = [x.strip() for x in kw["intervention"].split(",") if x.strip()]
    bad = [x for x in chosen if x not in INTERVENTIONS]
    if bad:
        raise TasktuneError(f"unknown intervention {bad}: choose from {', '.join(INTERVENTIONS)}")
    cfg = build_config(ProbeConfig, kw)
    data = Path(kw["data"])
    if data.suffix == ".json":
        probe_set = load_released(data)
    else:
        if not (kw["h1"] and kw["h2"]):
            raise TasktuneError("a dataset file needs --h1 and --h2 feature specs (e.g. label=positive, length)")
        rows = read_examples(data, require_label=True)
        probe_set = build_from_examples(f"{data.stem}: {kw['h1']} vs {kw['h2']}", rows,
                                        make_feature(kw["h1"], rows), make_feature(kw["h2"], rows))
    backbone = load_backbone(kw["model"], kw["dtype"], kw["device"], trust_remote_code=kw["trust_remote_code"])
    result = run_probe(backbone, probe_set, cfg, chosen)
    if kw["plot"]:
        plot([result], kw["plot"])
    if kw["json_out"]:
        common.print_json(result)
    else:
        for name, r in result["results"].items():
            print(f"{name:12s} h1 {r['h1_accuracy']:.3f}±{r['h1_accuracy_std']:.3f}  "
                  f"h2 {r['h2_accuracy']:.3f}±{r['h2_accuracy_std']:.3f}  agreeing {r['agreeing_accuracy']:.3f}")


def _probe_params():
    from tasktune.icl.probe import ProbeConfig

    return ([_opt("data", ..., "Released probe JSON (demos_1_1, ..., testset_0_1) or a labelled data file.", str),
             _opt("h1", None, "With a data file: the intended feature, e.g. label=positive.", str | None),
             _opt("h2", None, "With a data file: the competing feature: length, punctuation, capitalisation, "
                  "negation, contains:WORD, overlap:FIELD1:FIELD2, domain:FIELD=VALUE.", str | None),
             _opt("intervention", "none", "Comma list of: none, instruction, verbalizer, disambig.", str),
             _opt("plot", None, "Write a PNG of h1 vs h2 accuracy here.", str | None),
             _opt("json_out", False, "Print one JSON object.", bool, "--json")]
            + MODEL_OPTS + dataclass_parameters(ProbeConfig))


def _pretrain_prompt(**kw) -> None:
    from tasktune.backbone import load_backbone
    from tasktune.build import build_task
    from tasktune.methods import PromptTuningConfig
    from tasktune.ppt.corpus import read_corpus
    from tasktune.ppt.self_supervised import build
    from tasktune.train import train

    common.quiet_libraries()
    cfg = build_config(TrainConfig, kw)
    pcfg = build_config(PromptTuningConfig, kw)
    out = Path(kw["output"])
    common.check_output_dir(out, kw["overwrite"], kw["resume"])
    docs = read_corpus(kw["corpus"])
    rows, template, verbalizer = build(kw["ppt_task"], docs, kw["examples"] + cfg.dev_size, cfg.seed)
    dev, train_rows = rows[: cfg.dev_size], rows[cfg.dev_size :]
    backbone = load_backbone(kw["model"], kw["dtype"], kw["device"], trust_remote_code=kw["trust_remote_code"])
    task = build_task(backbone, "prompt-tuning", pcfg, template, list(verbalizer), verbalizer, cfg.max_length,
                      cfg.seed)
    common.console.print(f"PPT '{kw['ppt_task']}' task: {len(docs)} documents, {len(train_rows)} train / "
                         f"{len(dev)} dev examples, prompt of {task.template.n_soft}")
    summary = train(task, train_rows, dev, cfg, out, resume=kw["resume"], quiet=kw["quiet"],
                    extra_meta={"ppt": {"task": kw["ppt_task"], "corpus": kw["corpus"], "documents": len(docs)}})
    common.print_json({**summary, "output": str(out)})


def _pretrain_params():
    from tasktune.methods import PromptTuningConfig

    return ([_opt("corpus", ..., "JSONL of documents ({'text'} or {'title', 'wikitext'}).", str),
             _opt("ppt_task", "choice", "choice (unified multiple choice, 6 options) or pair (yes/maybe/no).", str),
             _opt("examples", 4000, "Self-supervised training examples to build.", int),
             _opt("output", ..., "Run folder for the pre-trained prompt.", str),
             _opt("overwrite", False, "Replace a previous run in --output.", bool),
             _opt("resume", False, "Continue the run in --output.", bool),
             _opt("quiet", False, "No progress bar.", bool)]
            + MODEL_OPTS + dataclass_parameters(TrainConfig, PromptTuningConfig))
