"""Running an experiment's grid: every cell is an ordinary `tasktune train` run (the same code path
and artifact), then `tasktune eval` on the reported split and on every `eval_also` file.

The commands come in as a callable (`invoke(args) -> the JSON the command printed`), so this
module does not depend on the CLI that calls it. Results are appended to DIR/results.jsonl one
line per cell as it finishes; a cell already there with status ok is skipped, so a killed
experiment continues where it stopped (a cell killed mid-run resumes from its checkpoint). A
cell that fails is recorded as failed, with its error, and the others still run.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from tasktune.artifact.files import versions
from tasktune.data.splits import find_split
from tasktune.experiments.config import Cell, Experiment
from tasktune.provenance import git_commit, machine
from tasktune.train.run_folder import work_folder

Invoke = Callable[[list[str]], dict]
RESULTS = "results.jsonl"


def read_results(folder: Path) -> list[dict]:
    path = Path(folder) / RESULTS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a kill: that cell runs again
    return out


def append_result(folder: Path, record: dict) -> None:
    with (Path(folder) / RESULTS).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())


def as_args(options: dict) -> list[str]:
    """`tasktune train` arguments from a cell's options."""
    args: list[str] = []
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            args += [flag] if value else []
        elif isinstance(value, list):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", name)


def reported_split(dataset: str) -> Path:
    """The split a table reports: dev, else test (never the one a checkpoint is selected on)."""
    folder = Path(dataset)
    for split in ("dev", "test"):
        found = find_split(folder, split)
        if found is not None:
            return found
    raise FileNotFoundError(f"{dataset}: no dev or test split to report on")


def train_only(dataset: str, out: Path) -> Path:
    """A folder holding only the dataset's train file: the trainer then selects on examples held out
    of train, and the dev split stays unseen until it is reported."""
    src = find_split(Path(dataset), "train")
    if src is None:
        raise FileNotFoundError(f"{dataset}: no train split")
    folder = out / "data" / safe(Path(dataset).name)
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / src.name
    if not link.exists():
        link.symlink_to(src.resolve())
    return folder


def train_data(exp: Experiment, dataset: str, out: Path) -> Path:
    """What a cell trains on. A facts file splits itself by subject (train, dev for selection,
    test reported), so it goes in whole; other data: its train file only."""
    return Path(dataset) if exp.objective == "facts" else train_only(dataset, out)


def report_data(exp: Experiment, dataset: str) -> Path:
    """What a table reports: a facts file (evaluation reads its test split), else the dev or test split."""
    return Path(dataset) if exp.objective == "facts" else reported_split(dataset)


def file_key(path: str) -> str:
    return Path(path).parent.name + "/" + Path(path).name


def _evaluate(invoke: Invoke, runs: list[Path], files: list[str]) -> dict:
    ensemble = ["--ensemble"] if len(runs) > 1 else []
    return {file_key(f): invoke(["eval", *map(str, runs), "--data", str(f), "--json", *ensemble]) for f in files}


def eval_files(exp: Experiment, out: Path) -> list[str]:
    """The eval_also files, or a seeded sample of `eval_sample` rows of each (written once, kept)."""
    if not exp.eval_sample:
        return list(exp.eval_also)
    import random

    files = []
    for f in exp.eval_also:
        src = Path(f)
        target = out / "data" / "eval_also" / src.parent.name / src.name
        if not target.is_file():
            lines = [x for x in src.read_text(encoding="utf-8").splitlines() if x.strip()]
            random.Random(0).shuffle(lines)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(lines[: exp.eval_sample]) + "\n", encoding="utf-8")
        files.append(str(target))
    return files


def model_of(exp: Experiment, cell: Cell) -> str:
    """The cell's backbone: its method's (or axis's) `model`, else the experiment's."""
    return cell.options.get("model", exp.model)


def run_folder(out: Path, cell: Cell) -> Path:
    """Where a cell's `tasktune train` run lives."""
    return out / "runs" / safe(cell.id.replace("/", "__"))


