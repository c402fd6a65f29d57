"""An experiment config (TOML): a grid of methods x datasets x seeds x ablation axes.

    name = "sst2"                      # the report's name (default: the file's stem)
    model = "smollm2-135m"
    data = ["../shared/data/sst2"]     # folders with train (+ dev / test) files; one or more
    seeds = [0, 1, 2]                  # at least 3 unless min_seeds says otherwise
    max_steps = 300
    eval_also = ["../shared/data/mpqa/test.jsonl"]   # extra labelled files every trained cell is scored on
    template = "Review: {text}\\nSentiment:{answer}"   # optional; else each method's or the data's default
    train = { batch_size = 16, max_length = 96 }      # train options every cell shares

    eval_sample = 2000                 # optional: score a seeded sample of this many rows of each eval_also file

    [methods.prompt]                   # a name of your choosing; its keys are `tasktune train` options
    method = "prompt-tuning"
    ensemble = true                    # optional: also the majority vote of its seeds' runs (one batched pass)
    [methods.prompt.axes]              # optional ablation axes: one cell per value (Lester et al. figures)
    prompt_length = [1, 5, 20, 100]
    # `model` may be a method's key or an axis too (model = ["smollm2-135m", "gemma3-270m"]): each
    # model then gets its own zero-shot row
    # a method table may set its own `seeds` (e.g. fewer for a costly ablation); min_seeds applies

Selection and report never share a split: a cell trains on the dataset's train file only and
selects its checkpoint on `dev_size` examples held out of train; what the report shows is the
dataset's dev (else test) split, evaluated after training. Every table gets its trivial rows:
the majority class of the reported split and the zero-shot template.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from tasktune import TasktuneError

TOP_KEYS = {"name", "model", "data", "seeds", "max_steps", "eval_also", "eval_sample", "template", "train", "methods",
            "objective", "min_seeds", "baselines"}
RESERVED = {"data", "output", "seed", "max_steps", "overwrite", "resume", "quiet"}


@dataclass(frozen=True)
class Cell:
    """One training run of the grid."""

    method_name: str
    dataset: str
    seed: int
    options: dict  # `tasktune train` options (method included)
    axes: dict = field(default_factory=dict)  # the ablation values of this cell

    @property
    def id(self) -> str:
        axes = ",".join(f"{k}={v}" for k, v in sorted(self.axes.items()))
        return f"{Path(self.dataset).name}/{self.method_name}" + (f"[{axes}]" if axes else "") + f"/seed{self.seed}"


@dataclass
class Experiment:
    name: str
    model: str
    data: list[str]
    seeds: list[int]
    max_steps: int
    eval_also: list[str]
    objective: str
    baselines: bool
    cells: list[Cell]
    source: str
    ensembles: list[str] = field(default_factory=list)
    eval_sample: int = 0
    template: str = ""


def _seeds(path: Path, where: str, seeds, min_seeds: int) -> list[int]:
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise TasktuneError(f"{path}: {where} must be a list of distinct integers")
    if len(seeds) < min_seeds:
        raise TasktuneError(f"{path}: {where}: {len(seeds)} seeds; a spread needs at least {min_seeds} "
                            "(set min_seeds to allow fewer)")
    return seeds


def load_experiment(path: str | Path, option_names: set[str]) -> Experiment:
    """Parse and check a config: unknown keys, methods or options, and missing data are one-line
    errors naming the config and the key (or cell)."""
    from tasktune.methods import METHODS

    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TasktuneError(f"{path}: no such file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise TasktuneError(f"{path}: not valid TOML ({e})") from None
    unknown = sorted(set(raw) - TOP_KEYS)
    if unknown:
        raise TasktuneError(f"{path}: unknown key '{unknown[0]}' (keys: {', '.join(sorted(TOP_KEYS))})")
    for key in ("data", "methods"):
        if key not in raw:
            raise TasktuneError(f"{path}: missing key '{key}'")
    data = raw["data"] if isinstance(raw["data"], list) else [raw["data"]]
    base = path.parent
    data = [str((base / d).resolve()) if not Path(d).is_absolute() else d for d in data]
    for d in data:
        if not Path(d).exists():
            raise TasktuneError(f"{path}: data '{d}' does not exist")
    eval_also = [str((base / e).resolve()) for e in raw.get("eval_also", [])]
    for e in eval_also:
        if not Path(e).is_file():
            raise TasktuneError(f"{path}: eval_also file '{e}' does not exist")
    seeds = _seeds(path, "seeds", raw.get("seeds", [0, 1, 2]), raw.get("min_seeds", 3))
    max_steps = raw.get("max_steps", 300)
    if not isinstance(max_steps, int) or max_steps < 1:
        raise TasktuneError(f"{path}: 'max_steps' must be a positive integer")
    shared = dict(raw.get("train", {}))
    if raw.get("template"):
        shared.setdefault("template", raw["template"])
    cells, ensembles = [], []
    methods = raw["methods"]
    if not isinstance(methods, dict) or not methods:
        raise TasktuneError(f"{path}: 'methods' must hold at least one [methods.NAME] table")
    for name, table in methods.items():
        table = dict(table)
        method = table.pop("method", name)
        if method not in METHODS or method == "zero-shot":
            raise TasktuneError(f"{path}: [methods.{name}]: unknown method '{method}' "
                                f"(choose from {', '.join(m for m in METHODS if m != 'zero-shot')})")
        axes = table.pop("axes", {})
        own_seeds = _seeds(path, f"[methods.{name}]: 'seeds'", table.pop("seeds"), raw.get("min_seeds", 3)) \
            if "seeds" in table else seeds
        if table.pop("ensemble", False):
            if axes:
                raise TasktuneError(f"{path}: [methods.{name}]: an ensemble needs a method without axes")
            ensembles.append(name)
        options = {**shared, **table, "method": method}
        for key in list(options) + list(axes):
            if key in RESERVED:
                raise TasktuneError(f"{path}: [methods.{name}]: '{key}' is set by the experiment, not per method")
            if key not in option_names:
                raise TasktuneError(f"{path}: [methods.{name}]: '{key}' is not a `tasktune train` option")
        for key, values in axes.items():
            if not isinstance(values, list) or not values:
                raise TasktuneError(f"{path}: [methods.{name}.axes]: '{key}' must be a non-empty list")
        combos = [dict(zip(axes, vals, strict=True)) for vals in itertools.product(*axes.values())] or [{}]
        for dataset in data:
            for combo in combos:
                for seed in own_seeds:
                    cells.append(Cell(name, dataset, seed, {**options, **combo}, combo))
    return Experiment(raw.get("name", path.stem), raw.get("model", "smollm2-135m"), data, seeds, max_steps,
                      eval_also, raw.get("objective", "classification"), raw.get("baselines", True), cells, str(path),
                      ensembles, int(raw.get("eval_sample", 0)), raw.get("template", ""))
