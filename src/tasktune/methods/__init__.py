"""Method registry: CLI name -> module class (each with its config dataclass)."""

from tasktune.methods.base import MethodConfig, TaskModule
from tasktune.methods.in_context import InContext, InContextConfig
from tasktune.methods.p_tuning import PTuning, PTuningConfig
from tasktune.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from tasktune.methods.zero_shot import ZeroShot, ZeroShotConfig

METHODS: dict[str, type[TaskModule]] = {m.name: m for m in (PromptTuning, PTuning, InContext, ZeroShot)}

__all__ = ["METHODS", "InContext", "InContextConfig", "MethodConfig", "PTuning", "PTuningConfig", "PromptTuning",
           "PromptTuningConfig", "TaskModule", "ZeroShot", "ZeroShotConfig"]
