from tasktune.train.config import TrainConfig
from tasktune.train.loop import train

__all__ = ["TrainConfig", "train"]
