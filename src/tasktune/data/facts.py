"""LAMA-style fact triples (relation, subject, object) for knowledge probing.

Split: by subject, deterministic: sha1(subject) mod 5 -> 0,1,2 train, 3 dev, 4 test, so no
subject appears in two splits. Manual templates follow LAMA's, cut before the object slot
for causal LMs (the answer must come last).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tasktune import TasktuneError
from tasktune.data.readers import Example, read_examples
from tasktune.data.splits import DataSplits

# LAMA's manual prompts ([X] subject, [Y] object)
MANUAL = {
    "P19": "[X] was born in [Y] .",
    "P20": "[X] died in [Y] .",
    "P106": "[X] is a [Y] by profession .",
    "P36": "The capital of [X] is [Y] .",
    "P37": "The official language of [X] is [Y] .",
    "P101": "[X] works in the field of [Y] .",
    "P103": "The native language of [X] is [Y] .",
    "P27": "[X] is [Y] citizen .",
}


def split_of(subject: str) -> str:
    bucket = int(hashlib.sha1(subject.encode()).hexdigest(), 16) % 5
    return ("train", "train", "train", "dev", "test")[bucket]


def manual_template(relation: str) -> str:
    """The manual prompt as a tasktune template, ending at the object slot (what a causal LM
    needs; masked LMs and encoder-decoders read the same slot)."""
    if relation not in MANUAL:
        raise TasktuneError(f"no manual template for relation {relation}: pass --template")
    return MANUAL[relation].replace("[X]", "{subject}").split("[Y]")[0].rstrip() + "{answer}"


def p_tuning_template(relation: str, n: int = 3) -> str:
    """(n, subject, manual prompt, n, answer) as in Liu et al. 2021."""
    manual = manual_template(relation).replace("{subject}", "").replace("{answer}", "").strip()
    return f"[P:{n}] {{subject}} {manual} [P:{n}]{{answer}}"


def load_facts(path: str | Path) -> tuple[DataSplits, str]:
    rows = read_examples(path, fields=["subject"], label_field="object", require_label=True)
    relations = {ex.fields.get("relation", "") for ex in rows}
    if len(relations) != 1:
        raise TasktuneError(f"{path}: expected facts of one relation, found {sorted(relations)}")
    splits: dict[str, list[Example]] = {"train": [], "dev": [], "test": []}
    for ex in rows:
        splits[split_of(ex.fields["subject"])].append(ex)
    return DataSplits(splits["train"], splits["dev"], splits["test"], str(path)), relations.pop()


def majority_object_p_at_1(train: list[Example], test: list[Example], objective) -> dict:
    """The trivial row of a facts table: always answer the most common object of train. Scored over
    the same rows P@1 is (single-token answers, `objective.label_index` >= 0)."""
    from collections import Counter

    if not train:
        return {}
    majority, _ = Counter(ex.label for ex in train).most_common(1)[0]
    scored = [ex for ex in test if ex.label is not None and objective.label_index(ex) >= 0]
    hit = sum(ex.label == majority for ex in scored) / max(1, len(scored))
    return {"majority_object": majority, "majority_object_p_at_1": hit}
