"""The one way to make a Task: a TaskSpec plus a backbone (plus weights, when loading).

`build_task` (a new task: method config, template, labels) and `load_task` (an artifact
folder) both end in `assemble`; the CLI, the trainer, the server and the benchmarks all come
through here. `backbone_dtype` is the one rule for the weights a method needs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from tasktune import TasktuneError
from tasktune.artifact.files import load_artifact
from tasktune.engine.encoding import TemplateEncoder
from tasktune.methods import METHODS, TaskModule
from tasktune.objectives import OBJECTIVES, make_objective
from tasktune.spec import TaskSpec
from tasktune.task import Task
from tasktune.templates import Template, Verbalizer


def method_class(name: str) -> type[TaskModule]:
    if name not in METHODS:
        raise TasktuneError(f"unknown method '{name}': choose from {', '.join(METHODS)}")
    return METHODS[name]


def method_config(cls: type[TaskModule], values: dict, where: str):
    """The method's config dataclass from a dict; unknown or missing keys are a one-line error."""
    names = {f.name for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise TasktuneError(f"{where}: {cls.name} has no setting {unknown[0]!r}")
    return cls.config_class(**values)


def backbone_dtype(cls: type[TaskModule], config, requested: str) -> str:
    """Weights the backbone loads in: tuned backbone weights want fp32 under `auto`."""
    return "float32" if requested == "auto" and cls.needs_fp32(config) else requested


def fresh_spec(method: str, config, template: str, labels: list[str] | None, verbalizer: str | dict | None = None,
               max_length: int = 256, objective: str | None = None, target_field: str = "text") -> TaskSpec:
    """The spec of a new task: `labels` None is an open-vocabulary task (answers over the vocabulary)."""
    cls = method_class(method)
    tmpl = Template.parse(template)
    if not tmpl.has_answer:
        tmpl = Template.parse(template + "{answer}")
    tmpl = tmpl.with_prefix_soft(cls.prefix_soft_length(config)) if cls.uses_soft else tmpl.without_soft()
    verb = Verbalizer.from_spec(verbalizer, labels) if labels is not None else None
    tmpl = cls.task_template(config, tmpl, verb)
    kind = objective or ("classification" if verb is not None else "vocabulary")
    if kind not in OBJECTIVES:
        raise TasktuneError(f"unknown objective '{kind}': choose from {', '.join(OBJECTIVES)}")
    return TaskSpec(method, dataclasses.asdict(config), kind, tmpl.source, verb.to_dict() if verb else None,
                    list(verb.labels) if verb else [], max_length,
                    target_field if OBJECTIVES[kind].reads_target_field else None)


def assemble(spec: TaskSpec, backbone, tensors: dict[str, torch.Tensor] | None = None, seed: int = 0,
             reuse_prefix: bool = True, where: str = "task") -> Task:
    """A Task from its spec: new parameters (initialised with `seed`) or the artifact's `tensors`."""
    cls = method_class(spec.method)
    config = method_config(cls, spec.method_config, where)
    template = Template.parse(spec.template)
    verbalizer = Verbalizer.from_spec(spec.verbalizer, spec.labels) if spec.verbalizer is not None else None
    encoder = TemplateEncoder.for_backbone(backbone, template, verbalizer, spec.max_length)
    objective = make_objective(spec.objective, encoder, spec.target_field)
    if tensors is None:
        module = cls.build(config, backbone, template.n_soft, encoder.label_ids, seed)
    else:
        try:
            module = cls.from_export(config, backbone, template.n_soft, tensors)
        except (RuntimeError, KeyError, ValueError) as e:  # state_dict size / key mismatches
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise TasktuneError(f"{where}: the weights do not fit the template and model ({first[:200]})") from None
    return Task(backbone, module, template, verbalizer, objective, spec.max_length, reuse_prefix)


def build_task(backbone, method: str, config, template: str, labels: list[str] | None,
               verbalizer: str | dict | None = None, max_length: int = 256, seed: int = 0,
               objective: str | None = None, target_field: str = "text") -> Task:
    """A new task on `backbone`; `labels` None builds an open-vocabulary task."""
    spec = fresh_spec(method, config, template, labels, verbalizer, max_length, objective, target_field)
    return assemble(spec, backbone, seed=seed)


def load_task(path: str | Path, backbone=None, force: bool = False, dtype: str = "auto", device=None):
    """(Task, tasktune.json) of an artifact. Refuses another base model unless `force`."""
    from tasktune.backbone import load_backbone

    meta, tensors = load_artifact(path)
    where = str(Path(path) / "tasktune.json")
    spec = TaskSpec.from_meta(meta, where)
    base = meta.get("base_model")
    if not isinstance(base, dict) or not isinstance(base.get("name"), str) or "fingerprint" not in base:
        raise TasktuneError(f"{where}: missing or malformed field 'base_model' (name, fingerprint)")
    cls = method_class(spec.method)
    config = method_config(cls, spec.method_config, where)
    if backbone is None:
        backbone = load_backbone(base["name"], dtype=backbone_dtype(cls, config, dtype), device=device)
    if backbone.fingerprint != base["fingerprint"] and not force:
        raise TasktuneError(
            f"{path}: trained on '{base['name']}' (fingerprint {base['fingerprint']}), but the loaded model "
            f"'{backbone.name}' has fingerprint {backbone.fingerprint}; pass --force to load anyway")
    return assemble(spec, backbone, tensors, where=where), meta
