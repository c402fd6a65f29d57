"""PPT's self-supervised pattern-verbalizer tasks, built from documents of sentences.

- `pair` (3 classes): is s2 the next sentence of s1 (yes), from the same document but not
  adjacent (maybe), or from another document (no)?
- `choice` (unified PPT): a query sentence and 6 options (the next sentence, one from the same
  document not adjacent, four from other documents), answered by the option's letter. Any
  downstream classification task can then be read as a multiple choice.
"""

from __future__ import annotations

import random

from tasktune.data.readers import Example

PAIR_TEMPLATE = "Sentence 1: {s1}\nSentence 2: {s2}\nDoes sentence 2 follow sentence 1?{answer}"
PAIR_VERBALIZER = {"next": " yes", "same_doc": " maybe", "other_doc": " no"}
CHOICE_TEMPLATE = "Q: {query}\nWhich sentence comes next?\n{options}\nAnswer:{answer}"
LETTERS = "ABCDEF"
CHOICE_VERBALIZER = {c: f" {c}" for c in LETTERS}


def _other_doc(docs, d, rng):
    e = rng.randrange(len(docs) - 1)
    return docs[e + (e >= d)]


def pair_examples(docs: list[list[str]], n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        d = rng.randrange(len(docs))
        doc = docs[d]
        j = rng.randrange(len(doc) - 1)
        kind = ("next", "same_doc", "other_doc")[i % 3]
        if kind == "next":
            s2 = doc[j + 1]
        elif kind == "same_doc":
            far = [k for k in range(len(doc)) if abs(k - j) > 1]
            if not far:
                kind, s2 = "next", doc[j + 1]
            else:
                s2 = doc[rng.choice(far)]
        else:
            s2 = rng.choice(_other_doc(docs, d, rng))
        out.append(Example({"s1": doc[j], "s2": s2}, kind, f"ppt-pair:{i}"))
    rng.shuffle(out)
    return out


def choice_examples(docs: list[list[str]], n: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        d = rng.randrange(len(docs))
        doc = docs[d]
        j = rng.randrange(len(doc) - 1)
        far = [k for k in range(len(doc)) if abs(k - j) > 1]
        if not far:
            continue
        options = [doc[j + 1], doc[rng.choice(far)]] + [rng.choice(_other_doc(docs, d, rng)) for _ in range(4)]
        order = list(range(6))
        rng.shuffle(order)
        text = "\n".join(f"{LETTERS[k]}. {options[o]}" for k, o in enumerate(order))
        out.append(Example({"query": doc[j], "options": text}, LETTERS[order.index(0)], f"ppt-choice:{len(out)}"))
    return out


def build(kind: str, docs, n: int, seed: int) -> tuple[list[Example], str, dict]:
    if kind == "pair":
        return pair_examples(docs, n, seed), PAIR_TEMPLATE, PAIR_VERBALIZER
    if kind == "choice":
        return choice_examples(docs, n, seed), CHOICE_TEMPLATE, CHOICE_VERBALIZER
    from tasktune import TasktuneError

    raise TasktuneError(f"unknown PPT task '{kind}': pair or choice")
