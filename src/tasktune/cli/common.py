"""Pieces the CLI commands share: output, data, model loading."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.console import Console

from tasktune import TasktuneError
from tasktune.data import DataSplits, load_splits
from tasktune.data.readers import Example, read_examples

console = Console(stderr=True)


def quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=None, default=float) + "\n")


def parse_field_map(text_field: str | None, fields: list[str] | None) -> dict[str, str]:
    """--text-field sentence and --field sentence=text both rename source columns."""
    mapping: dict[str, str] = {}
    if text_field:
        mapping[text_field] = "text"
    for item in fields or []:
        if "=" not in item:
            raise TasktuneError(f"--field '{item}': expected SOURCE=NAME")
        src, dst = item.split("=", 1)
        mapping[src.strip()] = dst.strip()
    return mapping


def load_data(source: str | None, field_map: dict[str, str], label_field: str,
              explode: str | None = None, kw: dict | None = None) -> DataSplits:
    """`kw`: the command's options, for --subset / --split of hub and `datasets` data."""
    kw = kw or {}
    return load_splits(source, field_map=field_map, label_field=label_field, explode=explode,
                       subset=kw.get("subset"), split=kw.get("split"))


def hold_out_dev(data: DataSplits, n: int, seed: int) -> tuple[list[Example], list[Example], str]:
    """Train/dev lists; without a dev split, a seeded share of train becomes dev."""
    if data.dev:
        return data.train, data.dev, "dev split"
    if len(data.train) < 4:
        return data.train, [], "none"
    k = min(n, max(1, len(data.train) // 10))
    perm = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(seed)).tolist()
    dev = [data.train[i] for i in perm[:k]]
    train = [data.train[i] for i in perm[k:]]
    return train, dev, f"{k} examples held out of train (seed {seed})"


def eval_examples(path: str, field_map: dict[str, str], label_field: str,
                  require_label: bool, explode: str | None = None) -> list[Example]:
    p = Path(path)
    if p.is_dir():
        data = load_splits(str(p), field_map=field_map, label_field=label_field, explode=explode)
        rows = data.dev or data.test or data.train
    else:
        rows = read_examples(p, field_map=field_map, label_field=label_field, require_label=require_label,
                             explode=explode)
    return rows


def check_output_dir(out: Path, overwrite: bool, resume: bool) -> None:
    """Never destroy a previous run by accident. Nothing is touched here: a run writes into a work
    folder beside OUT and replaces OUT in one step only when it ends (train/run_folder.py)."""
    from tasktune.train.run_folder import holds_run

    if overwrite and resume:
        raise TasktuneError("--overwrite and --resume contradict each other: choose one")
    if holds_run(out) and not (overwrite or resume):
        raise TasktuneError(f"{out} already holds a run: pass --overwrite to replace it or --resume to continue it")
    if out.exists() and not out.is_dir():
        raise TasktuneError(f"{out} exists and is not a folder")
    if out.exists() and not holds_run(out) and any(out.iterdir()):
        raise TasktuneError(f"{out} is a folder that holds no run: choose an empty or new --output")


@dataclass
class TaskSource:
    """What `train --objective X` reads: the data, its labels (None: open vocabulary), the template
    and verbalizer to use, and the objective kind to build."""

    data: DataSplits
    labels: list[str] | None
    template: str
    verbalizer: str | dict | None
    objective: str


def _classification_source(kw: dict, method: str) -> TaskSource:
    from tasktune.templates import default_template
    from tasktune.templates.fewglue import preset_template

    data = load_data(kw["data"], parse_field_map(kw["text_field"], kw["field"]), kw["label_field"], kw=kw)
    data.check_labels()
    template, verbalizer = kw["template"] or default_template(data.fields, data.labels), kw["verbalizer"]
    if kw["preset"]:
        preset_tmpl, verbalizer = preset_template(kw["preset"], kw["pattern"], method)
        template = kw["template"] or preset_tmpl
    return TaskSource(data, data.labels, template, verbalizer, "classification")


def _facts_source(kw: dict, method: str) -> TaskSource:
    """Facts data split by subject, and the relation's manual (or P-tuning) template."""
    from tasktune.data.facts import load_facts, manual_template, p_tuning_template

    if not kw["data"]:
        raise TasktuneError("--objective facts needs --data FILE.jsonl (relation, subject, object rows)")
    data, relation = load_facts(kw["data"])
    template = kw["template"] or (p_tuning_template(relation) if method == "p-tuning" else manual_template(relation))
    return TaskSource(data, None, template, None, "vocabulary")


def _generation_source(kw: dict, method: str) -> TaskSource:
    data = load_data(kw["data"], parse_field_map(kw["text_field"], kw["field"]), kw["label_field"],
                     explode=kw["target_field"], kw=kw)
    template = kw["template"] or generation_template(data.fields, kw["target_field"])
    return TaskSource(data, None, template, None, "generation")


TASK_SOURCES = {"classification": _classification_source, "facts": _facts_source, "generation": _generation_source}


def read_task_source(kw: dict, method: str) -> TaskSource:
    if kw["objective"] not in TASK_SOURCES:
        raise TasktuneError(f"unknown --objective '{kw['objective']}': {', '.join(TASK_SOURCES)}")
    return TASK_SOURCES[kw["objective"]](kw, method)


def facts_split(path: str, split: str) -> list[Example]:
    from tasktune.data.facts import load_facts

    data, _ = load_facts(path)
    if split == "all":
        return data.train + data.dev + data.test
    if split not in ("train", "dev", "test"):
        raise TasktuneError(f"--split '{split}': train, dev, test or all")
    return getattr(data, split)


def evaluation_rows(objective, path: str, field_map: dict[str, str], label_field: str, split: str) -> list[Example]:
    """Evaluation data as the task's objective reads it: a facts file's `split` (knowledge probing),
    a target field exploded per reference (generation), or labelled rows."""
    if objective.reads_facts:
        return facts_split(path, split)
    target = objective.target_field
    return eval_examples(path, field_map, label_field, require_label=not objective.reads_target_field, explode=target)


def generation_template(fields: list[str], target: str) -> str:
    sources = [f for f in fields if f != target]
    if not sources:
        raise TasktuneError(f"generation data needs a source field besides '{target}' (fields: {fields})")
    if "table" in sources:
        return "Table: {table}\nText:{answer}"
    if "triples" in sources:
        return "Triples: {triples}\nText:{answer}"
    return "".join(f"{{{f}}}\n" for f in sources) + "Output:{answer}"


def ensemble_metrics(tasks: list, rows: list[Example], batch_size: int = 32) -> dict:
    """Accuracy of the members' majority vote, beside each member's own accuracy (read from the same
    batched pass of N copies per input, not a second evaluation) and the majority-class baseline."""
    import time

    from tasktune.runtime import ensemble_predict

    labeled = [ex for ex in rows if ex.label is not None]
    if not labeled:
        raise TasktuneError("evaluation data has no labels")
    t0 = time.perf_counter()
    votes = []
    for start in range(0, len(labeled), batch_size):
        votes += ensemble_predict(tasks, labeled[start : start + batch_size])
    elapsed = time.perf_counter() - t0
    acc = sum(v["label"] == ex.label for v, ex in zip(votes, labeled, strict=True)) / len(labeled)
    members = [sum(v["members"][j] == ex.label for v, ex in zip(votes, labeled, strict=True)) / len(labeled)
               for j in range(len(tasks))]
    counts: dict[str, int] = {}
    for ex in labeled:
        counts[ex.label] = counts.get(ex.label, 0) + 1
    return {"accuracy": acc, "score": acc, "n": len(labeled), "members": len(tasks), "member_accuracy": members,
            "majority_baseline": max(counts.values()) / len(labeled), "examples_per_second": len(labeled) / elapsed}
