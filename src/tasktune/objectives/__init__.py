from tasktune.objectives.classification import ClassificationObjective

__all__ = ["ClassificationObjective"]
