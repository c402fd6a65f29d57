"""Method registry: CLI name -> module class (each with its config dataclass)."""

from tasktune.methods.base import MethodConfig, TaskModule
from tasktune.methods.fine_tuning import FineTuning, FineTuningConfig
from tasktune.methods.in_context import InContext, InContextConfig
from tasktune.methods.p_tuning import PTuning, PTuningConfig
from tasktune.methods.prefix_tuning import PrefixTuning, PrefixTuningConfig
from tasktune.methods.prompt_tuning import PromptTuning, PromptTuningConfig
from tasktune.methods.zero_shot import ZeroShot, ZeroShotConfig

METHODS: dict[str, type[TaskModule]] = {
    m.name: m for m in (PromptTuning, PrefixTuning, PTuning, FineTuning, InContext, ZeroShot)
}

__all__ = ["METHODS", "FineTuning", "FineTuningConfig", "InContext", "InContextConfig", "MethodConfig", "PTuning",
           "PTuningConfig", "PrefixTuning", "PrefixTuningConfig", "PromptTuning", "PromptTuningConfig", "TaskModule",
           "ZeroShot", "ZeroShotConfig"]
