"""Template + example -> token rows the backbone can run.

A Row is one sequence: token ids, with soft (virtual) slots marked in `soft` (index of the
virtual token, -1 for a real token), and the positions whose logits are read. The same
Row shape serves causal, masked and encoder-decoder models:

- causal: the answer is what comes next; position i's logits predict token i+1;
- masked: the answer slot becomes mask token(s); position i's logits predict token i;
- seq2seq: the template (minus the answer) is the encoder input; the answer is the decoder
  target, read from the decoder's logits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasktune import TasktuneError
from tasktune.data.readers import Example
from tasktune.templates import Answer, Field, Soft, Template, Text, Verbalizer


@dataclass
class Row:
    ids: list[int]
    soft: list[int]
    score_pos: list[int] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)
    decoder_ids: list[int] | None = None
    real_tokens: int = 0  # input tokens that came from the example (not template, not virtual)


def special_wrapping(tokenizer) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer puts before and after a text ([CLS] ... [SEP], <s> ..., ... </s>)."""
    bare = tokenizer("a", add_special_tokens=False).input_ids
    full = tokenizer("a").input_ids
    for start in range(len(full) - len(bare) + 1):
        if full[start : start + len(bare)] == bare:
            return full[:start], full[start + len(bare) :]
    return [], []


class TemplateEncoder:
    """Renders examples through a template for one tokenizer and model family."""

    def __init__(self, template: Template, verbalizer: Verbalizer | None, tokenizer, family: str,
                 max_length: int = 256, decoder_start: int | None = None):
        self.template, self.verbalizer, self.tok, self.family = template, verbalizer, tokenizer, family
        self.decoder_start = decoder_start
        self.max_length = max_length
        self.prefix, self.suffix = special_wrapping(tokenizer)
        if family == "causal":
            self.suffix = []  # nothing may follow the answer of a causal LM
        self.label_ids = verbalizer.token_ids(tokenizer) if verbalizer else []
        self.single_token = bool(self.label_ids) and all(len(t) == 1 for t in self.label_ids)
        if family == "masked" and tokenizer.mask_token_id is None:
            raise TasktuneError("masked LM tokenizer has no mask token")
        if family == "seq2seq" and decoder_start is None:
            raise TasktuneError("encoder-decoder encoding needs the model's decoder_start_token_id")
        if family == "causal" and template.has_answer and not isinstance(template.parts[-1], Answer):
            raise TasktuneError(f"template '{template.source}': for a causal LM the {{answer}} slot must be last")

    # ---- prompt rendering -------------------------------------------------------------
    def _render(self, ex: Example, n_mask: int, field_cut: dict[str, int]) -> tuple[list[int], list[int], int, int]:
        """Returns ids, soft, the position of the first answer token (masked LMs) and real tokens."""
        ids, soft = list(self.prefix), [-1] * len(self.prefix)
        answer_at, real, v, buf, fields_in_buf = -1, 0, 0, "", []

        def flush():
            nonlocal buf, real, fields_in_buf
            if buf:
                toks = self.tok(buf, add_special_tokens=False).input_ids
                ids.extend(toks)
                soft.extend([-1] * len(toks))
            buf, fields_in_buf = "", []

        for part in self.template.parts:
            if isinstance(part, Text):
                buf += part.text
            elif isinstance(part, Field):
                value = ex.fields.get(part.name)
                if value is None:
                    raise TasktuneError(f"{ex.where}: missing field '{part.name}' used by the template")
                if part.name in field_cut:
                    toks = self.tok(value, add_special_tokens=False).input_ids
                    value = self.tok.decode(toks[: field_cut[part.name]])
                real += len(self.tok(value, add_special_tokens=False).input_ids)
                buf += value
            elif isinstance(part, Soft):
                flush()
                ids.extend([0] * part.n)
                soft.extend(range(v, v + part.n))
                v += part.n
            elif isinstance(part, Answer):
                if self.family == "masked":
                    flush()
                    answer_at = len(ids)
                    ids.extend([self.tok.mask_token_id] * n_mask)
                    soft.extend([-1] * n_mask)
                elif self.family == "causal":
                    break
        flush()
        ids.extend(self.suffix)
        soft.extend([-1] * len(self.suffix))
        return ids, soft, answer_at, real

    def render(self, ex: Example, n_mask: int = 1, reserve: int = 0) -> tuple[list[int], list[int], int, int]:
        """Render, cutting the longest input field so that len + reserve <= max_length."""
        cut: dict[str, int] = {}
        for _ in range(4):
            ids, soft, answer_at, real = self._render(ex, n_mask, cut)
            over = len(ids) + reserve - self.max_length
            if over <= 0:
                return ids, soft, answer_at, real
            lengths = {f: len(self.tok(ex.fields[f], add_special_tokens=False).input_ids)
                       for f in self.template.fields}
            longest = max(lengths, key=lambda f: cut.get(f, lengths[f]))
            cut[longest] = max(1, cut.get(longest, lengths[longest]) - over)
        raise TasktuneError(f"{ex.where}: template alone is longer than max_length={self.max_length}")

    # ---- rows for each objective ------------------------------------------------------
    def classification_rows(self, ex: Example) -> list[Row]:
        """One row (all verbalizer words single-token) or one row per label (multi-token)."""
        if self.single_token:
            return [self._answer_row(ex, [self.label_ids[0][0]], fast=True)]
        candidates = self.label_ids or self.verbalizer.token_ids(self.tok, ex.fields, ex.where)
        return [self._answer_row(ex, cand, fast=False) for cand in candidates]

    def answer_row(self, ex: Example) -> Row:
        """One row reading the answer slot's first position (open-vocabulary answers)."""
        return self._answer_row(ex, [0], fast=True)

    def target_row(self, ex: Example, target: list[int]) -> Row:
        """A row scoring `target` token ids as the answer (generation loss, candidate scoring)."""
        return self._answer_row(ex, target, fast=False)

    def _answer_row(self, ex: Example, cand: list[int], fast: bool) -> Row:
        m = len(cand)
        if self.family == "causal":
            reserve = 0 if fast else m - 1
            ids, soft, _, real = self.render(ex, reserve=reserve)
            start = len(ids) - 1
            if not fast:
                ids, soft = ids + cand[:-1], soft + [-1] * (m - 1)
            pos = [start] if fast else list(range(start, start + m))
            return Row(ids, soft, pos, [] if fast else list(cand), None, real)
        if self.family == "masked":
            ids, soft, at, real = self.render(ex, n_mask=m)
            if at < 0:
                raise TasktuneError(f"template '{self.template.source}' needs an {{answer}} slot for a masked LM")
            return Row(ids, soft, list(range(at, at + m)), [] if fast else list(cand), None, real)
        ids, soft, _, real = self.render(ex)
        dec = [self.decoder_start] + list(cand[:-1])
        pos = [0] if fast else list(range(m))
        return Row(ids, soft, pos, [] if fast else list(cand), dec, real)

    @classmethod
    def for_backbone(cls, backbone, template: Template, verbalizer: Verbalizer | None,
                     max_length: int = 256) -> TemplateEncoder:
        start = getattr(backbone.config, "decoder_start_token_id", None)
        return cls(template, verbalizer, backbone.tokenizer, backbone.family, max_length, start)
