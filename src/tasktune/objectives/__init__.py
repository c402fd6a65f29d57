"""Objectives: what the answer slot means. One class each, all with the Objective contract."""

from tasktune import TasktuneError
from tasktune.objectives.base import Encoded, Generated, Objective, Prediction
from tasktune.objectives.classification import ClassificationObjective
from tasktune.objectives.generation import GenerationObjective
from tasktune.objectives.vocabulary import VocabularyObjective

OBJECTIVES: dict[str, type[Objective]] = {
    o.kind: o for o in (ClassificationObjective, VocabularyObjective, GenerationObjective)
}


def make_objective(kind: str, encoder, target_field: str | None = None) -> Objective:
    """The objective named by an artifact's or the CLI's `objective` (generation takes its target field)."""
    if kind not in OBJECTIVES:
        raise TasktuneError(f"unknown objective '{kind}': choose from {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind].create(encoder, target_field)


__all__ = ["OBJECTIVES", "ClassificationObjective", "Encoded", "Generated", "GenerationObjective", "Objective",
           "Prediction", "VocabularyObjective", "make_objective"]
