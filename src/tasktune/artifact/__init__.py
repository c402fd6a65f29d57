from tasktune.artifact.store import load_artifact, load_task, save_task

__all__ = ["load_artifact", "load_task", "save_task"]
