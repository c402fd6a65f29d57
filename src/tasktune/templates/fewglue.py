"""Task presets: fields, pattern-verbalizer pairs (PET style, several patterns per task) and
a P-tuning pattern, for the FewGLUE tasks. Patterns end with the answer slot so that causal
LMs can read it; masked LMs use the same patterns with a mask there. COPA's "verbalizer"
names the example's own choices: each choice is scored as the answer (sum of log-probs)."""

from __future__ import annotations

from dataclasses import dataclass

from tasktune import TasktuneError

YES_NO = {"True": " Yes", "False": " No"}
NLI3 = {"entailment": " Yes", "contradiction": " No", "neutral": " Maybe"}
NLI2 = {"entailment": " Yes", "not_entailment": " No"}


@dataclass(frozen=True)
class FewGluePreset:
    name: str
    patterns: tuple[str, ...]
    verbalizer: dict
    p_tuning: str


FEWGLUE_PRESETS = {p.name: p for p in (
    FewGluePreset("boolq", (
        "{passage}\nQuestion: {question}?\nAnswer:{answer}",
        "{passage}\nBased on the previous passage, {question}?{answer}",
        "Based on the following passage, {question}? {passage}\nAnswer:{answer}",
    ), YES_NO, "[P:3] {passage}\n[P:3] Question: {question}? [P:3]\nAnswer:{answer}"),
    FewGluePreset("cb", (
        "{premise}\nQuestion: {hypothesis} Yes, No or Maybe?\nAnswer:{answer}",
        "\"{premise}\"\nQuestion: \"{hypothesis}\"?\nAnswer:{answer}",
        "{premise} Based on the previous passage, is it true that \"{hypothesis}\"? Yes, No, or Maybe?{answer}",
    ), NLI3, "[P:3] {premise}\n[P:3] Question: {hypothesis} ? [P:3]\nAnswer:{answer}"),
    FewGluePreset("rte", (
        "{premise}\nQuestion: {hypothesis} Yes or No?\nAnswer:{answer}",
        "\"{premise}\"\nQuestion: \"{hypothesis}\"?\nAnswer:{answer}",
        "{premise} Based on the previous passage, is it true that \"{hypothesis}\"? Yes or No?{answer}",
    ), NLI2, "[P:3] {premise}\n[P:3] Question: {hypothesis} ? [P:3]\nAnswer:{answer}"),
    FewGluePreset("copa", (
        "{premise} What was the {question} of this?{answer}",
        "{premise} The {question} was that{answer}",
        "Premise: {premise}\nWhat was the {question}? Answer:{answer}",
    ), {"0": " {choice1}", "1": " {choice2}"},
        "[P:3] {premise} [P:3] {question} ? [P:3]{answer}"),
    FewGluePreset("wic", (
        "{sentence1}\n{sentence2}\nQuestion: Is the word '{word}' used in the same sense in the two sentences "
        "above?\nAnswer:{answer}",
        "\"{sentence1}\" / \"{sentence2}\". Similar sense of \"{word}\"?{answer}",
        "{sentence1} {sentence2} Does {word} have the same meaning in both sentences?{answer}",
    ), YES_NO, "[P:3] {sentence1}\n[P:3] {sentence2} [P:3] '{word}' same sense?{answer}"),
)}


def preset_template(name: str, pattern: int, method: str) -> tuple[str, dict]:
    """(template, verbalizer) of a preset; P-tuning gets the preset's pseudo-token pattern."""
    if name not in FEWGLUE_PRESETS:
        raise TasktuneError(f"unknown preset '{name}': choose from {', '.join(FEWGLUE_PRESETS)}")
    preset = FEWGLUE_PRESETS[name]
    if method == "p-tuning":
        return preset.p_tuning, preset.verbalizer
    if not 0 <= pattern < len(preset.patterns):
        raise TasktuneError(f"preset '{name}' has patterns 0..{len(preset.patterns) - 1}")
    return preset.patterns[pattern], preset.verbalizer
