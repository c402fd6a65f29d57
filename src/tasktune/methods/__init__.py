"""Method registry: CLI name -> module class (each with its config dataclass)."""

from tasktune.methods.base import MethodConfig, TaskModule
from tasktune.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from tasktune.methods.zero_shot import ZeroShot, ZeroShotConfig

METHODS: dict[str, type[TaskModule]] = {m.name: m for m in (PromptTuning, ZeroShot)}

__all__ = ["METHODS", "MethodConfig", "PromptTuning", "PromptTuningConfig", "TaskModule", "ZeroShot",
           "ZeroShotConfig"]
