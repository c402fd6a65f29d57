"""Feature functions h(x) -> 0/1 for building underspecified probe sets from any dataset.

Spec strings: `label=positive`, `length[:field]` (longer than the median), `punctuation[:field]`
(contains ! or ?), `capitalisation[:field]` (a fully upper-case word of 2+ letters),
`contains:WORD[:field]`, `negation[:field]`, `overlap:FIELD_A:FIELD_B` (word overlap above the
median), `domain:FIELD=VALUE`.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Callable

from tasktune import TasktuneError
from tasktune.data.readers import Example

Feature = Callable[[Example], int]
NEGATIONS = {"not", "no", "never", "nothing", "none", "nobody", "neither", "nor", "n't", "cannot"}


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z']+|n't", text)


def _overlap(ex: Example, a: str, b: str) -> float:
    wa, wb = set(w.lower() for w in _words(ex.fields[a])), set(w.lower() for w in _words(ex.fields[b]))
    return len(wa & wb) / max(1, len(wb))


def make_feature(spec: str, pool: list[Example]) -> Feature:
    """A 0/1 feature from its spec; median thresholds are computed on `pool`."""
    name, _, arg = spec.partition(":")
    if "=" in name and not arg:  # label=positive / FIELD=value
        key, value = name.split("=", 1)
        if key == "label":
            return lambda ex: int(ex.label == value)
        return lambda ex: int(ex.fields.get(key) == value)
    field = arg or "text"
    if name == "length":
        cut = statistics.median(len(_words(ex.fields[field])) for ex in pool)
        return lambda ex: int(len(_words(ex.fields[field])) > cut)
    if name == "punctuation":
        return lambda ex: int(bool(re.search(r"[!?]", ex.fields[field])))
    if name == "capitalisation":
        return lambda ex: int(any(len(w) > 1 and w.isupper() for w in _words(ex.fields[field])))
    if name == "negation":
        return lambda ex: int(any(w.lower() in NEGATIONS for w in _words(ex.fields[field])))
    if name == "contains":
        word, _, fld = arg.partition(":")
        fld = fld or "text"
        return lambda ex: int(word.lower() in (w.lower() for w in _words(ex.fields[fld])))
    if name == "overlap":
        a, _, b = arg.partition(":")
        cut = statistics.median(_overlap(ex, a, b) for ex in pool)
        return lambda ex: int(_overlap(ex, a, b) > cut)
    if name == "domain":
        key, _, value = arg.partition("=")
        return lambda ex: int(ex.fields.get(key) == value)
    raise TasktuneError(f"unknown feature '{spec}': see `tasktune probe --help`")
