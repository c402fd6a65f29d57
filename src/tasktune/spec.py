"""TaskSpec: everything that defines a task except its weights and its backbone.

It is what tasktune.json records (next to the base model, metrics and versions) and what
tasktune/build.py turns into a Task, whether the task is new (`fresh_spec`, from the user's
template and method config) or loaded from an artifact (`TaskSpec.from_meta`). `template` is
the template the task really runs: answer slot added, soft slots placed, in-context
demonstrations in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from tasktune import TasktuneError


@dataclass(frozen=True)
class TaskSpec:
    method: str
    method_config: dict
    objective: str
    template: str
    verbalizer: dict | None = None
    labels: list[str] = field(default_factory=list)
    max_length: int = 256
    target_field: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_meta(cls, meta: dict, where: str) -> TaskSpec:
        """The spec inside an artifact's tasktune.json; one-line errors name `where` and the field."""
        types = {"method": str, "method_config": dict, "objective": str, "template": str,
                 "verbalizer": (dict, type(None)), "labels": list, "max_length": int, "target_field": (str, type(None))}
        required = ("method", "method_config", "template")
        values = {}
        for name, kind in types.items():
            if name not in meta:
                if name in required:
                    raise TasktuneError(f"{where}: missing field '{name}'")
                continue
            if not isinstance(meta[name], kind) or isinstance(meta[name], bool):
                raise TasktuneError(f"{where}: field '{name}' has the wrong type ({type(meta[name]).__name__})")
            values[name] = meta[name]
        if "objective" not in values:  # artifacts from before objectives were recorded
            values["objective"] = "classification" if values.get("verbalizer") else "vocabulary"
        if values.get("max_length", 1) < 1:
            raise TasktuneError(f"{where}: field 'max_length' must be at least 1")
        return cls(**values)
