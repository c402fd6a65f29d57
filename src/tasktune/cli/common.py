"""Pieces the CLI commands share: output, data, model loading."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from rich.console import Console

from tasktune import TasktuneError
from tasktune.data import TaskData, load_task_data
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


def load_data(source: str | None, field_map: dict[str, str], label_field: str, explode: str | None = None) -> TaskData:
    return load_task_data(source, field_map=field_map, label_field=label_field, explode=explode)


def hold_out_dev(data: TaskData, n: int, seed: int) -> tuple[list[Example], list[Example], str]:
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
        data = load_task_data(str(p), field_map=field_map, label_field=label_field, explode=explode)
        rows = data.dev or data.test or data.train
    else:
        rows = read_examples(p, field_map=field_map, label_field=label_field, require_label=require_label,
                             explode=explode)
    return rows


def check_output_dir(out: Path, overwrite: bool, resume: bool) -> None:
    """Never destroy a previous run by accident."""
    holds_run = (out / "tasktune.json").exists() or (out / "checkpoint").exists()
    if holds_run and not (overwrite or resume):
        raise TasktuneError(f"{out} already holds a run: pass --overwrite to replace it or --resume to continue it")
    if out.exists() and not out.is_dir():
        raise TasktuneError(f"{out} exists and is not a folder")
    if overwrite and not resume:
        import shutil

        shutil.rmtree(out / "checkpoint", ignore_errors=True)
        (out / "metrics.jsonl").unlink(missing_ok=True)


def load_facts_task(path: str | None, template: str | None, method: str) -> tuple[TaskData, str, None]:
    """Facts data split by subject, and the relation's manual (or P-tuning) template."""
    from tasktune.data.facts import load_facts, manual_template, p_tuning_template

    if not path:
        raise TasktuneError("--task facts needs --data FILE.jsonl (relation, subject, object rows)")
    data, relation = load_facts(path)
    if template is None:
        template = p_tuning_template(relation) if method == "p-tuning" else manual_template(relation)
    return data, template, None


def facts_split(path: str, split: str) -> list[Example]:
    from tasktune.data.facts import load_facts

    data, _ = load_facts(path)
    if split == "all":
        return data.train + data.dev + data.test
    if split not in ("train", "dev", "test"):
        raise TasktuneError(f"--split '{split}': train, dev, test or all")
    return getattr(data, split)


def generation_template(fields: list[str], target: str) -> str:
    sources = [f for f in fields if f != target]
    if not sources:
        raise TasktuneError(f"generation data needs a source field besides '{target}' (fields: {fields})")
    if "table" in sources:
        return "Table: {table}\nText:{answer}"
    if "triples" in sources:
        return "Triples: {triples}\nText:{answer}"
    return "".join(f"{{{f}}}\n" for f in sources) + "Output:{answer}"
