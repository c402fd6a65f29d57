from tasktune.artifact.files import load_artifact
from tasktune.artifact.store import save_task

__all__ = ["load_artifact", "save_task"]
