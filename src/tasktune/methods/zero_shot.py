"""No task parameters: the template and verbalizer alone (the baseline every method must beat)."""

from __future__ import annotations

from dataclasses import dataclass

from tasktune.methods.base import MethodConfig, TaskModule


@dataclass
class ZeroShotConfig(MethodConfig):
    pass


class ZeroShot(TaskModule):
    name = "zero-shot"
    config_class = ZeroShotConfig
