"""Probe sets: examples grouped by (h1, h2). Cells `demos_1_1`, `demos_0_0` (underspecified
demonstrations) and `testset_{h1}_{h2}`; the disambiguating test cells are 1_0 and 0_1."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.icl.features import Feature

CELLS = ("demos_1_1", "demos_0_0", "testset_1_1", "testset_0_0", "testset_1_0", "testset_0_1")


@dataclass
class ProbeSet:
    name: str
    cells: dict[str, list[Example]]
    field: str = "text"

    @staticmethod
    def h(cell: str) -> tuple[int, int]:
        h1, h2 = cell.split("_")[-2:]
        return int(h1), int(h2)


def load_released(path: str | Path) -> ProbeSet:
    """The authors' release (Si et al. 2023): JSON with the six cells; `answer` is h1."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TasktuneError(f"{path}: cannot read probe set ({e})") from None
    missing = [c for c in CELLS if c not in raw]
    if missing:
        raise TasktuneError(f"{path}: probe set lacks {missing}")
    cells: dict[str, list[Example]] = {}
    for cell in CELLS:
        rows = []
        for i, item in enumerate(raw[cell]):
            if "question" not in item or "answer" not in item:
                raise TasktuneError(f"{path}: {cell}[{i}] needs 'question' and 'answer'")
            h1, _ = ProbeSet.h(cell)
            if str(item["answer"]) != str(h1):
                raise TasktuneError(f"{path}: {cell}[{i}] answer {item['answer']} contradicts its cell")
            rows.append(Example({"question": item["question"]}, str(h1), f"{path.name}:{cell}[{i}]"))
        cells[cell] = rows
    name = raw.get("dataset") if isinstance(raw.get("dataset"), str) else path.stem
    return ProbeSet(name, cells, "question")


def build_from_examples(name: str, examples: list[Example], h1: Feature, h2: Feature, field: str = "text",
                        demo_share: float = 0.3, seed: int = 0) -> ProbeSet:
    """Group any labelled data by two features; a share of the agreeing cells becomes demo pools."""
    groups: dict[tuple[int, int], list[Example]] = {(a, b): [] for a in (0, 1) for b in (0, 1)}
    for ex in examples:
        groups[(h1(ex), h2(ex))].append(Example(ex.fields, str(h1(ex)), ex.where))
    gen = torch.Generator().manual_seed(seed)
    cells: dict[str, list[Example]] = {}
    for (a, b), rows in groups.items():
        rows = [rows[i] for i in torch.randperm(len(rows), generator=gen).tolist()]
        if a == b:
            k = int(len(rows) * demo_share)
            cells[f"demos_{a}_{b}"], cells[f"testset_{a}_{b}"] = rows[:k], rows[k:]
        else:
            cells[f"testset_{a}_{b}"] = rows
    empty = [c for c in CELLS if not cells.get(c)]
    if empty:
        raise TasktuneError(f"probe set '{name}': no examples for {empty}; choose other features")
    return ProbeSet(name, cells, field)
