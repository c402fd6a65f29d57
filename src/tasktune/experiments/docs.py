"""Generated sections of the docs: `<!-- compare:NAME:start -->` ... `<!-- compare:NAME:end -->`
holds the report of the results folder NAME, rendered from its results.jsonl and nothing else;
`compare:NAME:glance` holds its short form (the README's results at a glance). `check`
re-renders every such section and lists the ones that differ from the file (CI runs it)."""

from __future__ import annotations

import re
from pathlib import Path

from tasktune import TasktuneError
from tasktune.experiments.report import render, render_glance
from tasktune.experiments.runner import read_results


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"<!-- compare:{re.escape(name)}:start -->\n.*?<!-- compare:{re.escape(name)}:end -->", re.S)


def section(results: Path, name: str) -> str:
    """The section `name` (NAME or NAME:glance) rendered from the results folder."""
    records = read_results(results)
    if not records:
        raise TasktuneError(f"{results}: no results.jsonl (run `tasktune compare` first)")
    base, _, form = name.partition(":")
    body = render_glance(records, base) if form == "glance" else render(records, base)
    return f"<!-- compare:{name}:start -->\n{body}<!-- compare:{name}:end -->"


def write_section(doc: Path, results: Path, name: str) -> bool:
    """Insert or replace the section; True when the file changed."""
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    new = section(results, name)
    pattern = _pattern(name)
    updated = pattern.sub(lambda _: new, text) if pattern.search(text) else text.rstrip() + "\n\n" + new + "\n"
    if updated != text:
        doc.write_text(updated, encoding="utf-8")
    return updated != text


def sections_in(doc: Path) -> list[str]:
    text = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    return re.findall(r"<!-- compare:([^:>]+(?::glance)?):start -->", text)


def check(doc: Path, results_root: Path) -> list[str]:
    """Names of the generated sections of `doc` that its results (results_root/NAME) no longer give."""
    text = doc.read_text(encoding="utf-8")
    stale = []
    for name in sections_in(doc):
        match = _pattern(name).search(text)
        if match is None or match.group(0) != section(results_root / name.partition(":")[0], name):
            stale.append(name)
    return stale
