"""Unlabeled documents -> sentences. Wikipedia markup is stripped with mwparserfromhell."""

from __future__ import annotations

import html
import re
from pathlib import Path

from tasktune import TasktuneError
from tasktune.data.readers import iter_rows

_SENT = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(])")
_MARKUP = re.compile(r"\[\[|\]\]|\{\{|\}\}|^[|!]|\|\s*\w+=|bgcolor")  # table rows the parser leaves behind


def plain_text(row: dict, where: str) -> str:
    if "text" in row:
        return str(row["text"])
    if "wikitext" in row:
        try:
            import mwparserfromhell
        except ImportError:
            raise TasktuneError("Wikipedia markup needs `pip install mwparserfromhell`") from None
        code = mwparserfromhell.parse(row["wikitext"])
        for node in code.filter_headings(recursive=False):  # headings are not sentences
            code.remove(node)
        return html.unescape(code.strip_code(normalize=True, collapse=True))
    raise TasktuneError(f"{where}: a document needs 'text' or 'wikitext'")


def sentences(text: str, min_words: int = 5, max_words: int = 60) -> list[str]:
    out = []
    for para in text.split("\n"):
        for s in _SENT.split(para.strip()):
            s = " ".join(s.split())
            if min_words <= len(s.split()) <= max_words and not _MARKUP.search(s):
                out.append(s)
    return out


def read_corpus(path: str | Path) -> list[list[str]]:
    """Documents (each a list of sentences) with at least 3 sentences."""
    path = Path(path)
    if not path.is_file():
        raise TasktuneError(f"{path}: no such corpus file")
    docs = []
    for lineno, row in iter_rows(path):
        sents = sentences(plain_text(row, f"{path}:{lineno}"))
        if len(sents) >= 3:
            docs.append(sents)
    if len(docs) < 2:
        raise TasktuneError(f"{path}: needs at least two documents of three or more sentences")
    return docs
