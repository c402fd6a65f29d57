"""In-context learning (GPT-3 style): k demonstrations rendered with the task's own template
and verbalizer, placed before the input, optional instruction. No trained parameters.

The demonstrations become literal text of the template, so ICL runs the same path as every
other method; at inference their KV cache is computed once and reused (engine/kv_prefix.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tasktune import TasktuneError
from tasktune.config_ranges import ranged
from tasktune.data.readers import Example
from tasktune.methods.base import MethodConfig, TaskModule
from tasktune.templates import Answer, Field, Soft, Template, Text, Verbalizer

SELECTIONS = ("balanced", "random", "indices")


@dataclass
class InContextConfig(MethodConfig):
    shots: int = ranged(16, min=0)
    """Demonstrations placed before each input."""
    selection: str = "balanced"
    """balanced (equal per label) | random | indices"""
    indices: str = ""
    """Comma-separated training row numbers (selection=indices)."""
    instruction: str = ""
    """Text placed before the demonstrations."""
    separator: str = "\n\n"
    """Between demonstrations (and before the input)."""
    calibrate: bool = False
    """Contextual calibration on content-free inputs ("N/A", "", "[MASK]")."""
    demos: list = field(default_factory=list)
    """Chosen demonstrations ([{fields, label}]); filled by `tasktune train`."""


def choose_demos(config: InContextConfig, train: list[Example], labels: list[str], seed: int) -> list[Example]:
    gen = torch.Generator().manual_seed(seed)
    if config.selection == "indices":
        try:
            picks = [int(i) for i in config.indices.split(",") if i.strip()]
            return [train[i] for i in picks]
        except (ValueError, IndexError):
            raise TasktuneError(f"--indices '{config.indices}': not row numbers of the {len(train)} training rows") \
                from None
    if config.selection == "random":
        perm = torch.randperm(len(train), generator=gen).tolist()
        return [train[i] for i in perm[: config.shots]]
    if config.selection != "balanced":
        raise TasktuneError(f"unknown selection '{config.selection}': choose from {', '.join(SELECTIONS)}")
    per_label = {lab: [ex for ex in train if ex.label == lab] for lab in labels}
    picked: list[Example] = []
    for i, lab in enumerate(labels):
        want = config.shots // len(labels) + (1 if i < config.shots % len(labels) else 0)
        pool = per_label[lab]
        order = torch.randperm(len(pool), generator=gen).tolist()
        picked += [pool[j] for j in order[:want]]
    order = torch.randperm(len(picked), generator=gen).tolist()
    return [picked[j] for j in order]


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def render_demo(template: Template, verbalizer: Verbalizer, fields: dict, label: str) -> str:
    out = []
    for part in template.parts:
        if isinstance(part, Text):
            out.append(_escape(part.text))
        elif isinstance(part, Field):
            out.append(_escape(fields[part.name]))
        elif isinstance(part, Answer):
            out.append(_escape(verbalizer.words[verbalizer.index(label)]))
        elif isinstance(part, Soft):
            continue
    return "".join(out)


def icl_template(template: Template, verbalizer: Verbalizer, config: InContextConfig) -> Template:
    """The template with instruction and demonstrations as its literal prefix."""
    pieces = [_escape(config.instruction)] if config.instruction else []
    pieces += [render_demo(template, verbalizer, d["fields"], d["label"]) for d in config.demos]
    prefix = _escape(config.separator).join(pieces)
    if not prefix:
        return template
    return Template.parse(prefix + _escape(config.separator) + template.source)


class InContext(TaskModule):
    name = "in-context"
    config_class = InContextConfig

    @classmethod
    def calibrates(cls, config: InContextConfig) -> bool:
        return config.calibrate

    @classmethod
    def fit_config(cls, config: InContextConfig, train: list[Example], labels: list[str], seed: int):
        demos = choose_demos(config, train, labels, seed)
        return type(config)(**{**config.__dict__, "demos": [{"fields": d.fields, "label": d.label} for d in demos]})

    @classmethod
    def task_template(cls, config: InContextConfig, template: Template, verbalizer: Verbalizer) -> Template:
        return icl_template(template, verbalizer, config)
