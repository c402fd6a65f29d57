"""Verbalizers: label strings <-> the words the language model says for them."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tasktune import TasktuneError

_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Verbalizer:
    """Ordered mapping label -> word. Words are scored as continuations, so a causal or
    sentencepiece model usually wants a leading space (" positive")."""

    labels: tuple[str, ...]
    words: tuple[str, ...]

    @classmethod
    def default(cls, labels: list[str]) -> Verbalizer:
        return cls(tuple(labels), tuple(" " + lab.replace("_", " ") for lab in labels))

    @classmethod
    def from_spec(cls, spec: str | dict | None, labels: list[str]) -> Verbalizer:
        """`spec` is a dict, a JSON object, or 'label=word,label=word' (words get a leading space)."""
        if spec is None or spec == "":
            return cls.default(labels)
        if isinstance(spec, str):
            spec = spec.strip()
            if spec.startswith("{"):
                try:
                    mapping = json.loads(spec)
                except json.JSONDecodeError as e:
                    raise TasktuneError(f"verbalizer: invalid JSON ({e.msg})") from None
            else:
                mapping = {}
                for item in spec.split(","):
                    if "=" not in item:
                        raise TasktuneError(f"verbalizer: '{item}' is not label=word")
                    k, v = item.split("=", 1)
                    mapping[k.strip()] = " " + v.strip()
        else:
            mapping = dict(spec)
        missing = [lab for lab in labels if lab not in mapping]
        if missing:
            raise TasktuneError(f"verbalizer has no word for label(s) {missing}; it maps {sorted(mapping)}")
        order = list(labels) + [k for k in mapping if k not in labels]
        return cls(tuple(order), tuple(mapping[k] for k in order))

    def index(self, label: str, where: str = "") -> int:
        try:
            return self.labels.index(label)
        except ValueError:
            at = f"{where}: " if where else ""
            raise TasktuneError(f"{at}label '{label}' is not in the verbalizer {list(self.labels)}") from None

    def to_dict(self) -> dict[str, str]:
        return dict(zip(self.labels, self.words, strict=True))

    @property
    def per_example(self) -> bool:
        """Words that name the example's fields ("{choice1}"): the answers of a multiple choice."""
        return any(_FIELD.search(w) for w in self.words)

    def words_for(self, fields: dict[str, str], where: str = "") -> tuple[str, ...]:
        def fill(m):
            if m.group(1) not in fields:
                raise TasktuneError(f"{where}: verbalizer needs field '{m.group(1)}'")
            return fields[m.group(1)]

        return tuple(_FIELD.sub(fill, w) for w in self.words)

    def token_ids(self, tokenizer, fields: dict[str, str] | None = None, where: str = "") -> list[list[int]]:
        """Token ids of each label's word; per-example words need the example's `fields`."""
        if self.per_example and fields is None:
            return []
        words = self.words_for(fields, where) if fields is not None else self.words
        out = []
        for label, word in zip(self.labels, words, strict=True):
            ids = tokenizer(word, add_special_tokens=False).input_ids
            if not ids:
                raise TasktuneError(f"verbalizer word {word!r} for label '{label}' is empty after tokenisation")
            out.append(ids)
        return out