def run_cell(exp: Experiment, cell: Cell, out: Path, invoke: Invoke) -> dict:
    run = run_folder(out, cell)
    args = ["train", "--data", str(train_data(exp, cell.dataset, out)), "--output", str(run),
            "--model", model_of(exp, cell), "--seed", str(cell.seed), "--max-steps", str(exp.max_steps),
            "--objective", exp.objective, "--quiet", *as_args({k: v for k, v in cell.options.items() if k != "model"})]
    if (work_folder(run) / "checkpoint").exists():
        args.append("--resume")  # killed mid-run: continue from its checkpoint
    elif run.exists() or work_folder(run).exists():  # killed before its first checkpoint: start over
        args.append("--overwrite")
    t0 = time.perf_counter()
    summary = invoke(args)
    report = report_data(exp, cell.dataset)
    evaluations = _evaluate(invoke, [run], [str(report)] + eval_files(exp, out))
    curve = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()] \
        if (run / "metrics.jsonl").is_file() else []
    return {"summary": summary, "reported": file_key(str(report)), "evaluations": evaluations,
            "curve": [{k: v for k, v in r.items() if k in ("step", "loss", "dev_score")} for r in curve],
            "seconds": time.perf_counter() - t0}


def run_baselines(exp: Experiment, dataset: str, invoke: Invoke, out: Path) -> list[dict]:
    """Zero-shot with the experiment's template (else each distinct template of the grid) on every
    model of the grid, on the reported split and the eval_also files."""
    cells = [c for c in exp.cells if c.dataset == dataset]
    templates = [exp.template] if exp.template else sorted({c.options.get("template", "") for c in cells})
    models = list(dict.fromkeys(model_of(exp, c) for c in cells)) or [exp.model]
    files = [str(report_data(exp, dataset))] + eval_files(exp, out)
    rows = []
    for model in models:
        for template in templates:
            evaluations = {}
            for f in files:
                args = ["zero-shot", "--data", f, "--model", model, "--objective", exp.objective, "--json"] + \
                    (["--template", template] if template else [])
                evaluations[file_key(f)] = invoke(args)
            rows.append({"template": template, "model": model, "evaluations": evaluations})
    return rows


def run_experiment(exp: Experiment, out: str | Path, invoke: Invoke, progress: bool = True) -> list[dict]:
    """Run every cell not yet in DIR/results.jsonl; returns all records."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out = Path(out)
    commit = git_commit()  # before this run writes into the tree (its config copy, its results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "experiment.toml").write_text(Path(exp.source).read_text(encoding="utf-8"), encoding="utf-8")
    done = {r["id"] for r in read_results(out) if r.get("status") == "ok"}
    todo: list[tuple[str, Cell | str | None, str]] = []  # (id, a cell / an ensemble's method / None: baselines)
    if exp.baselines:
        todo += [(f"{Path(d).name}/zero-shot", None, d) for d in exp.data]
    todo += [(c.id, c, c.dataset) for c in exp.cells]
    todo += [(f"{Path(d).name}/{m}/ensemble", m, d) for m in exp.ensembles for d in exp.data]
    todo = [t for t in todo if t[0] not in done]
    common = {"experiment": exp.name, "model": exp.model, "max_steps": exp.max_steps, "commit": commit,
              "machine": machine(), "versions": versions()}
    with Progress(TextColumn("[bold]compare"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[cell]}"), disable=not progress) as bar:
        job = bar.add_task("cells", total=len(todo), cell="")
        for cell_id, cell, dataset in todo:
            bar.update(job, cell=cell_id)
            record = {"id": cell_id, "dataset": Path(dataset).name, **common}
            t0 = time.perf_counter()
            try:
                if cell is None:
                    record.update(kind="baseline", method_name="zero-shot",
                                  baselines=run_baselines(exp, dataset, invoke, out))
                elif isinstance(cell, str):  # the majority vote of a method's seeds
                    members = [c for c in exp.cells if c.method_name == cell and c.dataset == dataset]
                    runs = [run_folder(out, c) for c in members]
                    files = [str(report_data(exp, dataset))] + eval_files(exp, out)
                    record.update(kind="cell", method_name=f"{cell} ensemble ({len(runs)} seeds)",
                                  method=members[0].options["method"], seed=-1, axes={}, options=members[0].options,
                                  summary={"trainable_parameters": None}, reported=file_key(files[0]),
                                  evaluations=_evaluate(invoke, runs, files), curve=[], seconds=0.0)
                else:
                    record.update(kind="cell", method_name=cell.method_name, method=cell.options["method"],
                                  seed=cell.seed, axes=cell.axes, options=cell.options,
                                  **run_cell(exp, cell, out, invoke))
                record["status"] = "ok"
            except Exception as e:  # noqa: BLE001 - one failed cell must not stop the grid
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                record.update(status="failed", error=f"{cell_id}: {first}")
                bar.console.print(f"[red]cell {cell_id} failed:[/] {first}")
            record["wall_seconds"] = time.perf_counter() - t0
            append_result(out, record)
            bar.advance(job)
    return read_results(out)
