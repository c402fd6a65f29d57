"""One template language for every method.

    "[P:10] Review: {text} [P:3] Sentiment:{answer}"

- literal text stays as words (P-tuning's discrete anchors are just literal text);
- `{name}` is an input field of the example; `{answer}` is the answer slot;
- `[P:n]` is a slot of n soft (virtual) tokens, filled by the method;
- `{{` and `}}` are literal braces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasktune import TasktuneError


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Field:
    name: str


@dataclass(frozen=True)
class Soft:
    n: int


@dataclass(frozen=True)
class Answer:
    pass


Part = Text | Field | Soft | Answer

_TOKEN = re.compile(r"\{\{|\}\}|\[P:(\d+)\]|\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Template:
    source: str
    parts: tuple[Part, ...]

    @classmethod
    def parse(cls, source: str) -> Template:
        parts: list[Part] = []
        buf, pos = "", 0
        for m in _TOKEN.finditer(source):
            buf += source[pos : m.start()]
            pos = m.end()
            tok = m.group(0)
            if tok in ("{{", "}}"):
                buf += tok[0]
                continue
            if buf:
                parts.append(Text(buf))
                buf = ""
            if m.group(1) is not None:
                n = int(m.group(1))
                if n <= 0:
                    raise TasktuneError(f"template '{source}': soft slot [P:{n}] needs a positive length")
                parts.append(Soft(n))
            elif m.group(2) == "answer":
                parts.append(Answer())
            else:
                parts.append(Field(m.group(2)))
        buf += source[pos:]
        if "{" in buf.replace("{{", "") or "}" in buf.replace("}}", ""):
            raise TasktuneError(f"template '{source}': unbalanced brace (write {{{{ or }}}} for a literal one)")
        if buf:
            parts.append(Text(buf))
        if sum(isinstance(p, Answer) for p in parts) > 1:
            raise TasktuneError(f"template '{source}': more than one {{answer}} slot")
        if not any(isinstance(p, Field) for p in parts):
            raise TasktuneError(f"template '{source}': no input field such as {{text}}")
        return cls(source, tuple(parts))

    @property
    def fields(self) -> list[str]:
        return [p.name for p in self.parts if isinstance(p, Field)]

    @property
    def n_soft(self) -> int:
        return sum(p.n for p in self.parts if isinstance(p, Soft))

    @property
    def has_answer(self) -> bool:
        return any(isinstance(p, Answer) for p in self.parts)

    def with_prefix_soft(self, n: int) -> Template:
        """Prepend n virtual tokens (prompt tuning's [P; E(x)]) unless the template places its own."""
        if self.n_soft or n == 0:
            return self
        return Template(f"[P:{n}]{self.source}", (Soft(n),) + self.parts)

    def without_soft(self) -> Template:
        """The same template with its soft slots removed (for zero-shot / in-context use)."""
        src = re.sub(r"\[P:\d+\]\s?", "", self.source)
        return Template(src, tuple(p for p in self.parts if not isinstance(p, Soft)))
